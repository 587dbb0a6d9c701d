"""A private libvirt QEMU daemon and a host bridge network for real guests (no pytest, no Django).

- LibvirtDaemon: libvirtd run as root in a mount namespace of its own, where its state
  directories (/etc/libvirt, /var, /run) are a scratch directory's: nothing it defines, logs or
  caches reaches the host's libvirt, and nothing of the host's (a system daemon, its `default`
  network) reaches it. Clients reach it at `qemu:///session?socket=DIR/libvirt-sock`.

  Why not a per-user session daemon: for root, libvirt's client maps qemu:///session to the
  system daemon's socket (/run/libvirt/libvirt-sock; only a caller whose euid is not 0 gets a
  per-user daemon auto-started under $XDG_RUNTIME_DIR), and the privileged daemon accepts
  /session as another name for /system. A per-user daemon run as another user would work but
  cannot plug a guest into a host bridge (that takes the setuid qemu-bridge-helper and an
  /etc/qemu/bridge.conf allowing the bridge). A privileged daemon creates the guest's tap and
  adds it to the bridge itself, so a libvirt network `<forward mode='bridge'/>` over a bridge
  is all a guest needs: the driver's own `<interface type='network'>`.
- HostBridge: a Linux bridge with an address in a /24 no route of the host uses yet.
- Dnsmasq: dnsmasq answering DHCP on that bridge with a given configuration file.
- PortalRelay: a TCP relay from the bridge's address to a server on 127.0.0.1 (the live
  portal), since guests on the bridge cannot reach the host's loopback.

Every wait is bounded; every process is started with an argument list and stopped by its own pid
(terminate, then kill), links are deleted by name. Run as root.
"""

import contextlib
import ipaddress
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from tests.peers.sims import PeerFailed, PeerMissing

try:
    import libvirt
except ImportError:  # optional: see requirements-libvirt.txt
    libvirt = None

START_TIMEOUT = 30  # seconds for libvirtd to answer (it probes QEMU's capabilities first)
STOP_TIMEOUT = 10
TOOL_TIMEOUT = 30
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])

# Root's QEMU without what a scratch daemon in a container cannot or need not have: cgroups,
# per-guest mount namespaces, SELinux/AppArmor labels, file ownership changes, virtlogd.
QEMU_CONF = """\
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
vnc_listen = "127.0.0.1"
"""

LIBVIRTD_CONF = """\
unix_sock_dir = "{directory}"
unix_sock_rw_perms = "0700"
unix_sock_admin_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:file:{directory}/libvirtd.log"
"""

# Run by `unshare --mount`: the scratch directory's trees over the daemon's state paths, then
# the daemon itself (same pid: unshare and sh exec).
NAMESPACE_SCRIPT = """\
mount --make-rprivate /
mount -t tmpfs -o mode=0755 tmpfs /run
mount --bind "$1" /etc/libvirt
mount --bind "$2" /var
mount --bind "$5" /etc/passwd
mount --bind "$6" /etc/group
exec "$3" --config "$4"
"""
# Debian's QEMU driver looks up its built-in user and group before it reads qemu.conf (which
# says root); libvirt-daemon-system creates them on a real host. The daemon's namespace gets
# copies of passwd and group that have them, so the host's own files stay untouched.
QEMU_ACCOUNTS = {
    "passwd": ("libvirt-qemu", "libvirt-qemu:x:64055:64055:Libvirt Qemu:/nonexistent:/bin/false"),
    "group": ("libvirt-qemu", "libvirt-qemu:x:64055:"),
}


def program(name, package):
    path = shutil.which(name, path=SEARCH_PATH)
    if path is None:
        raise PeerMissing(f"{name} is not installed (Debian: {package})")
    return path


def _tail(path, lines=40):
    path = Path(path)
    if not path.exists():
        return f"({path} does not exist)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _stop(process, timeout=STOP_TIMEOUT):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


def _run(argv):
    result = subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT)
    if result.returncode != 0:
        raise PeerFailed(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}")
    return result.stdout


# libvirtd ----------------------------------------------------------------------------------------


class LibvirtDaemon:
    """A privileged libvirtd with private state, in a short scratch directory (a unix socket
    path holds at most 107 bytes). Use as a context manager."""

    def __init__(self):
        if os.geteuid() != 0:
            raise PeerMissing("a libvirt daemon that plugs guests into a bridge needs root")
        if libvirt is None:
            raise PeerMissing(
                "libvirt-python is not installed (pip install -r requirements-libvirt.txt)"
            )
        self.libvirtd = program("libvirtd", "libvirt-daemon, libvirt-daemon-driver-qemu")
        self.unshare = program("unshare", "util-linux")
        program("qemu-system-x86_64", "qemu-system-x86")
        if not Path("/etc/libvirt").is_dir():
            raise PeerMissing("/etc/libvirt is missing (Debian: libvirt-clients)")
        if not Path("/dev/net/tun").exists():
            raise PeerMissing("/dev/net/tun is missing: a guest's network port is a tap device")
        self.directory = None
        self.process = None

    @property
    def url(self):
        return f"qemu:///session?socket={self.directory}/libvirt-sock"

    @property
    def log_path(self):
        return self.directory / "libvirtd.log"

    def guest_log(self, name):
        """The daemon's log of a guest (QEMU's command line and its stderr)."""
        return _tail(self.directory / "var" / "log" / "libvirt" / "qemu" / f"{name}.log")

    def start(self):
        self.directory = Path(tempfile.mkdtemp(prefix="dcvirt-"))
        etc = self.directory / "etc"
        var = self.directory / "var"
        for path in (etc, var / "tmp", var / "lib", var / "cache", var / "log"):
            path.mkdir(parents=True)
        (var / "run").symlink_to("/run")
        (var / "lock").symlink_to("/run/lock")
        (etc / "qemu.conf").write_text(QEMU_CONF)
        for name, (account, line) in QEMU_ACCOUNTS.items():
            lines = Path(f"/etc/{name}").read_text().splitlines()
            if not any(entry.split(":", 1)[0] == account for entry in lines):
                lines.append(line)
            (self.directory / name).write_text("\n".join(lines) + "\n")
        config = etc / "libvirtd.conf"
        config.write_text(LIBVIRTD_CONF.format(directory=self.directory))
        output = (self.directory / "daemon.out").open("wb")
        with output:
            self.process = subprocess.Popen(
                [self.unshare, "--mount", "--propagation", "private", "sh", "-ec",
                 NAMESPACE_SCRIPT, "sh", str(etc), str(var), self.libvirtd, str(config),
                 str(self.directory / "passwd"), str(self.directory / "group")],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise PeerFailed(
                    f"libvirtd exited {self.process.returncode}:\n"
                    f"{_tail(self.directory / 'daemon.out')}\n{_tail(self.log_path)}"
                )
            try:
                libvirt.open(self.url).close()
                return self
            except libvirt.libvirtError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise PeerFailed(
                        f"libvirtd did not answer within {START_TIMEOUT} s:\n{_tail(self.log_path)}"
                    ) from None
                time.sleep(0.1)

    def connect(self):
        return libvirt.open(self.url)

    def _guest_pids(self):
        """QEMU processes of the daemon (their pid files are in its private /run)."""
        pids = []
        run = Path(f"/proc/{self.process.pid}/root/run/libvirt/qemu")
        with contextlib.suppress(OSError):
            for file in run.glob("*.pid"):
                with contextlib.suppress(OSError, ValueError):
                    pids.append(int(file.read_text().strip()))
        return pids

    def stop(self):
        if self.process is None:
            return
        guests = []
        if self.process.poll() is None:
            guests = self._guest_pids()
            with contextlib.suppress(libvirt.libvirtError):
                conn = self.connect()
                try:
                    for domain in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
                        with contextlib.suppress(libvirt.libvirtError):
                            domain.destroy()
                finally:
                    conn.close()
        _stop(self.process)
        # QEMU outlives its daemon: a guest the daemon did not stop is stopped here.
        for pid in guests:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        self.process = None

    def remove(self):
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        self.remove()


# The bridge network ------------------------------------------------------------------------------


def _used_networks(ip):
    used = []
    for command in (["-json", "-4", "route", "show", "table", "all"], ["-json", "-4", "addr"]):
        for entry in json.loads(_run([ip, *command]) or "[]"):
            prefixes = [entry.get("dst", "")]
            prefixes += [
                f"{a['local']}/{a.get('prefixlen', 32)}" for a in entry.get("addr_info", [])
            ]
            for prefix in prefixes:
                with contextlib.suppress(ValueError):
                    if prefix and prefix != "default":
                        used.append(ipaddress.ip_network(prefix, strict=False))
    return used


class HostBridge:
    """A bridge named dcpxe<hex> holding the first address of a free 10.x.y.0/24."""

    def __init__(self):
        if os.geteuid() != 0:
            raise PeerMissing("creating a bridge needs root")
        self.ip = program("ip", "iproute2")
        self.name = f"dcpxe{secrets.token_hex(4)}"
        self.network = None

    @property
    def address(self):
        return str(self.network.network_address + 1)

    def _free_network(self):
        used = _used_networks(self.ip)
        choices = [(second, third) for second in range(200, 255) for third in range(256)]
        for second, third in random.sample(choices, 64):
            network = ipaddress.ip_network(f"10.{second}.{third}.0/24")
            if not any(network.overlaps(other) for other in used):
                return network
        raise PeerFailed("no free 10.x.y.0/24 for the bridge")

    def start(self):
        self.network = self._free_network()
        _run([self.ip, "link", "add", self.name, "type", "bridge", "forward_delay", "0"])
        try:
            _run([self.ip, "addr", "add", f"{self.address}/24", "dev", self.name])
            _run([self.ip, "link", "set", self.name, "up"])
        except PeerFailed:
            self.stop()
            raise
        return self

    def stop(self):
        subprocess.run(
            [self.ip, "link", "del", self.name], capture_output=True, timeout=TOOL_TIMEOUT
        )

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class Dnsmasq:
    """dnsmasq serving DHCP only (no DNS) on one interface, from `config` (a file for -C)."""

    def __init__(self, config, interface, directory):
        self.program = program("dnsmasq", "dnsmasq-base")
        self.config = Path(config)
        self.interface = interface
        self.directory = Path(directory)
        self.log_path = self.directory / "dnsmasq.log"
        self.process = None

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self):
        argv = [
            self.program,
            "--keep-in-foreground",
            f"--conf-file={self.config}",
            "--port=0",
            f"--interface={self.interface}",
            "--bind-interfaces",
            "--user=root",
            f"--dhcp-leasefile={self.directory / 'dnsmasq.leases'}",
            f"--pid-file={self.directory / 'dnsmasq.pid'}",
            "--log-dhcp",
            f"--log-facility={self.log_path}",
        ]
        self.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + START_TIMEOUT
        while "started, version" not in self.log():
            if self.process.poll() is not None:
                output = self.process.stdout.read().decode(errors="replace")
                raise PeerFailed(f"dnsmasq exited {self.process.returncode}: {output}{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise PeerFailed(f"dnsmasq did not start in {START_TIMEOUT} s:\n{self.log()}")
            time.sleep(0.05)
        return self

    def stop(self):
        if self.process is not None:
            _stop(self.process)
            self.process.stdout.close()
            self.process = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class PortalRelay:
    """Accepts on (address, any port) and relays each connection to 127.0.0.1:`port`."""

    def __init__(self, address, port):
        self.target = ("127.0.0.1", port)
        self.listener = socket.create_server((address, 0))
        self.listener.settimeout(0.2)
        self.address, self.port = self.listener.getsockname()[:2]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="portal-relay", daemon=True)

    def _accept(self):
        while not self._stopping.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        with client, contextlib.suppress(OSError):
            server = socket.create_connection(self.target, timeout=10)
            with server:
                server.settimeout(None)
                client.settimeout(None)
                back = threading.Thread(target=self._pump, args=(server, client), daemon=True)
                back.start()
                self._pump(client, server)
                back.join(timeout=60)

    @staticmethod
    def _pump(source, destination):
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                destination.sendall(data)
        with contextlib.suppress(OSError):
            destination.shutdown(socket.SHUT_WR)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stopping.set()
        self._thread.join(timeout=STOP_TIMEOUT)
        self.listener.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

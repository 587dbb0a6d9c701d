"""The issue's "done when", for real: a machine that runs the agent appears in the portal with
its facts.

The machine is a QEMU guest (TCG, no KVM needed) whose SMBIOS UUID, serial, manufacturer and
product are set on QEMU's command line, with a virtio NIC of a known MAC and a virtio disk of
a known size and serial. It boots Debian's cloud kernel with an initramfs built here from
busybox-static alone: /init gets an address by DHCP (QEMU user networking, where 10.0.2.2 is
the host's 127.0.0.1), fetches /inventory/agent.sh from the live portal with busybox wget,
runs it (portal URL and enrolment token from the kernel command line), prints its exit status
on the serial console and powers off. The test then reads the server back from the database
and from its portal page.

The kernel: $DCPORTAL_TEST_KERNEL (its modules, if it needs any: $DCPORTAL_TEST_KERNEL_MODULES,
a directory of .ko files), or var/peers/vmlinuz-* (`.ci/fetch-test-kernel` fetches it, with the
virtio modules it lacks built in, into var/peers/modules-RELEASE/). Without a kernel or QEMU
the test is skipped, except under CI (the CI variable set), where that is a failure.
"""

# ruff: noqa: F401, F811 (the shared fixtures are imported by name, which pytest needs)

import gzip
import html
import lzma
import os
import re
import secrets
import shutil
import struct
import subprocess
import time
import uuid as uuidlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.urls import reverse

from inventory.models import Conflict, Server
from tests.integration.inventory.registration_helpers import acme, enrolment

# pytest-django's live server binds to this address (the fixture reads it when first used).
os.environ.setdefault("DJANGO_LIVE_TEST_SERVER_ADDRESS", "127.0.0.1")

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PROJECT = Path(__file__).resolve().parents[3]
PEERS = PROJECT / "var" / "peers"
QEMU = "qemu-system-x86_64"
BUSYBOX = shutil.which("busybox") or "/usr/bin/busybox"
HOST_FROM_GUEST = "10.0.2.2"  # QEMU user networking's name for the host's 127.0.0.1
BOOT_TIMEOUT = 180  # seconds for the whole guest run; about 15 s on two TCG cores
TOOL_TIMEOUT = 60
MEMORY_MIB = 512
DISK_BYTES = 64 * 1024 * 1024
MARKER = re.compile(r"dcportal-qemu: agent exit status (\d+)")
FETCH = ".ci/fetch-test-kernel  (after: apt-get install --no-install-recommends qemu-system-x86)"

# /init of the guest. Plain POSIX sh run by busybox; the portal's URL comes from the kernel
# command line, like the agent's own dcportal.url= and dcportal.token=.
INIT = """\
#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1

uptime() { read -r up _ </proc/uptime && echo "$up"; }
finish() {
    echo "dcportal-qemu: agent exit status $1 (uptime $(uptime) s)"
    sync
    reboot -f
}

portal=
for word in $(cat /proc/cmdline); do
    case $word in dcportal.url=*) portal=${word#*=} ;; esac
done
while read -r module; do
    insmod "/modules/$module.ko" || echo "dcportal-qemu: insmod $module failed"
done </modules/order
tries=0
while [ ! -e /sys/class/net/eth0 ] && [ "$tries" -lt 50 ]; do
    sleep 0.1
    tries=$((tries + 1))
done
ip link set lo up
ip link set eth0 up || finish 90
udhcpc -i eth0 -s /etc/udhcpc.script -n -q -t 10 -T 1 || finish 91
# (busybox 1.35 wget -T segfaults: the applet timeout bounds it instead)
timeout 60 wget -q -O /agent.sh "$portal/inventory/agent.sh" || finish 92
echo "dcportal-qemu: running the agent (uptime $(uptime) s)"
sh /agent.sh
finish $?
"""

# udhcpc calls this with the lease in its environment: configure the interface and route.
UDHCPC_SCRIPT = """\
#!/bin/sh
case $1 in
    deconfig)
        ifconfig "$interface" 0.0.0.0
        ;;
    bound | renew)
        ifconfig "$interface" "$ip" netmask "${subnet:-255.255.255.0}"
        if [ -n "$router" ]; then
            route add default gw "${router%% *}" dev "$interface"
        fi
        echo "dcportal-qemu: $interface $ip/${subnet:-?} via ${router:-none}"
        ;;
esac
exit 0
"""


@dataclass(frozen=True)
class Kernel:
    path: Path
    release: str
    modules: Path | None  # a directory of the .ko files it needs loaded, or None


def unavailable(what):
    """A missing peer: a failure under CI (a skipped end-to-end test would hide a missing
    install step), a skip elsewhere."""
    message = f"{what}; fetch it with: {FETCH}"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and {message}", pytrace=False)
    pytest.skip(message)


def _version_key(path):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _is_static(path):
    """True if the ELF file at `path` has no program interpreter (no dynamic loader)."""
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:  # 64-bit only: this is amd64's busybox
        return False
    endian = "<" if data[5] == 1 else ">"
    (phoff,) = struct.unpack_from(endian + "Q", data, 0x20)
    phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x36)
    types = (struct.unpack_from(endian + "I", data, phoff + i * phentsize)[0] for i in range(phnum))
    return 3 not in types  # PT_INTERP


@pytest.fixture(scope="session")
def vm_kernel():
    """The kernel the guest boots, and the modules it needs; QEMU and busybox checked too."""
    configured = os.environ.get("DCPORTAL_TEST_KERNEL")
    if configured:
        path = Path(configured)
        if not path.is_file():
            unavailable(f"DCPORTAL_TEST_KERNEL={configured} is not a file")
    else:
        found = sorted(PEERS.glob("vmlinuz-*"), key=_version_key)
        if not found:
            unavailable(f"no Linux kernel in {PEERS}/vmlinuz-* and DCPORTAL_TEST_KERNEL unset")
        path = found[-1]
    if not shutil.which(QEMU):
        unavailable(f"{QEMU} is not installed (Debian: qemu-system-x86)")
    if not Path(BUSYBOX).is_file() or not _is_static(BUSYBOX):
        unavailable(f"no static busybox at {BUSYBOX} (Debian: busybox-static)")
    release = path.name.removeprefix("vmlinuz-")
    modules = Path(
        os.environ.get("DCPORTAL_TEST_KERNEL_MODULES", path.parent / f"modules-{release}")
    )
    return Kernel(path=path, release=release, modules=modules if modules.is_dir() else None)


# The initramfs ----------------------------------------------------------------------------------


def _module_load_order(directory):
    """(name, bytes) of the modules in `directory`, each after what it depends on (the
    depends= of its .modinfo); .ko.xz files are decompressed."""
    modules = {}
    for file in sorted(directory.iterdir()):
        name, _, suffix = file.name.partition(".ko")
        if suffix == "":
            modules[name] = file.read_bytes()
        elif suffix == ".xz":
            modules[name] = lzma.decompress(file.read_bytes())
        else:
            pytest.fail(f"{file}: cannot unpack a {suffix} module here; decompress it first")
    depends = {}
    for name, data in modules.items():
        match = re.search(rb"depends=([A-Za-z0-9_,-]*)\0", data)
        depends[name] = [d for d in (match.group(1).decode().split(",") if match else []) if d]
    order, done = [], set()

    def visit(name, path=()):
        if name in done:
            return
        if name in path:
            pytest.fail(f"module dependency cycle: {' -> '.join((*path, name))}")
        for dependency in depends.get(name, ()):
            if dependency in modules:  # otherwise built in, or not needed by the kernel
                visit(dependency, (*path, name))
        done.add(name)
        order.append((name, modules[name]))

    for name in modules:
        visit(name)
    return order


def _write(path, data, mode=0o644):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    path.chmod(mode)


def build_initramfs(kernel, directory):
    """A gzip'd newc cpio of busybox-static with its applet links, /init, the udhcpc script and
    the kernel's modules; returns its path."""
    root = directory / "root"
    for name in ("bin", "dev", "proc", "sys", "tmp", "etc", "modules"):
        (root / name).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run(
        [BUSYBOX, "--list"], capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=True
    ).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (root / "bin" / applet).symlink_to("busybox")
    _write(root / "init", INIT, 0o755)
    _write(root / "etc" / "udhcpc.script", UDHCPC_SCRIPT, 0o755)
    order = _module_load_order(kernel.modules) if kernel.modules else []
    for name, data in order:
        _write(root / "modules" / f"{name}.ko", data)
    _write(root / "modules" / "order", "".join(f"{name}\n" for name, _ in order))

    names = []
    for parent, dirs, files in os.walk(root):
        dirs.sort()
        relative = Path(parent).relative_to(root)
        names.extend(str(relative / name) for name in sorted(dirs + files))
    archive = subprocess.run(
        [BUSYBOX, "cpio", "-o", "-H", "newc"],
        input="\n".join(names).encode() + b"\n",
        cwd=root,
        capture_output=True,
        timeout=TOOL_TIMEOUT,
        check=True,
    ).stdout
    initrd = directory / "initrd.gz"
    initrd.write_bytes(gzip.compress(archive, compresslevel=6, mtime=0))
    return initrd


# The guest ---------------------------------------------------------------------------------------


@dataclass
class Guest:
    uuid: str
    serial: str
    disk_serial: str
    mac: str
    log: Path

    def console(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines=60):
        return "\n".join(self.console().splitlines()[-lines:])


def boot(kernel, initrd, directory, append):
    """Run the guest until it powers off; returns the Guest with its serial console log."""
    suffix = secrets.token_hex(3).upper()
    guest = Guest(
        uuid=str(uuidlib.uuid4()),
        serial=f"SN-QEMU-{suffix}",
        disk_serial=f"DISK-QEMU-{suffix}",
        mac="52:54:00:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3)),
        log=directory / "serial.log",
    )
    disk = directory / "disk.img"
    with disk.open("wb") as file:
        file.truncate(DISK_BYTES)
    argv = [
        QEMU,
        "-accel",
        "tcg",
        "-m",
        str(MEMORY_MIB),
        "-nographic",
        "-no-reboot",
        "-kernel",
        str(kernel.path),
        "-initrd",
        str(initrd),
        "-append",
        append,
        "-uuid",
        guest.uuid,
        "-smbios",
        f"type=1,serial={guest.serial},manufacturer=QEMUCorp,product=TestBox",
        "-netdev",
        "user,id=n0",
        # romfile= : no iPXE option ROM, the kernel is given directly.
        "-device",
        f"virtio-net-pci,netdev=n0,mac={guest.mac},romfile=",
        "-drive",
        f"file={disk},format=raw,if=none,id=d0",
        "-device",
        f"virtio-blk-pci,drive=d0,serial={guest.disk_serial}",
        "-serial",
        f"file:{guest.log}",
        "-monitor",
        "none",
    ]
    stderr = directory / "qemu.stderr"
    with stderr.open("wb") as errors:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=errors, stderr=subprocess.STDOUT
        )
        try:
            process.wait(timeout=BOOT_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"the guest did not power off within {BOOT_TIMEOUT} s; serial console:\n"
                f"{guest.tail()}"
            )
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
    assert process.returncode == 0, (
        f"{QEMU} exited with {process.returncode}: {stderr.read_text(errors='replace')}\n"
        f"serial console:\n{guest.tail()}"
    )
    return guest


# The test ----------------------------------------------------------------------------------------


@pytest.fixture
def portal_port(live_server, settings):
    """The live portal's port; it answers to the guest's name for it too."""
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, HOST_FROM_GUEST]
    return live_server.thread.port


def test_a_machine_that_runs_the_agent_appears_in_the_portal_with_its_facts(
    vm_kernel, portal_port, enrolment, acme, admin_user, client, tmp_path
):
    _, key = enrolment
    initrd = build_initramfs(vm_kernel, tmp_path)
    portal = f"http://{HOST_FROM_GUEST}:{portal_port}"
    append = f"console=ttyS0 quiet panic=-1 dcportal.url={portal} dcportal.token={key}"
    started = time.monotonic()
    guest = boot(vm_kernel, initrd, tmp_path, append)
    elapsed = time.monotonic() - started

    console = guest.console()
    statuses = MARKER.findall(console)
    assert statuses == ["0"], f"agent exit status {statuses or 'never printed'}:\n{guest.tail()}"
    assert key not in console.replace(f"dcportal.token={key}", ""), "the token was printed"

    server = Server.objects.filter(tenant=acme, uuid=guest.uuid).first()
    assert server is not None, (
        f"no server with UUID {guest.uuid} in {acme}: servers {list(Server.objects.all())}, "
        f"conflicts {list(Conflict.objects.values('kind', 'detail'))}\n{guest.tail()}"
    )
    assert f"Registered {server.hostname} (created)." in console
    assert str(server.uuid) == guest.uuid.lower()
    assert (server.serial, server.vendor, server.model) == (guest.serial, "QEMUCorp", "TestBox")
    assert server.last_inventory is not None
    assert list(server.interfaces.values_list("name", "mac")) == [("eth0", guest.mac)]
    assert not Conflict.objects.exists()

    facts = server.attributes
    assert facts["cpu"]["count"] == 1 and facts["cpu"]["model"]
    assert 256 * 2**20 < facts["memory"]["total_bytes"] <= MEMORY_MIB * 2**20
    assert [(d["name"], d["size_bytes"], d.get("serial")) for d in facts["disks"]] == [
        ("vda", DISK_BYTES, guest.disk_serial)
    ]
    (interface,) = facts["interfaces"]
    assert (interface["name"], interface["mac"], interface["driver"]) == (
        "eth0",
        guest.mac,
        "virtio_net",
    )
    assert facts["kernel"] == {"release": vm_kernel.release, "machine": "x86_64"}

    # And the portal shows it.
    client.force_login(admin_user)
    page = client.get(reverse("inventory:server", args=[server.pk]))
    assert page.status_code == 200
    text = page.content.decode()
    for shown in (
        server.hostname,
        guest.uuid,
        guest.serial,
        "QEMUCorp",
        "TestBox",
        guest.mac,
        guest.disk_serial,
        facts["cpu"]["model"],
        str(facts["memory"]["total_bytes"]),
        vm_kernel.release,
    ):
        assert html.escape(shown) in text, f"{shown!r} is not on the server's page"
    print(f"guest ran the agent in {elapsed:.1f} s; facts: {facts}")

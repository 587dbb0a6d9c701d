"""Real BMC simulators on 127.0.0.1 for tests and benchmarks (no pytest, no Django here).

- IpmiSim: OpenIPMI's ipmi_sim (Debian openipmi), one process per BMC on its own UDP port, with
  the chassis control script of tests/peers/ipmi_sim/ keeping power and boot device in files.
- SushyEmulator: sushy-tools' Redfish emulator (fake driver), one process on its own TCP port
  serving N systems with distinct UUIDs, HTTP Basic auth from a bcrypt htpasswd file, optionally
  TLS, optionally a journal of the requests that change something (to check what a client sent).

Every wait is bounded; every process is started with an argument list and stopped by its own pid
(terminate, then kill). Use them as context managers, or the pytest fixtures in tests/peers/bmc.py.
"""

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from inventory.power.base import BmcTarget

PEERS_DIR = Path(__file__).resolve().parent
IPMI_SIM_FILES = PEERS_DIR / "ipmi_sim"
SUSHY_JOURNAL_SCRIPT = PEERS_DIR / "sushy_journal.py"
HOST = "127.0.0.1"

# Distinctive passwords, so that a test can tell they never reach a message (IPMI: <= 20 chars).
IPMI_USER, IPMI_PASSWORD = "admin", "ipmi-S3cret-pw"
REDFISH_USER, REDFISH_PASSWORD = "admin", "redfish-S3cret-pw"

START_TIMEOUT = 15  # seconds for a simulator to answer after its start
STOP_TIMEOUT = 5


class PeerMissing(RuntimeError):
    """A simulator program is not installed."""


class PeerFailed(RuntimeError):
    """A simulator did not start (its log's tail is in the message)."""


def free_port(kind=socket.SOCK_STREAM):
    """A port on 127.0.0.1 that nobody uses right now (SOCK_DGRAM for UDP)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def ipmi_sim_program():
    program = shutil.which("ipmi_sim")
    if not program:
        raise PeerMissing("ipmi_sim is not installed (Debian openipmi; .ci/run installs it)")
    return program


def sushy_emulator_program():
    beside = Path(sys.executable).parent / "sushy-emulator"
    program = str(beside) if beside.exists() else shutil.which("sushy-emulator")
    if not program:
        raise PeerMissing("sushy-emulator is not installed (PyPI sushy-tools, requirements-dev)")
    return program


def ipmi_ping(port, *, host=HOST, timeout=0.5):
    """True if an IPMI LAN BMC answers on host:port (Get Channel Authentication Capabilities,
    IPMI 1.5 framing, which needs no session). No pyghmi: its global state stays untouched."""
    header = bytes([0x20, 0x06 << 2])
    body = bytes([0x81, 0x00, 0x38, 0x8E, 0x04])
    message = (
        header + bytes([-sum(header) & 0xFF]) + body + bytes([-sum(body) & 0xFF])
    )  # rsAddr, netFn/LUN, checksum, rqAddr, rqSeq, command, channel, privilege, checksum
    packet = bytes([0x06, 0x00, 0xFF, 0x07, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, len(message)]) + message
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(packet, (host, port))
            reply = sock.recv(512)
        except OSError:  # timeout, or ICMP port unreachable
            return False
    return len(reply) > 20 and reply[0] == 0x06 and reply[3] == 0x07


def _tail(path, lines=20):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class _Process:
    """A child process with a log file, stopped by its own pid only."""

    process = None

    def _spawn(self, argv, *, cwd, log, env=None):
        self.log = Path(log)
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                argv,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # a Ctrl-C of the test run does not reach it twice
            )

    def _wait_until(self, ready, what, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PeerFailed(
                    f"{what} exited with status {self.process.returncode}:\n{_tail(self.log)}"
                )
            if ready():
                return
            time.sleep(0.05)
        self.stop()
        raise PeerFailed(f"{what} did not answer within {timeout} s:\n{_tail(self.log)}")

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    def stop(self):
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


class IpmiSim(_Process):
    """One ipmi_sim BMC in `workdir` (created): lan.conf, chassisctl.sh, state/, ipmi_sim.log."""

    def __init__(self, workdir, *, port=None, password=IPMI_PASSWORD, label=""):
        self.dir = Path(workdir)
        self.port = port
        self.password = password
        self.label = label or self.dir.name
        self.guid = uuid.uuid4()

    def start(self, timeout=START_TIMEOUT):
        program = ipmi_sim_program()
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "state").mkdir(exist_ok=True)
        shutil.copy(IPMI_SIM_FILES / "chassisctl.sh", self.dir / "chassisctl.sh")
        (self.dir / "chassisctl.sh").chmod(0o755)
        shutil.copy(IPMI_SIM_FILES / "sim.emu", self.dir / "sim.emu")
        for attempt in range(3):  # a free port can be taken between the check and the bind
            port = self.port or free_port(socket.SOCK_DGRAM)
            self._write_config(port)
            self._spawn(
                [program, "-c", "lan.conf", "-f", "sim.emu", "-s", "state", "-n"],
                cwd=self.dir,
                log=self.dir / "ipmi_sim.log",
            )
            try:
                self._wait_until(
                    lambda port=port: ipmi_ping(port, timeout=0.2),
                    f"ipmi_sim on {HOST}:{port}",
                    timeout,
                )
            except PeerFailed:
                self.stop()
                if self.port or attempt == 2:
                    raise
                continue
            self.port = port
            return self

    def _write_config(self, port):
        text = (IPMI_SIM_FILES / "lan.conf.in").read_text()
        text = text.replace("@DIR@", str(self.dir)).replace("@PORT@", str(port))
        text = re.sub(r'(user 2 true\s+"admin"\s+)"password"', rf'\1"{self.password}"', text)
        text = re.sub(r"guid [0-9a-f]{32}", f"guid {self.guid.hex}", text)
        (self.dir / "lan.conf").write_text(text)

    # What the chassis control script keeps: the simulated machine itself.
    @property
    def power(self):
        try:
            return "on" if (self.dir / "power.state").read_text().strip() == "1" else "off"
        except FileNotFoundError:
            return "off"

    @power.setter
    def power(self, value):
        (self.dir / "power.state").write_text("1\n" if value == "on" else "0\n")

    @property
    def boot_device(self):
        """What ipmi_sim last handed the script: pxe, default (= hard disk), none, cdrom, bios."""
        try:
            return (self.dir / "boot.state").read_text().strip()
        except FileNotFoundError:
            return "default"

    def chassis_log(self):
        """What ipmi_sim asked the chassis to do, oldest first: "power 0", "reset 1", ..."""
        try:
            return (self.dir / "chassis.log").read_text().splitlines()
        except FileNotFoundError:
            return []

    def target(self, *, username=IPMI_USER, password=None, **options):
        return BmcTarget(
            address=HOST,
            port=self.port,
            username=username,
            password=self.password if password is None else password,
            options=options,
            label=self.label,
        )

    def ipmitool(self, *args, timeout=15):
        """Run ipmitool against this BMC (cipher suite 3: without it each call takes 10 s)."""
        program = shutil.which("ipmitool")
        if not program:
            raise PeerMissing("ipmitool is not installed (Debian package ipmitool)")
        argv = [program, "-I", "lanplus", "-C", "3", "-H", HOST, "-p", str(self.port)]
        argv += ["-U", IPMI_USER, "-E", *args]  # -E: the password from IPMI_PASSWORD
        env = {**os.environ, "IPMI_PASSWORD": self.password}
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, env=env, check=True
        ).stdout


@contextlib.contextmanager
def ipmi_sims(n, workdir, **kwargs):
    """n running IpmiSim (started in parallel), all stopped at the end, also on failure."""
    workdir = Path(workdir)
    sims = [IpmiSim(workdir / f"bmc{i + 1:03d}", **kwargs) for i in range(n)]
    try:
        with ThreadPoolExecutor(max_workers=min(16, max(1, n))) as pool:
            for future in [pool.submit(sim.start) for sim in sims]:
                future.result()
        yield sims
    finally:
        for sim in sims:
            sim.stop()


class SushyEmulator(_Process):
    """sushy-emulator (fake driver) in `workdir`: N systems node1..nodeN with distinct UUIDs.

    power: initial power state of every system ("Off"), or a list with one state per system.
    auth:  HTTP Basic auth with REDFISH_USER and `password` (an htpasswd file with bcrypt, the
           only digest sushy-tools accepts); the service root stays open, as on real BMCs.
    tls:   a (certificate, key) pair of files to serve HTTPS (see make_test_ca).
    journal: record POST/PATCH/PUT/DELETE requests that passed auth (method, path, JSON body)
           to journal.jsonl, read back with .journal(); runs tests/peers/sushy_journal.py, which
           is sushy-emulator's own main with that hook.
    """

    def __init__(
        self,
        workdir,
        *,
        systems=1,
        port=None,
        password=REDFISH_PASSWORD,
        auth=True,
        power="Off",
        tls=None,
        journal=False,
    ):
        self.dir = Path(workdir)
        self.port = port
        self.password = password
        self.auth = auth
        self.tls = tls
        self.journal_file = self.dir / "journal.jsonl" if journal else None
        powers = [power] * systems if isinstance(power, str) else list(power)
        if len(powers) != systems:
            raise ValueError("one power state per system")
        self.systems = [
            {
                "uuid": str(uuid.uuid4()),
                "name": f"node{i + 1}",
                "power_state": powers[i],
                "external_notifier": False,
                "nics": [{"mac": f"52:54:00:aa:{(i >> 8) & 0xFF:02x}:{i & 0xFF:02x}"}],
            }
            for i in range(systems)
        ]

    @property
    def scheme(self):
        return "https" if self.tls else "http"

    @property
    def base_url(self):
        return f"{self.scheme}://{HOST}:{self.port}"

    def start(self, timeout=START_TIMEOUT):
        program = sushy_emulator_program()
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.auth:
            import bcrypt  # a dependency of sushy-tools

            digest = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=4)).decode()
            (self.dir / "htpasswd").write_text(f"{REDFISH_USER}:{digest}\n")
        argv = [sys.executable, str(SUSHY_JOURNAL_SCRIPT)] if self.journal_file else [program]
        for attempt in range(3):  # a free port can be taken between the check and the bind
            port = self.port or free_port()
            config = self.dir / "emulator.conf"
            config.write_text(self._config(port))
            self._spawn(
                [*argv, "--config", str(config)], cwd=self.dir, log=self.dir / "emulator.log"
            )
            try:
                self._wait_until(
                    lambda port=port: self._answers(port),
                    f"sushy-emulator on {HOST}:{port}",
                    timeout,
                )
            except PeerFailed:
                self.stop()
                if self.port or attempt == 2:
                    raise
                continue
            self.port = port
            self._create_systems()
            return self

    def _create_systems(self):
        """Have the emulator build its systems before any client arrives.

        The emulator creates its fake-driver systems lazily, on the first request that needs
        them, and that creation is not thread-safe: parallel first requests each build a
        driver, and a late one writes every system's initial state over changes made through
        an earlier one meanwhile (a power-on accepted and then lost: the system stays Off).
        One request before the clients come makes the creation happen once."""
        request = urllib.request.Request(f"{self.base_url}/redfish/v1/Systems")
        if self.auth:
            token = base64.b64encode(f"{REDFISH_USER}:{self.password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(  # noqa: S310 (the emulator on loopback)
                request, timeout=START_TIMEOUT, context=self._probe_context()
            ) as response:
                members = json.load(response)["Members"]
        except (urllib.error.URLError, OSError, ValueError, KeyError) as error:
            self.stop()
            raise PeerFailed(f"sushy-emulator did not list its systems: {error}") from error
        if len(members) != len(self.systems):
            self.stop()
            raise PeerFailed(
                f"sushy-emulator lists {len(members)} systems, not {len(self.systems)}"
            )

    def _probe_context(self):
        if not self.tls:
            return None
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # only "is it up?": the tests check TLS
        return context

    def _config(self, port):
        settings = {
            "SUSHY_EMULATOR_LISTEN_IP": HOST,
            "SUSHY_EMULATOR_LISTEN_PORT": port,
            "SUSHY_EMULATOR_FAKE_DRIVER": True,
            "SUSHY_EMULATOR_STATE_DIR": str(self.dir / "state"),
            "SUSHY_EMULATOR_FAKE_SYSTEMS": self.systems,
        }
        if self.auth:
            settings["SUSHY_EMULATOR_AUTH_FILE"] = str(self.dir / "htpasswd")
        if self.tls:
            settings["SUSHY_EMULATOR_SSL_CERT"] = str(self.tls[0])
            settings["SUSHY_EMULATOR_SSL_KEY"] = str(self.tls[1])
        if self.journal_file:
            settings["DCPORTAL_JOURNAL_FILE"] = str(self.journal_file)
        # The emulator reads its configuration as Python; repr() writes valid literals.
        return "".join(f"{key} = {value!r}\n" for key, value in settings.items())

    def _answers(self, port):
        url = f"{self.scheme}://{HOST}:{port}/redfish/v1/"
        try:
            with urllib.request.urlopen(  # noqa: S310
                url, timeout=1, context=self._probe_context()
            ) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def targets(self, *, password=None, **options):
        """One BmcTarget per system (system_id = its UUID; scheme http unless TLS)."""
        options = {"scheme": self.scheme, **options}
        return [
            BmcTarget(
                address=HOST,
                port=self.port,
                username=REDFISH_USER,
                password=self.password if password is None else password,
                options={"system_id": system["uuid"], **options},
                label=system["name"],
            )
            for system in self.systems
        ]

    def journal(self):
        if not self.journal_file or not self.journal_file.exists():
            return []
        return [json.loads(line) for line in self.journal_file.read_text().splitlines() if line]


def make_test_ca(directory, *, host=HOST):
    """A throw-away CA and a server certificate for `host` (an IP address) signed by it.
    Returns (ca_certificate, server_certificate, server_key) paths."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def build(subject, issuer, public_key, signing_key, *, ca):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            ).add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
                critical=False,
            ).add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        return builder.sign(signing_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = build("dcportal test CA", "dcportal test CA", ca_key.public_key(), ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build(host, "dcportal test CA", key.public_key(), ca_key, ca=False)
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths

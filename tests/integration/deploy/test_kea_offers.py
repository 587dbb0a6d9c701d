"""A real kea-dhcp4, serving on 127.0.0.1 the configuration the portal generates, answers a
relay-style DHCPDISCOVER with the reserved address per MAC, the next-server, and the boot file
per client: legacy BIOS PXE, UEFI PXE (option 93 = 7 or 9), and iPXE (user class "iPXE"), which
gets the portal's HTTP boot script.

The generated configuration is served as written, adapted only where loopback needs it (see
/work/shared/PEERS.md): UDP sockets on lo, a relay address per subnet (127.0.0.2 and 127.0.0.3,
the DHCPDISCOVER's giaddr), leases in memory, free ports instead of 67/68. Every wait is bounded
and the daemon is always stopped.
"""

import json
import os
import socket
import struct
import subprocess
import time
from dataclasses import dataclass

import pytest

from deploy import dhcp_services
from tests.integration.deploy.dhcp_helpers import (
    BOOT_URL,
    NEXT_SERVER,
    SCRIPT_URL,
    daemon,
    mac,
    make_fleet,
)

pytestmark = pytest.mark.django_db

RELAYS = {"10.20.0.0/24": "127.0.0.2", "10.20.1.0/24": "127.0.0.3"}
START_SECONDS = 20
ANSWER_SECONDS = 2
ATTEMPTS = 5
MAGIC_COOKIE = b"\x63\x82\x53\x63"
DHCPDISCOVER, DHCPOFFER = 1, 2


@dataclass
class Offer:
    yiaddr: str
    siaddr: str
    file: str
    options: dict  # code -> bytes

    @property
    def message_type(self):
        return self.options[53][0]


def free_ports():
    """A server port free on 127.0.0.1 and a client port free on every relay address."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            server_port = probe.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            client_port = probe.getsockname()[1]
        if server_port == client_port:
            continue
        try:
            for address in RELAYS.values():
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                    probe.bind((address, client_port))
        except OSError:
            continue
        return server_port, client_port
    raise AssertionError("no free UDP ports on the loopback addresses")


def adapt_for_loopback(config, log_path):
    dhcp4 = config["Dhcp4"]
    dhcp4["interfaces-config"] = {"interfaces": ["lo"], "dhcp-socket-type": "udp"}
    dhcp4["lease-database"] = {"type": "memfile", "persist": False}
    dhcp4["loggers"] = [
        {"name": "kea-dhcp4", "output_options": [{"output": str(log_path)}], "severity": "INFO"}
    ]
    for subnet in dhcp4["subnet4"]:
        subnet["relay"] = {"ip-addresses": [RELAYS[subnet["subnet"]]]}
    return config


class KeaServer:
    def __init__(self, process, server_port, client_port, log_path):
        self.process = process
        self.server_port = server_port
        self.client_port = client_port
        self.log_path = log_path

    def log(self):
        return self.log_path.read_text() if self.log_path.exists() else ""

    def wait_started(self):
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.process.stdout.read()
                raise AssertionError(f"kea-dhcp4 exited {self.process.returncode}:\n{output}")
            if "DHCP4_STARTED" in self.log():
                return
            time.sleep(0.1)
        raise AssertionError(f"kea-dhcp4 did not start in {START_SECONDS} s:\n{self.log()}")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process.stdout.close()

    def discover(self, client_mac, *, subnet="10.20.0.0/24", arch=None, user_class=None):
        """Send a relayed DHCPDISCOVER as the relay of `subnet`; the DHCPOFFER as an Offer."""
        giaddr = RELAYS[subnet]
        xid = int.from_bytes(os.urandom(4), "big")
        packet = request_packet(xid, client_mac, giaddr, arch, user_class)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((giaddr, self.client_port))
            sock.settimeout(ANSWER_SECONDS)
            for _ in range(ATTEMPTS):
                sock.sendto(packet, ("127.0.0.1", self.server_port))
                try:
                    while True:
                        data = sock.recv(4096)
                        offer = parse_reply(data, xid)
                        if offer is not None:
                            return offer
                except TimeoutError:
                    continue
        raise AssertionError(f"no offer for {client_mac} after {ATTEMPTS} tries:\n{self.log()}")


def request_packet(xid, client_mac, giaddr, arch, user_class):
    chaddr = bytes.fromhex(client_mac.replace(":", "")).ljust(16, b"\0")
    header = struct.pack(
        "!BBBBIHH4s4s4s4s16s64s128s",
        1,  # BOOTREQUEST
        1,  # ethernet
        6,
        1,  # hops: one relay
        xid,
        0,
        0,
        bytes(4),
        bytes(4),
        bytes(4),
        socket.inet_aton(giaddr),
        chaddr,
        bytes(64),
        bytes(128),
    )
    options = bytes([53, 1, DHCPDISCOVER])
    if arch is not None:
        options += bytes([93, 2]) + struct.pack("!H", arch)
        options += bytes([60, 9]) + b"PXEClient"
    if user_class is not None:
        options += bytes([77, len(user_class)]) + user_class.encode()
    options += bytes([55, 6, 1, 3, 6, 12, 15, 67])
    return header + MAGIC_COOKIE + options + bytes([255])


def parse_reply(data, xid):
    if len(data) < 240 or data[0] != 2 or struct.unpack("!I", data[4:8])[0] != xid:
        return None
    assert data[236:240] == MAGIC_COOKIE
    options, index = {}, 240
    while index < len(data) and data[index] != 255:
        code = data[index]
        if code == 0:
            index += 1
            continue
        length = data[index + 1]
        options[code] = data[index + 2 : index + 2 + length]
        index += 2 + length
    return Offer(
        yiaddr=socket.inet_ntoa(data[16:20]),
        siaddr=socket.inet_ntoa(data[20:24]),
        file=data[108:236].split(b"\0", 1)[0].decode(),
        options=options,
    )


@pytest.fixture
def kea_for(tmp_path, tenants, admin_user):
    """kea_for(boot_mode): a running kea-dhcp4 serving the generated configuration."""
    program = daemon("kea-dhcp4", "kea-dhcp4-server")
    make_fleet(tenants[0])
    servers = []

    def start(boot_mode):
        text = dhcp_services.generate(
            user=admin_user, fmt="kea", boot_url=BOOT_URL, boot_mode=boot_mode
        ).text
        directory = tmp_path / boot_mode
        directory.mkdir()
        log_path = directory / "kea.log"
        config_path = directory / "kea-dhcp4.conf"
        config_path.write_text(json.dumps(adapt_for_loopback(json.loads(text), log_path)))
        server_port, client_port = free_ports()
        env = {
            **os.environ,
            "KEA_PIDFILE_DIR": str(directory),
            "KEA_LOCKFILE_DIR": str(directory),
        }
        process = subprocess.Popen(
            [program, "-c", str(config_path), "-p", str(server_port), "-P", str(client_port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=directory,
        )
        server = KeaServer(process, server_port, client_port, log_path)
        servers.append(server)
        server.wait_started()
        return server

    yield start
    for server in servers:
        server.stop()


def test_ipxe_mode_offers(kea_for):
    kea = kea_for("ipxe")

    bios = kea.discover(mac(0), arch=0)
    assert bios.message_type == DHCPOFFER
    assert (bios.yiaddr, bios.siaddr, bios.file) == ("10.20.0.10", NEXT_SERVER, "undionly.kpxe")
    assert bios.options[3] == socket.inet_aton("10.20.0.1")
    assert bios.options[6] == socket.inet_aton("10.20.0.53") + socket.inet_aton("10.20.0.54")
    assert bios.options[15].rstrip(b"\0") == b"lab.example.com"

    uefi = kea.discover(mac(1), arch=7)
    assert (uefi.yiaddr, uefi.siaddr, uefi.file) == ("10.20.0.11", NEXT_SERVER, "ipxe.efi")
    uefi_bc = kea.discover(mac(4), arch=9)
    assert (uefi_bc.yiaddr, uefi_bc.file) == ("10.20.0.14", "ipxe.efi")

    # iPXE, chainloaded from either firmware, gets the script whatever its architecture.
    ipxe = kea.discover(mac(2), arch=7, user_class="iPXE")
    assert (ipxe.yiaddr, ipxe.siaddr, ipxe.file) == ("10.20.0.12", NEXT_SERVER, SCRIPT_URL)
    ipxe_bios = kea.discover(mac(5), arch=0, user_class="iPXE")
    assert (ipxe_bios.yiaddr, ipxe_bios.file) == ("10.20.0.15", SCRIPT_URL)


def test_second_interfaces_and_unknown_clients(kea_for):
    kea = kea_for("ipxe")
    storage = kea.discover(mac(3, 1), subnet="10.20.1.0/24", arch=0)
    assert (storage.yiaddr, storage.file) == ("10.20.1.13", "undionly.kpxe")
    assert storage.options[3] == socket.inet_aton("10.20.1.1")
    # A MAC without a reservation gets a lease from a pool, and a boot file all the same.
    stranger = kea.discover("02:00:00:00:99:01", arch=7)
    first, last = (
        int.from_bytes(socket.inet_aton(a), "big") for a in ("10.20.0.200", "10.20.0.249")
    )
    assert first <= int.from_bytes(socket.inet_aton(stranger.yiaddr), "big") <= last
    assert stranger.file == "ipxe.efi"


def test_pxelinux_mode_offers(kea_for):
    kea = kea_for("pxelinux")
    bios = kea.discover(mac(6), arch=0)
    assert (bios.yiaddr, bios.siaddr, bios.file) == ("10.20.0.16", NEXT_SERVER, "pxelinux.0")
    uefi = kea.discover(mac(7), arch=7)
    assert (uefi.yiaddr, uefi.file) == ("10.20.0.17", "grubx64.efi")
    # Without chainloading, an iPXE ROM is just another BIOS PXE client.
    ipxe = kea.discover(mac(8), arch=0, user_class="iPXE")
    assert (ipxe.yiaddr, ipxe.file) == ("10.20.0.18", "pxelinux.0")

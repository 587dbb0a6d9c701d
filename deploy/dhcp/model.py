"""What a DHCP configuration says, independent of the daemon that will read it.

Plain dataclasses filled by deploy.dhcp_services from the inventory and read by the renderers
(isc.py, kea.py, dnsmasq.py). No ORM here: the renderers and the conflict checks are pure
functions over these values, testable against the real daemons without a database.
"""

import ipaddress
from dataclasses import dataclass

IPXE, PXELINUX, GRUB = "ipxe", "pxelinux", "grub"
BOOT_MODES = (IPXE, PXELINUX, GRUB)

# What each boot mode hands to a PXE ROM, by firmware: (legacy BIOS, UEFI x86-64).
# "ipxe" chainloads iPXE, which then asks again and gets the portal's HTTP boot script.
# PXELINUX cannot boot UEFI over the network, so UEFI machines get GRUB in both other modes.
DEFAULT_FILES = {
    IPXE: ("undionly.kpxe", "ipxe.efi"),
    PXELINUX: ("pxelinux.0", "grubx64.efi"),
    GRUB: ("grub/i386-pc/core.0", "grubx64.efi"),
}

# DHCP option 93 (client system architecture, RFC 4578): EFI BC and EFI x86-64.
UEFI_ARCHITECTURES = (7, 9)
# The user class (option 77) iPXE sends, by which it is told apart from the PXE ROM it replaced.
IPXE_USER_CLASS = "iPXE"
# The BOOTP `file` field holds 128 bytes.
MAX_BOOT_FILE = 128


@dataclass(frozen=True)
class BootOptions:
    """Where PXE clients fetch their first file, and which file each kind of client gets."""

    next_server: ipaddress.IPv4Address
    mode: str = IPXE
    bios_file: str = ""
    uefi_file: str = ""
    ipxe_script_url: str = ""  # what iPXE fetches; used in the "ipxe" mode only

    def __post_init__(self):
        if self.mode not in BOOT_MODES:
            raise ValueError(f"unknown boot mode {self.mode!r}; one of {', '.join(BOOT_MODES)}")
        if self.mode == IPXE and not self.ipxe_script_url:
            raise ValueError("the ipxe boot mode needs the URL of the iPXE script")
        bios, uefi = DEFAULT_FILES[self.mode]
        object.__setattr__(self, "bios_file", self.bios_file or bios)
        object.__setattr__(self, "uefi_file", self.uefi_file or uefi)

    @property
    def chainloads_ipxe(self):
        """True when iPXE clients (user class "iPXE") get the HTTP script instead of a file."""
        return self.mode == IPXE


@dataclass(frozen=True)
class DhcpHost:
    """A reservation: this MAC always gets this address and this host name."""

    name: str  # the object it comes from, as people know it ("web01.example.com:eth0")
    mac: str  # aa:bb:cc:dd:ee:ff
    address: ipaddress.IPv4Address
    hostname: str

    def describe(self):
        return f"{self.name} ({self.mac})"


@dataclass(frozen=True)
class DhcpPool:
    """A dynamic range: addresses leased to clients without a reservation."""

    start: ipaddress.IPv4Address
    end: ipaddress.IPv4Address

    def __contains__(self, address):
        return self.start <= address <= self.end

    def __str__(self):
        return f"{self.start}-{self.end}"


@dataclass(frozen=True)
class DhcpSubnet:
    id: int  # stable across regenerations: Kea binds leases to it, dnsmasq tags by it
    network: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address | None = None
    dns: tuple = ()  # IPv4Address, in order of preference
    domain: str = ""
    pools: tuple = ()  # DhcpPool
    hosts: tuple = ()  # DhcpHost
    name: str = ""

    @property
    def netmask(self):
        return self.network.netmask

    def describe(self):
        return f"{self.network} ({self.name})" if self.name else str(self.network)


@dataclass(frozen=True)
class DhcpConfig:
    subnets: tuple  # DhcpSubnet
    boot: BootOptions
    # Where the daemon listens; Kea's "*" is every interface (ISC and dnsmasq decide this on
    # their command line).
    interfaces: tuple = ("*",)

    @property
    def hosts(self):
        return [host for subnet in self.subnets for host in subnet.hosts]

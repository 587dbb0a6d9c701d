"""dnsmasq DHCP configuration (a file for -C or /etc/dnsmasq.d/) from a DhcpConfig.

dnsmasq's options are comma-separated words with no quoting a host name could rely on, so every
value is checked against what the option can carry and a value that does not fit raises
ValueError instead of becoming a different option. Tags tie things together: each subnet's
dhcp-range sets `subnet-<id>`, which selects its router, name servers and domain; the boot file
is chosen by the tags of the client (`ipxe` from the user class, `uefi` from option 93), and
the three dhcp-boot lines exclude each other so dnsmasq's order of preference does not matter.
"""

import re

from deploy.dhcp.model import IPXE_USER_CLASS, UEFI_ARCHITECTURES

HEADER = (
    "# DHCP configuration written by dcportal (manage.py makedhcp --format dnsmasq).\n"
    "# Generated from the inventory: changes made here are overwritten.\n"
)
TAG_IPXE = "ipxe"
TAG_UEFI = "uefi"

_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_MAC = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
# A boot file or URL: printable ASCII without the comma that separates fields, blanks, quotes,
# the backslash dnsmasq treats as an escape and the `#` of comments.
_WORD = re.compile(r"[!$%&()*+\-./0-9:;<=>?@A-Z\[\]^_`a-z{|}~]+")
_COMMENT_UNSAFE = re.compile(r"[^ -~]")


def _checked(pattern, value, what):
    if not pattern.fullmatch(value):
        raise ValueError(f"{value!r} cannot be written as a dnsmasq {what}")
    return value


def tag(subnet):
    return f"subnet-{subnet.id}"


def _boot_lines(boot):
    server = str(boot.next_server)
    bios = _checked(_WORD, boot.bios_file, "boot file")
    uefi = _checked(_WORD, boot.uefi_file, "boot file")
    lines = [f"dhcp-match=set:{TAG_UEFI},option:client-arch,{arch}" for arch in UEFI_ARCHITECTURES]
    if boot.chainloads_ipxe:
        url = _checked(_WORD, boot.ipxe_script_url, "boot URL")
        lines += [
            f"dhcp-userclass=set:{TAG_IPXE},{IPXE_USER_CLASS}",
            f"dhcp-boot=tag:{TAG_IPXE},{url},,{server}",
            f"dhcp-boot=tag:!{TAG_IPXE},tag:{TAG_UEFI},{uefi},,{server}",
            f"dhcp-boot=tag:!{TAG_IPXE},tag:!{TAG_UEFI},{bios},,{server}",
        ]
    else:
        lines += [
            f"dhcp-boot=tag:{TAG_UEFI},{uefi},,{server}",
            f"dhcp-boot=tag:!{TAG_UEFI},{bios},,{server}",
        ]
    return lines


def _subnet_lines(subnet):
    name = tag(subnet)
    mask = subnet.netmask
    lines = [f"# {_COMMENT_UNSAFE.sub('?', subnet.describe())}"]
    if subnet.pools:
        lines += [f"dhcp-range=set:{name},{p.start},{p.end},{mask}" for p in subnet.pools]
    else:
        # Reservations only: dnsmasq still needs the network declared to answer in it.
        lines.append(f"dhcp-range=set:{name},{subnet.network.network_address},static,{mask}")
    if subnet.gateway is not None:
        lines.append(f"dhcp-option=tag:{name},option:router,{subnet.gateway}")
    if subnet.dns:
        servers = ",".join(str(a) for a in subnet.dns)
        lines.append(f"dhcp-option=tag:{name},option:dns-server,{servers}")
    if subnet.domain:
        domain = _checked(_HOSTNAME, subnet.domain, "domain")
        lines.append(f"dhcp-option=tag:{name},option:domain-name,{domain}")
    for host in subnet.hosts:
        mac = _checked(_MAC, host.mac, "MAC address")
        hostname = _checked(_HOSTNAME, host.hostname, "host name")
        lines.append(f"dhcp-host={mac},{host.address},{hostname}")
    return lines


def render(config):
    """The dnsmasq configuration text of `config`."""
    lines = [HEADER, *_boot_lines(config.boot)]
    for subnet in config.subnets:
        lines.append("")
        lines += _subnet_lines(subnet)
    lines.append("")
    return "\n".join(lines)

"""ISC dhcpd.conf from a DhcpConfig.

Every text value is written as a quoted string with the escapes dhcpd's lexer reads (the same
ones deploy.dhcp.isc_parser decodes): `\\"`, `\\\\` and three-digit octal for anything outside
printable ASCII, so no host name or domain can end a string or a statement early. Host block
names are identifiers, not strings (dhcpd accepts no quoted name there), so they are reduced to
letters, digits, dots and hyphens and made unique; the real name travels in `option host-name`.

Host declarations are global in dhcpd whatever block they sit in (it warns when they are nested),
so they follow the subnets at the top level.
"""

import re

from deploy.dhcp.model import IPXE_USER_CLASS, UEFI_ARCHITECTURES

HEADER = (
    "# DHCP configuration written by dcportal (manage.py makedhcp --format isc).\n"
    "# Generated from the inventory: changes made here are overwritten.\n"
)
# dhcpd knows option 93 under no name a config can test, so it is declared here.
ARCH_OPTION = "dcportal-client-arch"

_PLAIN_STRING = re.compile(r"[ !#-\[\]-~]*")  # printable ASCII but '"' and '\'
_NOT_IDENTIFIER = re.compile(r"[^A-Za-z0-9.-]+")
_MAC = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
_COMMENT_UNSAFE = re.compile(r"[^ -~]")


def quote(value):
    """`value` as a dhcpd.conf string literal."""
    if _PLAIN_STRING.fullmatch(value):
        return f'"{value}"'
    out = []
    for byte in value.encode("utf-8"):
        if byte in (0x22, 0x5C):
            out.append("\\" + chr(byte))
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            # Always three digits: dhcpd reads up to three, so a digit after it stays a digit.
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def comment(text):
    """Text safe to follow a `#`: one line, printable ASCII."""
    return _COMMENT_UNSAFE.sub("?", text)


def identifier(name, taken):
    """A dhcpd host-block name made from `name`, not in `taken` (which it is added to)."""
    base = _NOT_IDENTIFIER.sub("-", name).strip("-.") or "host"
    candidate, number = base, 1
    while candidate in taken:
        number += 1
        candidate = f"{base}-{number}"
    taken.add(candidate)
    return candidate


def _mac(value):
    if not _MAC.fullmatch(value):
        raise ValueError(f"{value!r} is not a MAC address in aa:bb:cc:dd:ee:ff form")
    return value


def _boot_lines(boot):
    arch_test = " or ".join(
        f"option {ARCH_OPTION} = {arch >> 8:02x}:{arch & 0xFF:02x}" for arch in UEFI_ARCHITECTURES
    )
    lines = [f"next-server {boot.next_server};"]
    if boot.chainloads_ipxe:
        lines += [
            f"if exists user-class and option user-class = {quote(IPXE_USER_CLASS)} {{",
            f"  filename {quote(boot.ipxe_script_url)};",
            f"}} elsif {arch_test} {{",
        ]
    else:
        lines.append(f"if {arch_test} {{")
    lines += [
        f"  filename {quote(boot.uefi_file)};",
        "} else {",
        f"  filename {quote(boot.bios_file)};",
        "}",
    ]
    return lines


def _subnet_lines(subnet):
    lines = [
        f"# {comment(subnet.describe())}",
        f"subnet {subnet.network.network_address} netmask {subnet.netmask} {{",
    ]
    if subnet.gateway is not None:
        lines.append(f"  option routers {subnet.gateway};")
    if subnet.dns:
        lines.append(f"  option domain-name-servers {', '.join(str(a) for a in subnet.dns)};")
    if subnet.domain:
        lines.append(f"  option domain-name {quote(subnet.domain)};")
    for pool in subnet.pools:
        lines.append(f"  range {pool.start} {pool.end};")
    lines.append("}")
    return lines


def render(config):
    """The dhcpd.conf text of `config`."""
    lines = [
        HEADER,
        f"option {ARCH_OPTION} code 93 = unsigned integer 16;",
        *_boot_lines(config.boot),
    ]
    for subnet in config.subnets:
        lines.append("")
        lines += _subnet_lines(subnet)
    taken = set()
    append = lines.append
    for subnet in config.subnets:
        if subnet.hosts:
            append("")
            append(f"# Reservations in {comment(str(subnet.network))}")
        for host in subnet.hosts:
            append(f"host {identifier(host.name, taken)} {{")
            append(f"  hardware ethernet {_mac(host.mac)};")
            append(f"  fixed-address {host.address};")
            append(f"  option host-name {quote(host.hostname)};")
            append("}")
    lines.append("")
    return "\n".join(lines)

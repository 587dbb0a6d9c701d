"""The generic iPXE script and the MAC address forms that firmware puts in a URL or file name.

No database here: the chain script is fixed text around the portal's URL, and the parsers turn
what iPXE, PXELinux and GRUB ask for into the portal's MAC form (aa:bb:cc:dd:ee:ff).
"""

import re
from dataclasses import dataclass
from urllib.parse import unquote

_HEX12 = re.compile(r"^[0-9a-f]{12}$")
_SEPARATED = re.compile(r"^[0-9a-f]{1,2}([:-])(?:[0-9a-f]{1,2}\1){4}[0-9a-f]{1,2}$")
_DOTTED = re.compile(r"^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}$")
# The ARP hardware type of Ethernet, which PXELinux and GRUB put before the MAC.
ETHERNET = "01"

CHAIN = """\
#!ipxe
# dcportal: fetch the script of this machine, named by the MAC of the NIC it boots from.
chain --autofree {base_url}/boot/ipxe/${{net0/mac:hexhyp}}?uuid=${{uuid}}&serial=${{serial:uristring}} || goto failed
exit
:failed
echo dcportal: no boot script from {base_url}; booting the local disk in 10 seconds
sleep 10
exit
"""  # noqa: E501 (one iPXE command per line)


def chain_script(base_url):
    """The script every machine gets first (GET /boot/ipxe)."""
    return CHAIN.format(base_url=base_url.rstrip("/"))


def parse_mac(text):
    """`text` as aa:bb:cc:dd:ee:ff, or None if it is no MAC address.

    Takes aa:bb:.., aa-bb-.. (iPXE's hexhyp), AABBCCDDEEFF, aabb.ccdd.eeff, any case, and the
    percent-encoded forms of them (iPXE encodes ':' in URLs; a proxy may encode twice).
    """
    if not isinstance(text, str) or len(text) > 64:
        return None
    value = text.strip()
    for _ in range(2):
        if "%" not in value:
            break
        value = unquote(value)
    value = value.strip().lower()
    if _SEPARATED.match(value):
        octets = re.split(r"[:-]", value)
        return ":".join(octet.zfill(2) for octet in octets)
    if _DOTTED.match(value):
        value = value.replace(".", "")
    if _HEX12.match(value):
        return ":".join(value[i : i + 2] for i in range(0, 12, 2))
    return None


def mac_from_hardware_name(name):
    """The MAC of a PXELinux/GRUB hardware name "01-aa-bb-cc-dd-ee-ff", else None."""
    if not isinstance(name, str):
        return None
    prefix, _, rest = name.partition("-")
    if prefix != ETHERNET or not rest:
        return None
    return parse_mac(rest)


def mac_from_pxelinux_name(name):
    """The MAC a pxelinux.cfg/<name> request is for, or None for the other names PXELinux
    tries (UUID, hexadecimal IP address prefixes, "default")."""
    return mac_from_hardware_name(name)


GRUB_PREFIX = "grub.cfg-"


def mac_from_grub_name(name):
    """The MAC a GRUB network config name is for: grub.cfg-01-aa-bb-.. (GRUB's own form) or
    grub.cfg-aa:bb:.. ; None for grub.cfg, grub.cfg-<hex IP> and the like."""
    if not isinstance(name, str) or not name.startswith(GRUB_PREFIX):
        return None
    rest = name.removeprefix(GRUB_PREFIX)
    return mac_from_hardware_name(rest) or (parse_mac(rest) if ":" in rest else None)


# What a PXELinux or GRUB config name asks for ----------------------------------------------------

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(frozen=True)
class ConfigRequest:
    """One config file a bootloader asks for: by MAC, by SMBIOS UUID, or the generic one."""

    kind: str  # "pxelinux" or "grub"
    mac: str | None = None
    uuid: str | None = None

    @property
    def generic(self):
        return self.mac is None and self.uuid is None


def pxelinux_request(name):
    """What pxelinux.cfg/<name> asks for, or None for a name to answer "not found".

    PXELinux tries its UUID first, then 01-<mac>, then its IP address in hexadecimal, shorter
    and shorter, then "default": the UUID name is answered only for a server known by that
    UUID (any other answer would stop the search before the MAC), hexadecimal names not at
    all, "default" with the local-disk config."""
    if not isinstance(name, str):
        return None
    mac = mac_from_pxelinux_name(name)
    if mac:
        return ConfigRequest("pxelinux", mac=mac)
    if _UUID.match(name.lower()):
        return ConfigRequest("pxelinux", uuid=name.lower())
    if name == "default":
        return ConfigRequest("pxelinux")
    return None


def grub_request(name):
    """What a GRUB config <name> asks for: grub.cfg-01-<mac> or grub.cfg-<mac> by MAC, any other
    grub.cfg* (GRUB tries its hexadecimal IP address, then grub.cfg) the local-disk config."""
    if not isinstance(name, str) or not name.startswith("grub.cfg"):
        return None
    mac = mac_from_grub_name(name)
    return ConfigRequest("grub", mac=mac) if mac else ConfigRequest("grub")


def tftp_request(path):
    """The ConfigRequest for a TFTP file name, or None for a plain file: pxelinux.cfg/<name>,
    grub/<grub name> and <grub name> at the root."""
    if not isinstance(path, str):
        return None
    path = path.replace("\\", "/").lstrip("/")
    directory, _, name = path.rpartition("/")
    if directory == "pxelinux.cfg":
        return pxelinux_request(name)
    if directory in ("", "grub", "boot/grub"):
        return grub_request(name)
    return None

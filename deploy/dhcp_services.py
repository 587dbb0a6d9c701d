"""DHCP configurations from the inventory, for makedhcp, the API and the portal page.

    output = generate(user=user, fmt="kea", next_server="10.0.0.1")   # DhcpOutput

What goes in: every IPv4 subnet the user may see that has a DHCP range or a reservation; its
DHCP ranges become pools; every address assigned to an interface becomes a reservation of the
interface's MAC, named after the server: web01.example.com for its boot interface (or for its
only reserved one), web01-eth1.example.com for the others, so names stay unique. Reading costs a
constant number of queries (values_list rows joined in dicts): 10k hosts take about as long as
reading 10k rows.

Before anything is rendered the portal's own checks run (deploy.dhcp.conflicts): a duplicate
MAC, address or host name, a reservation in a pool or outside its subnet, overlapping pools.
Any of them raises DhcpConflictError (a ValidationError listing them: HTTP 400, CLI exit 1) and
nothing is written. There is no override: the conflict is fixed in the inventory.
"""

import contextlib
import ipaddress
import os
import re
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.urls import reverse

from dcportal import rbac
from deploy.dhcp import dnsmasq, isc, kea
from deploy.dhcp.check import FILE_NAMES
from deploy.dhcp.conflicts import find_conflicts
from deploy.dhcp.model import (
    BOOT_MODES,
    IPXE,
    MAX_BOOT_FILE,
    BootOptions,
    DhcpConfig,
    DhcpHost,
    DhcpPool,
    DhcpSubnet,
)
from inventory.models import Interface, IPAddress, IPRange, Subnet

FORMATS = ("isc", "kea", "dnsmasq")
RENDERERS = {"isc": isc.render, "kea": kea.render, "dnsmasq": dnsmasq.render}
CONTENT_TYPES = {
    "isc": "text/plain; charset=utf-8",
    "kea": "application/json",
    "dnsmasq": "text/plain; charset=utf-8",
}
# Everything a configuration reveals: networks, ranges, addresses, MACs and host names.
PERMISSIONS = (
    "inventory.view_subnet",
    "inventory.view_iprange",
    "inventory.view_ipaddress",
    "inventory.view_interface",
    "inventory.view_server",
)
# A boot file or URL every daemon's syntax carries as it is: printable ASCII without blanks,
# quotes, commas, backslashes or `#`.
_BOOT_WORD = re.compile(r"[!$%&()*+\-./0-9:;<=>?@A-Z\[\]^_`a-z{|}~]+")
_INTERFACE_UNSAFE = re.compile(r"[^a-z0-9]+")


class DhcpConflictError(ValidationError):
    """The inventory holds conflicts that would make a wrong or unloadable configuration."""

    def __init__(self, conflicts):
        self.conflicts = list(conflicts)
        super().__init__({"conflicts": [conflict.message for conflict in self.conflicts]})


@dataclass(frozen=True)
class DhcpOutput:
    fmt: str
    text: str
    content_type: str
    filename: str  # what the daemon's own file is usually called
    config: DhcpConfig


# Boot options ----------------------------------------------------------------------------------


def _boot_file(errors, field, value):
    if not value:
        return ""
    if not _BOOT_WORD.fullmatch(value) or len(value) >= MAX_BOOT_FILE:
        errors[field] = (
            f"{value!r} cannot be a boot file name: up to {MAX_BOOT_FILE - 1} printable ASCII "
            "characters without blanks, quotes, commas, backslashes or '#'."
        )
    return value


def _base_url(errors, value):
    """The portal's URL as nodes reach it (DCPORTAL_BOOT_URL form), without a trailing '/'."""
    value = (value or "").strip().rstrip("/")
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        errors["boot_url"] = f"{value!r} is not an http(s) URL such as http://10.0.0.1:8000."
        return ""
    script = value + reverse("boot:ipxe")
    if not _BOOT_WORD.fullmatch(script) or len(script) >= MAX_BOOT_FILE:
        errors["boot_url"] = (
            f"{script!r} does not fit the DHCP boot file field: up to {MAX_BOOT_FILE - 1} "
            "printable ASCII characters without blanks, quotes, commas, backslashes or '#'."
        )
        return ""
    return value


def boot_options(
    *, next_server=None, boot_url=None, boot_mode=None, bios_file=None, uefi_file=None
):
    """BootOptions from the settings, each replaced by the value given when there is one.
    Raises ValidationError with one entry per bad field."""
    errors = {}
    mode = boot_mode or settings.DHCP_BOOT_MODE
    if mode not in BOOT_MODES:
        errors["boot_mode"] = f"{mode!r} is not a boot mode: one of {', '.join(BOOT_MODES)}."
    base = _base_url(errors, boot_url or settings.BOOT_URL)
    bios = _boot_file(errors, "bios_file", bios_file or settings.DHCP_BIOS_FILE)
    uefi = _boot_file(errors, "uefi_file", uefi_file or settings.DHCP_UEFI_FILE)
    server_text = (next_server or settings.DHCP_NEXT_SERVER or "").strip()
    server = None
    if server_text:
        try:
            server = ipaddress.IPv4Address(server_text)
        except ValueError:
            errors["next_server"] = f"{server_text!r} is not an IPv4 address."
    elif base:
        with contextlib.suppress(ValueError):  # a host name: next_server must be given
            server = ipaddress.IPv4Address(urlsplit(base).hostname)
    if server is None and "next_server" not in errors:
        errors["next_server"] = (
            "The TFTP server's IPv4 address is needed (next_server, --next-server or "
            "DCPORTAL_DHCP_NEXT_SERVER): the boot URL does not name one."
        )
    if mode == IPXE and not base and "boot_url" not in errors:
        errors["boot_url"] = (
            "The ipxe boot mode needs the portal's URL as nodes reach it (boot_url, "
            "--boot-url or DCPORTAL_BOOT_URL), e.g. http://10.0.0.1:8000."
        )
    if errors:
        raise ValidationError(errors)
    return BootOptions(
        next_server=server,
        mode=mode,
        bios_file=bios,
        uefi_file=uefi,
        ipxe_script_url=base + reverse("boot:ipxe") if mode == IPXE else "",
    )


# Reading the inventory ---------------------------------------------------------------------------


def _reservation_name(hostname, interface, plain):
    """The server's host name, or for a second interface `host-ifname.domain`."""
    if plain:
        return hostname
    label = _INTERFACE_UNSAFE.sub("-", interface.lower()).strip("-") or "if"
    first, dot, rest = hostname.partition(".")
    return f"{first}-{label}{dot}{rest}"


def build_config(*, user, boot, interfaces=None):
    """The DhcpConfig of what `user` may see. Four queries whatever the size of the fleet."""
    for code in PERMISSIONS:
        rbac.require(user, code)
    subnets = {}
    for pk, network, name, gateway, dns, domain in rbac.restrict(
        Subnet.objects.all(), user
    ).values_list("pk", "network", "name", "gateway", "dns_servers", "domain"):
        if network.version == 4:
            subnets[pk] = (network, name, gateway, dns, domain)

    pools = defaultdict(list)
    ranges = rbac.restrict(IPRange.objects.filter(kind=IPRange.Kind.DHCP), user)
    for subnet_id, start, end in ranges.values_list("subnet_id", "start", "end").order_by("start"):
        if subnet_id in subnets:
            pools[subnet_id].append(DhcpPool(start, end))

    addresses = rbac.restrict(IPAddress.objects.filter(interface__isnull=False), user)
    if not rbac.is_global(user):
        # The address's subnet is the user's; its interface must be too, or a MAC and a host
        # name of another tenant would leak into the file.
        addresses = addresses.filter(interface__in=rbac.restrict(Interface.objects.all(), user))
    rows = [
        row
        for row in addresses.values_list(
            "subnet_id",
            "address",
            "interface_id",
            "interface__name",
            "interface__mac",
            "interface__boot",
            "interface__server_id",
            "interface__server__hostname",
        ).order_by("address")
        if row[0] in subnets and row[1].version == 4
    ]
    # Per server: its reserved interfaces, and whether the boot interface is one of them.
    reserved = defaultdict(set)
    has_boot = set()
    for _, _, interface_id, _, _, boot_flag, server_id, _ in rows:
        reserved[server_id].add(interface_id)
        if boot_flag:
            has_boot.add(server_id)
    hosts = defaultdict(list)
    for subnet_id, address, _, if_name, mac, boot_flag, server_id, hostname in rows:
        plain = boot_flag or (server_id not in has_boot and len(reserved[server_id]) == 1)
        hosts[subnet_id].append(
            DhcpHost(
                name=f"{hostname}:{if_name}",
                mac=mac,
                address=address,
                hostname=_reservation_name(hostname, if_name, plain),
            )
        )

    dhcp_subnets = []
    for pk, (network, name, gateway, dns, domain) in subnets.items():
        if not pools[pk] and not hosts[pk]:
            continue
        dhcp_subnets.append(
            DhcpSubnet(
                id=pk,
                network=network,
                gateway=gateway if gateway is not None and gateway.version == 4 else None,
                dns=tuple(server for server in dns or () if server.version == 4),
                domain=domain,
                pools=tuple(pools[pk]),
                hosts=tuple(hosts[pk]),
                name=name,
            )
        )
    dhcp_subnets.sort(key=lambda subnet: subnet.network)
    return DhcpConfig(
        subnets=tuple(dhcp_subnets),
        boot=boot,
        interfaces=tuple(interfaces or settings.DHCP_INTERFACES or ("*",)),
    )


# Rendering and writing ---------------------------------------------------------------------------


def check_format(fmt):
    if fmt not in FORMATS:
        raise ValidationError({"format": f"{fmt!r} is not a format: one of {', '.join(FORMATS)}."})


def render(config, fmt):
    """The text of a conflict-free `config` in `fmt`."""
    check_format(fmt)
    try:
        return RENDERERS[fmt](config)
    except ValueError as exc:
        # The conflict checks keep out what a renderer refuses; this is the last line.
        raise ValidationError({"config": str(exc)}) from None


def prepare(*, user, fmt, interfaces=None, **boot):
    """(config, conflicts) for `user`, without rendering: for a page that shows conflicts."""
    check_format(fmt)
    config = build_config(user=user, boot=boot_options(**boot), interfaces=interfaces)
    return config, find_conflicts(config)


def generate(*, user, fmt, interfaces=None, **boot):
    """The configuration in `fmt`, or DhcpConflictError / ValidationError / PermissionDenied.
    `boot` takes next_server, boot_url, boot_mode, bios_file and uefi_file overrides."""
    config, conflicts = prepare(user=user, fmt=fmt, interfaces=interfaces, **boot)
    if conflicts:
        raise DhcpConflictError(conflicts)
    return DhcpOutput(
        fmt=fmt,
        text=render(config, fmt),
        content_type=CONTENT_TYPES[fmt],
        filename=FILE_NAMES[fmt],
        config=config,
    )


def write_file(path, text):
    """Replace `path` atomically (a temporary file in the same directory, then a rename), so a
    daemon never reads half a file; mode 0644, as daemons running as their own user need."""
    path = Path(path)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise

"""Kea's kea-dhcp4 configuration from a DhcpConfig: a dict, dumped as JSON.

Building the structure and letting json.dumps write it means no value can break the syntax.
Client classes pick the boot file: iPXE (user class "iPXE") gets the portal's HTTP script,
UEFI PXE ROMs (option 93 = 7 or 9) and legacy BIOS ones their TFTP file; the tests make the
classes exclusive, so Kea's order of evaluation cannot give one client two files.
Reservations live in their subnet; subnet ids are the inventory's, so leases survive a rewrite.
"""

import json

from deploy.dhcp.model import IPXE_USER_CLASS, UEFI_ARCHITECTURES

CLASS_IPXE = "ipxe"
CLASS_UEFI = "pxe-uefi"
CLASS_BIOS = "pxe-bios"
COMMENT = "Written by dcportal (manage.py makedhcp --format kea); changes here are overwritten."


def _client_classes(boot):
    uefi = " or ".join(f"option[93].hex == 0x{arch:04x}" for arch in UEFI_ARCHITECTURES)
    classes = []
    if boot.chainloads_ipxe:
        classes.append(
            {
                "name": CLASS_IPXE,
                "test": f"option[77].hex == '{IPXE_USER_CLASS}'",
                "boot-file-name": boot.ipxe_script_url,
            }
        )
        uefi_test = f"not member('{CLASS_IPXE}') and ({uefi})"
        bios_test = f"not member('{CLASS_IPXE}') and not member('{CLASS_UEFI}')"
    else:
        uefi_test = uefi
        bios_test = f"not member('{CLASS_UEFI}')"
    classes.append({"name": CLASS_UEFI, "test": uefi_test, "boot-file-name": boot.uefi_file})
    classes.append({"name": CLASS_BIOS, "test": bios_test, "boot-file-name": boot.bios_file})
    return classes


def _subnet(subnet):
    options = []
    if subnet.gateway is not None:
        options.append({"name": "routers", "data": str(subnet.gateway)})
    if subnet.dns:
        options.append({"name": "domain-name-servers", "data": ", ".join(map(str, subnet.dns))})
    if subnet.domain:
        options.append({"name": "domain-name", "data": subnet.domain})
    data = {
        "id": subnet.id,
        "subnet": str(subnet.network),
        "pools": [{"pool": f"{pool.start} - {pool.end}"} for pool in subnet.pools],
        "option-data": options,
        "reservations": [
            {"hw-address": host.mac, "ip-address": str(host.address), "hostname": host.hostname}
            for host in subnet.hosts
        ],
    }
    if subnet.name:
        data["user-context"] = {"name": subnet.name}
    return data


def build(config):
    """The configuration as Kea reads it: {"Dhcp4": {...}}."""
    return {
        "Dhcp4": {
            "comment": COMMENT,
            "interfaces-config": {"interfaces": list(config.interfaces)},
            "next-server": str(config.boot.next_server),
            "client-classes": _client_classes(config.boot),
            "subnet4": [_subnet(subnet) for subnet in config.subnets],
        }
    }


def render(config):
    """The kea-dhcp4 configuration file text of `config`."""
    return json.dumps(build(config), indent=2) + "\n"

"""deploy.dhcp.kea: the kea-dhcp4 structure, and JSON that no host name can break."""

import json

import pytest

from deploy.dhcp import kea
from tests.unit.deploy.dhcp_data import BOOT_URL, HOSTILE_NAMES, config, hostile_config


def test_top_level():
    dhcp4 = kea.build(config())["Dhcp4"]
    assert dhcp4["interfaces-config"] == {"interfaces": ["*"]}
    assert dhcp4["next-server"] == "10.0.0.2"
    assert [s["id"] for s in dhcp4["subnet4"]] == [7, 9]


def test_interfaces_are_configurable():
    dhcp4 = kea.build(config(interfaces=("eth1", "eth2/10.0.0.2")))["Dhcp4"]
    assert dhcp4["interfaces-config"] == {"interfaces": ["eth1", "eth2/10.0.0.2"]}


def test_subnet_pools_options_and_reservations():
    first, second = kea.build(config())["Dhcp4"]["subnet4"]
    assert first["subnet"] == "10.0.0.0/24"
    assert first["pools"] == [
        {"pool": "10.0.0.100 - 10.0.0.149"},
        {"pool": "10.0.0.200 - 10.0.0.250"},
    ]
    assert first["option-data"] == [
        {"name": "routers", "data": "10.0.0.1"},
        {"name": "domain-name-servers", "data": "10.0.0.53, 10.0.0.54"},
        {"name": "domain-name", "data": "example.com"},
    ]
    assert first["reservations"][1] == {
        "hw-address": "52:54:00:00:00:01",
        "ip-address": "10.0.0.11",
        "hostname": "node01.example.com",
    }
    assert first["user-context"] == {"name": "provisioning"}
    assert second["pools"] == []
    assert second["option-data"] == [{"name": "routers", "data": "10.0.1.1"}]
    assert [r["ip-address"] for r in second["reservations"]] == ["10.0.1.10"]
    assert "user-context" not in second


def test_ipxe_mode_classes_exclude_each_other():
    classes = kea.build(config())["Dhcp4"]["client-classes"]
    assert classes == [
        {"name": "ipxe", "test": "option[77].hex == 'iPXE'", "boot-file-name": BOOT_URL},
        {
            "name": "pxe-uefi",
            "test": "not member('ipxe') and (option[93].hex == 0x0007 or option[93].hex == 0x0009)",
            "boot-file-name": "ipxe.efi",
        },
        {
            "name": "pxe-bios",
            "test": "not member('ipxe') and not member('pxe-uefi')",
            "boot-file-name": "undionly.kpxe",
        },
    ]


@pytest.mark.parametrize("mode", ["pxelinux", "grub"])
def test_tftp_modes_have_two_classes(mode):
    classes = kea.build(config(mode=mode))["Dhcp4"]["client-classes"]
    assert [c["name"] for c in classes] == ["pxe-uefi", "pxe-bios"]
    assert classes[0]["test"] == "option[93].hex == 0x0007 or option[93].hex == 0x0009"
    assert classes[0]["boot-file-name"] == "grubx64.efi"
    assert classes[1]["test"] == "not member('pxe-uefi')"
    assert classes[1]["boot-file-name"] == (
        "pxelinux.0" if mode == "pxelinux" else "grub/i386-pc/core.0"
    )


def test_render_is_the_structure_as_json():
    cfg = config()
    assert json.loads(kea.render(cfg)) == kea.build(cfg)


def test_hostile_host_names_survive_as_values():
    cfg = hostile_config()
    loaded = json.loads(kea.render(cfg))
    reservations = loaded["Dhcp4"]["subnet4"][0]["reservations"]
    assert [r["hostname"] for r in reservations] == list(HOSTILE_NAMES)
    assert len(loaded["Dhcp4"]["subnet4"]) == 2
    assert set(loaded["Dhcp4"]) == {
        "comment",
        "interfaces-config",
        "next-server",
        "client-classes",
        "subnet4",
    }

"""deploy.dhcp.dnsmasq: option lines tied together by tags; values its syntax cannot carry are
refused rather than written."""

import dataclasses

import pytest

from deploy.dhcp import dnsmasq
from deploy.dhcp.model import DhcpHost
from tests.unit.deploy.dhcp_data import BOOT_URL, HOSTILE_NAMES, config, ip


def lines(cfg):
    return [line for line in dnsmasq.render(cfg).splitlines() if line and not line.startswith("#")]


def test_subnets_pools_options_and_hosts():
    out = lines(config())
    assert "dhcp-range=set:subnet-7,10.0.0.100,10.0.0.149,255.255.255.0" in out
    assert "dhcp-range=set:subnet-7,10.0.0.200,10.0.0.250,255.255.255.0" in out
    assert "dhcp-option=tag:subnet-7,option:router,10.0.0.1" in out
    assert "dhcp-option=tag:subnet-7,option:dns-server,10.0.0.53,10.0.0.54" in out
    assert "dhcp-option=tag:subnet-7,option:domain-name,example.com" in out
    assert "dhcp-host=52:54:00:00:00:01,10.0.0.11,node01.example.com" in out
    # A subnet with reservations only is declared static: dnsmasq answers there, leases nothing.
    assert "dhcp-range=set:subnet-9,10.0.1.0,static,255.255.255.0" in out
    assert "dhcp-option=tag:subnet-9,option:router,10.0.1.1" in out
    assert "dhcp-host=52:54:00:00:01:00,10.0.1.10,node00-eth1.example.com" in out
    assert len([line for line in out if line.startswith("dhcp-host=")]) == 4
    assert not [line for line in out if "subnet-9" in line and "dns-server" in line]


def test_ipxe_mode_boot_lines_exclude_each_other():
    out = lines(config())
    assert out[:6] == [
        "dhcp-match=set:uefi,option:client-arch,7",
        "dhcp-match=set:uefi,option:client-arch,9",
        "dhcp-userclass=set:ipxe,iPXE",
        f"dhcp-boot=tag:ipxe,{BOOT_URL},,10.0.0.2",
        "dhcp-boot=tag:!ipxe,tag:uefi,ipxe.efi,,10.0.0.2",
        "dhcp-boot=tag:!ipxe,tag:!uefi,undionly.kpxe,,10.0.0.2",
    ]


def test_pxelinux_mode():
    out = lines(config(mode="pxelinux"))
    assert [line for line in out if line.startswith(("dhcp-boot", "dhcp-userclass"))] == [
        "dhcp-boot=tag:uefi,grubx64.efi,,10.0.0.2",
        "dhcp-boot=tag:!uefi,pxelinux.0,,10.0.0.2",
    ]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_host_names_are_refused(name):
    bad = DhcpHost(name="x", mac="52:54:00:00:00:05", address=ip("10.0.0.5"), hostname=name)
    with pytest.raises(ValueError, match="cannot be written as a dnsmasq host name"):
        dnsmasq.render(config(hosts=[bad]))


def test_hostile_domain_is_refused():
    cfg = config()
    subnet = dataclasses.replace(cfg.subnets[0], domain="example.com,dhcp-boot=pwn")
    with pytest.raises(ValueError, match="domain"):
        dnsmasq.render(dataclasses.replace(cfg, subnets=(subnet,)))


@pytest.mark.parametrize("file", ["a,b", "with space", 'q"uote', "back\\slash", "x#y"])
def test_boot_files_that_would_split_a_line_are_refused(file):
    with pytest.raises(ValueError, match="boot file"):
        dnsmasq.render(config(bios_file=file))

"""deploy.dhcp.isc: the dhcpd.conf text, read back with the project's own dhcpd.conf parser
(deploy.dhcp.isc_parser, which follows dhcpd's lexer), so structure and escaping are checked by
what a reader finds in the file, not by string matching alone."""

import ipaddress

import pytest

from deploy.dhcp import isc, isc_parser
from deploy.dhcp.model import DhcpHost
from tests.unit.deploy.dhcp_data import BOOT_URL, HOSTILE_NAMES, config, hostile_config, ip


def parsed(cfg):
    return isc_parser.parse(isc.render(cfg))


def test_subnets_pools_and_options():
    result = parsed(config())
    subnets = {str(s.network): s for s in result.subnets}
    assert set(subnets) == {"10.0.0.0/24", "10.0.1.0/24"}
    first = subnets["10.0.0.0/24"]
    assert first.routers == ("10.0.0.1",)
    assert first.name_servers == ("10.0.0.53", "10.0.0.54")
    assert first.domain_name == "example.com"
    assert [(str(r.start), str(r.end)) for r in first.ranges] == [
        ("10.0.0.100", "10.0.0.149"),
        ("10.0.0.200", "10.0.0.250"),
    ]
    second = subnets["10.0.1.0/24"]
    assert second.routers == ("10.0.1.1",)
    assert second.ranges == [] and second.domain_name is None


def test_reservations_are_global_host_blocks():
    result = parsed(config())
    hosts = {h.mac: h for h in result.hosts}
    assert len(result.hosts) == 4
    node = hosts["52:54:00:00:00:01"]
    assert [a.value for a in node.fixed_addresses] == ["10.0.0.11"]
    assert node.host_name == "node01.example.com"
    assert node.subnet is None  # declared at the top level: dhcpd treats hosts as global
    second = hosts["52:54:00:00:01:00"]
    assert second.host_name == "node00-eth1.example.com"
    assert second.name == "node00.example.com-eth1"
    assert result.parameters["next-server"] == ("10.0.0.2",)


def test_ipxe_mode_boot_block():
    text = isc.render(config())
    assert "option dcportal-client-arch code 93 = unsigned integer 16;" in text
    assert (
        'if exists user-class and option user-class = "iPXE" {\n'
        f'  filename "{BOOT_URL}";\n'
        "} elsif option dcportal-client-arch = 00:07 or option dcportal-client-arch = 00:09 {\n"
        '  filename "ipxe.efi";\n'
        "} else {\n"
        '  filename "undionly.kpxe";\n'
        "}\n"
    ) in text
    # The conditional is read as one skipped statement: it holds no stray declarations.
    warnings = [w.message for w in isc_parser.parse(text).warnings]
    assert len([w for w in warnings if w.startswith("conditional")]) == 1


@pytest.mark.parametrize(
    ("mode", "bios", "uefi"),
    [("pxelinux", "pxelinux.0", "grubx64.efi"), ("grub", "grub/i386-pc/core.0", "grubx64.efi")],
)
def test_tftp_modes_have_no_ipxe_branch(mode, bios, uefi):
    text = isc.render(config(mode=mode))
    assert "user-class" not in text
    assert (
        "if option dcportal-client-arch = 00:07 or option dcportal-client-arch = 00:09 {\n"
        f'  filename "{uefi}";\n'
        "} else {\n"
        f'  filename "{bios}";\n'
        "}\n"
    ) in text


def test_file_names_given_replace_the_defaults():
    text = isc.render(config(bios_file="ipxe/undionly.kpxe", uefi_file="ipxe/snponly.efi"))
    assert 'filename "ipxe/undionly.kpxe";' in text
    assert 'filename "ipxe/snponly.efi";' in text


def test_hostile_host_names_stay_inside_their_strings():
    cfg = hostile_config()
    result = parsed(cfg)
    # Exactly the reservations given, each with its own MAC, address and name, nothing more.
    assert len(result.hosts) == len(cfg.hosts) == len(HOSTILE_NAMES) + 1
    by_mac = {h.mac: h for h in result.hosts}
    for reservation in cfg.subnets[0].hosts:
        found = by_mac[reservation.mac]
        assert [a.value for a in found.fixed_addresses] == [str(reservation.address)]
        # dhcpd strings are bytes: non-ASCII comes back one character per UTF-8 byte.
        assert found.host_name == reservation.hostname.encode().decode("latin-1")
    assert {str(s.network) for s in result.subnets} == {"10.0.0.0/24", "10.0.1.0/24"}
    assert "routers" not in result.options
    names = [h.name for h in result.hosts]
    assert len(set(names)) == len(names)


def test_quote_escapes():
    assert isc.quote("plain name") == '"plain name"'
    assert isc.quote('a"b') == '"a\\"b"'
    assert isc.quote("a\\b") == '"a\\\\b"'
    assert isc.quote("a\nb") == '"a\\012b"'
    # An octal escape is always three digits, so a digit after it is not swallowed.
    assert isc.quote("\x017") == '"\\0017"'
    assert isc.quote("é") == '"\\303\\251"'


def test_identifiers_are_unique_and_plain():
    taken = set()
    first = isc.identifier("web01:eth0", taken)
    second = isc.identifier("web01/eth0", taken)
    third = isc.identifier('"; }', taken)
    assert first == "web01-eth0"
    assert second == "web01-eth0-2"
    assert third == "host"
    assert taken == {first, second, third}


def test_subnet_name_cannot_escape_its_comment():
    cfg = config()
    subnet = cfg.subnets[1]
    hostile = type(subnet)(
        id=subnet.id,
        network=subnet.network,
        name="x\nsubnet 192.168.9.0 netmask 255.255.255.0 { }",
    )
    cfg = type(cfg)(subnets=(cfg.subnets[0], hostile), boot=cfg.boot)
    networks = {str(s.network) for s in parsed(cfg).subnets}
    assert networks == {"10.0.0.0/24", "10.0.1.0/24"}


def test_a_malformed_mac_is_refused():
    bad = DhcpHost(name="x", mac="52:54:00:00:00:01; }", address=ip("10.0.0.5"), hostname="x")
    with pytest.raises(ValueError, match="MAC"):
        isc.render(config(hosts=[bad]))


def test_empty_config_is_just_the_boot_block():
    cfg = config()
    empty = type(cfg)(subnets=(), boot=cfg.boot)
    result = parsed(empty)
    assert result.subnets == [] and result.hosts == []
    assert ipaddress.ip_address(result.parameters["next-server"][0]) == ip("10.0.0.2")

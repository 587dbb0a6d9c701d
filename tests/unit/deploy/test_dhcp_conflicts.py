"""deploy.dhcp.conflicts over DhcpConfig values: each kind found, named, and nothing found in a
clean configuration."""

import dataclasses
import ipaddress

from deploy.dhcp import conflicts
from deploy.dhcp.model import DhcpHost, DhcpPool
from tests.unit.deploy.dhcp_data import config, host, ip


def kinds(cfg):
    return [c.kind for c in conflicts.find_conflicts(cfg)]


def with_first_subnet(cfg, **changes):
    first = dataclasses.replace(cfg.subnets[0], **changes)
    return dataclasses.replace(cfg, subnets=(first, *cfg.subnets[1:]))


def test_clean_config_has_none():
    assert conflicts.find_conflicts(config()) == []


def test_duplicate_mac_names_both_reservations():
    clash = dataclasses.replace(host(2), mac=host(1).mac, name="other:eth0", hostname="other")
    found = conflicts.find_conflicts(config(hosts=[host(0), host(1), clash]))
    assert [c.kind for c in found] == [conflicts.DUPLICATE_MAC]
    assert found[0].objects == ("node01.example.com:eth0", "other:eth0")
    assert "52:54:00:00:00:01" in found[0].message


def test_duplicate_address_and_hostname():
    twin = dataclasses.replace(host(2), address=host(1).address, hostname="node01.example.com")
    found = conflicts.find_conflicts(config(hosts=[host(1), twin]))
    assert sorted(c.kind for c in found) == [
        conflicts.DUPLICATE_ADDRESS,
        conflicts.DUPLICATE_HOSTNAME,
    ]
    assert all(c.objects == ("node01.example.com:eth0", "node02.example.com:eth0") for c in found)


def test_hostnames_compare_without_case():
    upper = dataclasses.replace(host(2), hostname="NODE01.example.com")
    assert kinds(config(hosts=[host(1), upper])) == [conflicts.DUPLICATE_HOSTNAME]


def test_one_interface_twice_is_one_conflict_not_two():
    again = dataclasses.replace(host(1), address=ip("10.0.0.99"))
    assert kinds(config(hosts=[host(1), again])) == [conflicts.DUPLICATE_MAC]


def test_reservation_in_a_pool():
    inside = dataclasses.replace(host(1), address=ip("10.0.0.120"))
    found = conflicts.find_conflicts(config(hosts=[host(0), inside]))
    assert [c.kind for c in found] == [conflicts.IN_POOL]
    assert "10.0.0.100-10.0.0.149" in found[0].message


def test_reservation_in_a_pool_hidden_behind_a_shorter_overlapping_one():
    pools = (
        DhcpPool(ip("10.0.0.100"), ip("10.0.0.200")),
        DhcpPool(ip("10.0.0.110"), ip("10.0.0.120")),
    )
    inside = dataclasses.replace(host(1), address=ip("10.0.0.150"))
    cfg = with_first_subnet(config(hosts=[inside]), pools=pools)
    assert sorted(kinds(cfg)) == [conflicts.POOL_OVERLAP, conflicts.IN_POOL]


def test_reservation_outside_its_subnet_and_on_its_edges():
    outside = dataclasses.replace(host(1), address=ip("10.0.5.1"))
    network = dataclasses.replace(host(2), address=ip("10.0.0.0"))
    broadcast = dataclasses.replace(host(3), address=ip("10.0.0.255"))
    found = conflicts.find_conflicts(config(hosts=[outside, network, broadcast]))
    assert [c.kind for c in found] == [conflicts.OUTSIDE_SUBNET] * 3
    assert "10.0.5.1 is outside its subnet 10.0.0.0/24" in found[0].message
    assert "network address" in found[1].message
    assert "broadcast address" in found[2].message


def test_pools_overlapping_across_subnets_and_outside():
    cfg = config()
    stray = DhcpPool(ip("10.0.0.140"), ip("10.0.0.160"))
    second = dataclasses.replace(cfg.subnets[1], pools=(stray,))
    cfg = dataclasses.replace(cfg, subnets=(cfg.subnets[0], second))
    found = conflicts.find_conflicts(cfg)
    assert sorted(c.kind for c in found) == [conflicts.POOL_OUTSIDE_SUBNET, conflicts.POOL_OVERLAP]
    overlap = next(c for c in found if c.kind == conflicts.POOL_OVERLAP)
    assert overlap.objects == ("pool 10.0.0.100-10.0.0.149", "pool 10.0.0.140-10.0.0.160")


def test_invalid_names():
    bad = DhcpHost(name="x:eth0", mac="52:54:00:00:00:09", address=ip("10.0.0.9"), hostname="a b")
    cfg = with_first_subnet(config(hosts=[bad]), domain="exa mple.com")
    assert sorted(kinds(cfg)) == [conflicts.INVALID_DOMAIN, conflicts.INVALID_HOSTNAME]


def test_point_to_point_networks_have_no_edge_addresses():
    cfg = with_first_subnet(
        config(hosts=[dataclasses.replace(host(0), address=ip("10.0.0.0"))]),
        network=ipaddress.ip_network("10.0.0.0/31"),
        pools=(),
    )
    assert kinds(cfg) == []

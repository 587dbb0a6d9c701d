"""What allocation may hand out, as pure arithmetic: usable bounds and the spans left after the
gateway and the skipped ranges. No database."""

import ipaddress

import pytest

from inventory import ipam

net = ipaddress.ip_network
ip = ipaddress.ip_address


def spans_as_text(spans):
    return [(str(ip(a)), str(ip(b))) for a, b in spans]


@pytest.mark.parametrize(
    ("network", "first", "last", "size"),
    [
        ("10.0.0.0/24", "10.0.0.1", "10.0.0.254", 254),
        ("10.0.0.0/30", "10.0.0.1", "10.0.0.2", 2),
        # Point-to-point links (RFC 3021) and host routes use every address.
        ("10.0.0.0/31", "10.0.0.0", "10.0.0.1", 2),
        ("10.0.0.7/32", "10.0.0.7", "10.0.0.7", 1),
        # IPv6: no broadcast; the all-zero subnet-router anycast address is not for hosts.
        ("2001:db8::/64", "2001:db8::1", "2001:db8::ffff:ffff:ffff:ffff", 2**64 - 1),
        ("2001:db8::/127", "2001:db8::", "2001:db8::1", 2),
    ],
)
def test_usable_bounds(network, first, last, size):
    low, high = ipam.usable_bounds(net(network))
    assert (str(ip(low)), str(ip(high))) == (first, last)
    assert ipam.usable_size(net(network)) == size


def test_whole_subnet_without_holes():
    assert spans_as_text(ipam.allocatable_spans(net("192.0.2.0/29"))) == [
        ("192.0.2.1", "192.0.2.6")
    ]


def test_gateway_and_holes_split_the_subnet():
    spans = ipam.allocatable_spans(
        net("192.0.2.0/24"),
        gateway=ip("192.0.2.1"),
        holes=[(ip("192.0.2.100"), ip("192.0.2.199")), (ip("192.0.2.10"), ip("192.0.2.19"))],
    )
    assert spans_as_text(spans) == [
        ("192.0.2.2", "192.0.2.9"),
        ("192.0.2.20", "192.0.2.99"),
        ("192.0.2.200", "192.0.2.254"),
    ]


def test_holes_at_the_edges_and_overlapping_the_gateway():
    spans = ipam.allocatable_spans(
        net("192.0.2.0/28"),
        gateway=ip("192.0.2.3"),
        holes=[(ip("192.0.2.0"), ip("192.0.2.4")), (ip("192.0.2.12"), ip("192.0.2.15"))],
    )
    assert spans_as_text(spans) == [("192.0.2.5", "192.0.2.11")]


def test_a_range_narrows_the_search_but_keeps_skipping_the_gateway():
    spans = ipam.allocatable_spans(
        net("192.0.2.0/24"), start=ip("192.0.2.0"), end=ip("192.0.2.5"), gateway=ip("192.0.2.2")
    )
    # The network address stays out even when the range starts on it.
    assert spans_as_text(spans) == [("192.0.2.1", "192.0.2.1"), ("192.0.2.3", "192.0.2.5")]


def test_nothing_left():
    assert (
        ipam.allocatable_spans(net("192.0.2.0/30"), holes=[(ip("192.0.2.1"), ip("192.0.2.2"))])
        == []
    )


def test_ipv6_spans_stay_arithmetic_at_any_size():
    spans = ipam.allocatable_spans(
        net("2001:db8::/48"),
        gateway=ip("2001:db8::1"),
        holes=[(ip("2001:db8::100"), ip("2001:db8::1ff"))],
    )
    assert spans_as_text(spans) == [
        ("2001:db8::2", "2001:db8::ff"),
        ("2001:db8::200", "2001:db8:0:ffff:ffff:ffff:ffff:ffff"),
    ]


@pytest.mark.parametrize(
    ("size", "used", "expected"),
    [
        (254, 0, {"size": 254, "used": 0, "free": 254, "percent": 0.0}),
        (254, 127, {"size": 254, "used": 127, "free": 127, "percent": 50.0}),
        (0, 0, {"size": 0, "used": 0, "free": 0, "percent": 0.0}),
        # An address on the IPv6 anycast address counts as used but is outside the usable size.
        (1, 2, {"size": 1, "used": 2, "free": 0, "percent": 100.0}),
    ],
)
def test_usage_figures(size, used, expected):
    assert ipam.usage_figures(size, used) == expected

"""Attribute queries run on PostgreSQL against a fleet whose facts disagree in type and shape."""

import pytest
from django.core.exceptions import ValidationError

from inventory import attrquery
from inventory.models import Interface, Server

pytestmark = pytest.mark.django_db

FACTS = {
    "big": {
        "cpu": {"cores": 64, "model": "EPYC 7763"},
        "memory_gb": 512,
        "vendor": "Dell Inc.",
        "disks": [{"name": "nvme0n1", "size_gb": 3840}, {"name": "nvme1n1", "size_gb": 3840}],
        "roles": ["db", "backup"],
        "rack": "r1",
        "gpu": None,
    },
    "small": {
        "cpu": {"cores": 8, "model": "Xeon E-2388G"},
        "memory_gb": 32.5,
        "vendor": "Supermicro",
        "disks": [{"name": "sda", "size_gb": 480}],
        "roles": ["web"],
        "firmware": "2.10.1",
    },
    # The same keys with values of other types: must neither match numeric filters nor crash.
    "odd": {
        "cpu": {"cores": "sixteen", "model": {"family": 6}},
        "memory_gb": "unknown",
        "vendor": 7,
        "disks": "none",
        "roles": "web",
        "rack": None,
        "flags": {"cores": True},
    },
    "bare": {},
    "stringy": {"cpu": {"cores": "16"}, "memory_gb": True, "firmware": "10.0.0"},
}


@pytest.fixture
def fleet(tenants):
    for name, facts in FACTS.items():
        Server.objects.create(hostname=f"{name}.example.net", tenant=tenants[0], attributes=facts)


def hosts(*expressions, queryset=None):
    queryset = Server.objects.all() if queryset is None else queryset
    matched = queryset.filter(attrquery.filter_q(expressions))
    return sorted(hostname.split(".")[0] for hostname in matched.values_list("hostname", flat=True))


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # Numbers compare as numbers (8 < 64 numerically, not as text), strings are left out.
        ("cpu.cores__gte=8", ["big", "small"]),
        ("cpu.cores__gt=8", ["big"]),
        ("cpu.cores__lt=64", ["small"]),
        ("cpu.cores__lte=64", ["big", "small"]),
        ("cpu.cores__gte=9.5", ["big"]),
        ("memory_gb__gt=32", ["big", "small"]),
        ("memory_gb__lt=33", ["small"]),
        ("memory_gb__gte=1e2", ["big"]),
        # Strings compare with strings only.
        ('firmware__gte="2"', ["small"]),
        ("firmware__gte=2", []),
        ("vendor__lt=E", ["big"]),
        # Equality: JSON when it parses.
        ("cpu.cores=8", ["small"]),
        ("cpu.cores=8.0", ["small"]),
        ('cpu.cores="16"', ["stringy"]),
        ("cpu.cores=16", []),
        ("vendor=Dell Inc.", ["big"]),
        ("vendor=7", ["odd"]),
        ('vendor="7"', []),
        ("vendor__eq=Supermicro", ["small"]),
        ("gpu=null", ["big"]),
        ("rack=null", ["odd"]),
        ("memory_gb=true", ["stringy"]),
        ('cpu.model={"family": 6}', ["odd"]),
        ('roles=["web"]', ["small"]),
        # Not equal: present and different.
        ("vendor__ne=Supermicro", ["big", "odd"]),
        ("rack__ne=null", ["big"]),
        # Existence, also of a key holding null.
        ("rack__exists", ["big", "odd"]),
        ("rack__exists=false", ["bare", "small", "stringy"]),
        ("cpu.cores__exists", ["big", "odd", "small", "stringy"]),
        ("gpu__exists=true", ["big"]),
        ("cpu.model.family__exists", ["odd"]),
        # Containment: an element of an array, or JSON containment.
        ("roles__contains=web", ["small"]),
        ('roles__contains=["backup","db"]', ["big"]),
        ('disks__contains={"name": "sda"}', ["small"]),
        ('disks__contains=[{"size_gb": 3840}]', ["big"]),
        ('cpu__contains={"cores": 8}', ["small"]),
        # Case-insensitive substring of string values.
        ("vendor__icontains=dell", ["big"]),
        ("cpu.model__icontains=xeon", ["small"]),
        ("vendor__icontains=%", []),
        ("vendor__icontains=_", []),
        # Any of a list.
        ("vendor__in=Supermicro,7", ["odd", "small"]),
        ('vendor__in=["Dell Inc.", "nobody"]', ["big"]),
        ("cpu.cores__in=8,64", ["big", "small"]),
        # Array indexes.
        ("disks.0.name=sda", ["small"]),
        ("disks.1.size_gb__gte=1000", ["big"]),
        ("disks.1__exists", ["big"]),
        ("disks.0.name__icontains=NVME", ["big"]),
        ('disks.0__contains={"name": "sda"}', ["small"]),
        ("roles.0=db", ["big"]),
        # Keys that look like SQL or lookups are just keys.
        ("null__exists", []),
        ("flags.cores=true", ["odd"]),
    ],
)
def test_expression_matches(fleet, expression, expected):
    assert hosts(expression) == expected


def test_several_expressions_and_together(fleet):
    assert hosts("cpu.cores__gte=8", "roles__contains=db") == ["big"]
    assert hosts("cpu.cores__gte=8", "roles__contains=web") == ["small"]
    assert hosts("cpu.cores__gte=8", "roles__contains=nothing") == []
    assert hosts() == sorted(FACTS)


def test_comparisons_survive_every_value_type(tenants):
    # One row per JSON type at the compared key: no cast error, only the number matches.
    values = [1, 2.5, "3", True, None, [4], {"v": 5}]
    for i, value in enumerate(values):
        Server.objects.create(
            hostname=f"t{i}.example.net", tenant=tenants[0], attributes={"v": value}
        )
    for lookup in ("gt", "gte", "lt", "lte"):
        matched = hosts(f"v__{lookup}=2")
        assert set(matched) <= {"t0", "t1"}, (lookup, matched)
    assert hosts("v__gt=2") == ["t1"]
    assert hosts("v__lt=2") == ["t0"]
    assert hosts('v__gte="3"') == ["t2"]


def test_a_key_named_like_a_lookup_works_with_an_explicit_lookup(tenants):
    Server.objects.create(
        hostname="odd-keys.example.net", tenant=tenants[0], attributes={"a__b": 1, "in": {"gte": 2}}
    )
    assert hosts("a__b__eq=1") == ["odd-keys"]
    assert hosts("in.gte__gte=2") == ["odd-keys"]


def test_filter_through_a_relation(fleet):
    big = Server.objects.get(hostname="big.example.net")
    Interface.objects.create(server=big, name="eth0", mac="02:00:00:00:00:01")
    q = attrquery.filter_q(["cpu.cores__gte=32"], field="server__attributes")
    assert list(Interface.objects.filter(q).values_list("name", flat=True)) == ["eth0"]


def test_bad_expressions_never_reach_the_database(fleet):
    with pytest.raises(ValidationError):
        hosts("cpu.cores__between=1")

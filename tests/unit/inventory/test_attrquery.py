"""inventory.attrquery: the parser, without a database (the integration tests run queries)."""

import pytest
from django.core.exceptions import ValidationError
from django.db.models import Q

from inventory import attrquery
from inventory.attrquery import Condition


@pytest.mark.parametrize(
    ("expression", "path", "lookup", "value"),
    [
        ("cpu.cores__gte=8", ("cpu", "cores"), "gte", 8),
        ("memory_gb__lt=31.5", ("memory_gb",), "lt", 31.5),
        ("vendor=Dell", ("vendor",), "eq", "Dell"),
        ("vendor=Dell Inc.", ("vendor",), "eq", "Dell Inc."),
        ("vendor = Dell ", ("vendor",), "eq", "Dell"),
        ('vendor="8"', ("vendor",), "eq", "8"),
        ("vendor=8", ("vendor",), "eq", 8),
        ("vendor=", ("vendor",), "eq", ""),
        ("flag=true", ("flag",), "eq", True),
        ("gpu=null", ("gpu",), "eq", None),
        ("note=a=b", ("note",), "eq", "a=b"),
        ('cpu__eq={"cores": 8}', ("cpu",), "eq", {"cores": 8}),
        ("disks__contains=sda", ("disks",), "contains", "sda"),
        ('disks__contains={"model": "X"}', ("disks",), "contains", {"model": "X"}),
        ('disks__contains=["a", "b"]', ("disks",), "contains", ["a", "b"]),
        ("vendor__icontains=dell", ("vendor",), "icontains", "dell"),
        ("serial__icontains=123", ("serial",), "icontains", "123"),  # text, not a number
        ('serial__icontains=" x"', ("serial",), "icontains", " x"),
        ("vendor__ne=Dell", ("vendor",), "ne", "Dell"),
        ("rack__exists", ("rack",), "exists", True),
        ("rack__exists=false", ("rack",), "exists", False),
        ("rack__exists=TRUE", ("rack",), "exists", True),
        ("role__in=web,db, 3", ("role",), "in", ("web", "db", 3)),
        ('role__in=["a,b", "c"]', ("role",), "in", ("a,b", "c")),
        ("disks.0.size__gt=100", ("disks", "0", "size"), "gt", 100),
        ("a-b.c_d__lte=1e3", ("a-b", "c_d"), "lte", 1000.0),
        ("my__key__eq=1", ("my__key",), "eq", 1),
        ("version__gte=2.10.1", ("version",), "gte", "2.10.1"),
    ],
)
def test_parse(expression, path, lookup, value):
    condition = attrquery.parse(expression)
    assert (condition.path, condition.lookup, condition.value) == (path, lookup, value)
    assert condition.expression == expression.strip()


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("", "Empty attribute filter"),
        ("   ", "Empty attribute filter"),
        ("cpu.cores__between=1", "unknown lookup 'between'"),
        ("cpu.cores__GTE=1", "unknown lookup 'GTE'"),
        ("my__key=1", "unknown lookup 'key'"),
        ("cpu..cores=1", "invalid key '(empty)'"),
        (".cores=1", "invalid key"),
        ("cpu.cores.=1", "invalid key"),
        ("cpu cores=1", "invalid key 'cpu cores'"),
        ("cpu.c*res=1", "invalid key"),
        ("=8", "no attribute path"),
        ("__gte=8", "no attribute path"),
        ("vendor", "needs a value"),
        ("cpu.cores__gte", "needs a value"),
        ("cpu.cores__gte=true", "number or a string"),
        ("cpu.cores__lt=null", "number or a string"),
        ("cpu.cores__gt=[1]", "number or a string"),
        ("cpu.cores__gt=NaN", None),  # parses as the string "NaN": allowed, compares as text
        ("disks__contains={broken", "not valid JSON"),
        ("disks__contains=[1,", "not valid JSON"),
        ('vendor="unterminated', "not valid JSON"),
        ("rack__exists=maybe", "exists takes no value, or true or false"),
        ("vendor__icontains=", "non-empty"),
        ("role__in=", "comma list without empty items"),
        ("role__in=a,,b", "comma list without empty items"),
        ("role__in=[]", "at least one value"),
        ("x" * 2100 + "=1", "longer than 2000"),
        (".".join(["k"] * 17) + "=1", "deeper than 16"),
    ],
)
def test_parse_errors(expression, fragment):
    if fragment is None:
        assert attrquery.parse(expression).value == "NaN"
        return
    with pytest.raises(ValidationError) as info:
        attrquery.parse(expression)
    assert fragment in info.value.messages[0]


def test_in_list_is_limited():
    with pytest.raises(ValidationError, match="at most 500"):
        attrquery.parse("x__in=" + ",".join(str(i) for i in range(501)))


def test_parse_all_reports_every_error():
    with pytest.raises(ValidationError) as info:
        attrquery.parse_all(["ok=1", "a__nope=1", "b..c=1"])
    assert len(info.value.messages) == 2
    assert "'a__nope=1'" in info.value.messages[0]
    assert [c.lookup for c in attrquery.parse_all(["a=1", "b__exists"])] == ["eq", "exists"]


def test_parse_refuses_non_text():
    with pytest.raises(ValidationError):
        attrquery.parse(None)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("8", 8),
        ("-1.5", -1.5),
        ("true", True),
        ("null", None),
        ('"x"', "x"),
        ("Dell", "Dell"),
        ("Infinity", "Infinity"),  # not JSON: kept as text rather than sent to PostgreSQL
        ("-Infinity", "-Infinity"),
        ("1e999", float("inf")),
    ],
)
def test_parse_value(text, value):
    if value == float("inf"):
        # Python reads 1e999 as infinity, which jsonb cannot carry: it must not reach the query.
        with pytest.raises(ValidationError, match="out of range"):
            attrquery.parse(f"x__gt={text}")
        with pytest.raises(ValidationError, match="out of range"):
            attrquery.parse_value('{"a": [1e999]}')
        return
    assert attrquery.parse_value(text) == value


def test_to_q_builds_one_condition_per_expression():
    assert attrquery.filter_q([]) == Q()
    q = attrquery.filter_q(["a=1", "b__exists"])
    assert q.connector == "AND"
    assert len(q.children) == 2


def test_flatten_uses_the_query_path_syntax():
    facts = {"cpu": {"cores": 8}, "disks": [{"name": "sda"}, "x"], "empty": {}, "none": None}
    assert list(attrquery.flatten(facts)) == [
        ("cpu.cores", 8),
        ("disks.0.name", "sda"),
        ("disks.1", "x"),
        ("empty", {}),
        ("none", None),
    ]


def test_condition_is_a_plain_value():
    condition = attrquery.parse("cpu.cores__gte=8")
    assert condition == Condition(("cpu", "cores"), "gte", 8, "cpu.cores__gte=8")
    assert condition.dotted == "cpu.cores"
    assert not condition.has_index
    assert attrquery.parse("disks.0=x").has_index

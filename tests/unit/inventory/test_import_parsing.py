"""inventory.imports readers and inventory.services normalisation: no database."""

import pytest
from django.core.exceptions import ValidationError

from inventory import imports, services


def test_csv_rows_keep_their_line_numbers_across_multiline_cells():
    text = 'hostname,attr.note\na.example,"one\ntwo"\n\nb.example,x\n'
    rows, problems = imports.read_csv(text)
    assert problems == []
    assert [(r.where, r.values["hostname"]) for r in rows] == [
        ("line 2", "a.example"),
        ("line 5", "b.example"),  # line 4 is blank and skipped
    ]
    assert rows[0].attr_paths == [(("note",), "one\ntwo")]


def test_csv_cells_become_typed_values():
    text = (
        "Hostname,UUID,tags,attr.cpu.cores,attr.ok,attributes,interfaces\n"
        "A.Example.,00000000-0000-0000-0000-000000000000,b;A,8,true,"
        '"{""x"": 1}",eth0=AA:BB:CC:DD:EE:01;*eth1=aabb.ccdd.ee02\n'
    )
    (row,), problems = imports.read_csv(text)
    assert problems == []
    assert row.values == {"hostname": "a.example"}  # a placeholder UUID is no UUID
    assert row.tags == ["a", "b"]
    assert row.attr_paths == [(("cpu", "cores"), 8), (("ok",), True)]
    assert row.attributes == {"x": 1}
    assert row.interfaces == [
        {"name": "eth0", "mac": "aa:bb:cc:dd:ee:01", "boot": False},
        {"name": "eth1", "mac": "aa:bb:cc:dd:ee:02", "boot": True},
    ]


@pytest.mark.parametrize(
    ("cell", "boot"),
    [
        ("eth0=02:00:00:00:00:01;eth1=02:00:00:00:00:02", "eth0"),
        ("eth0=02:00:00:00:00:01;eth1=02:00:00:00:00:02*", "eth1"),
        ("eth0=02:00:00:00:00:01; *eth1 = 02:00:00:00:00:02 ;", "eth1"),
    ],
)
def test_boot_interface_is_the_starred_or_the_first(cell, boot):
    (row,), _ = imports.read_csv(f'hostname,interfaces\nx,"{cell}"\n')
    assert [i["name"] for i in row.interfaces if i["boot"]] == [boot]


def test_header_problems_stop_at_once():
    with pytest.raises(imports.ImportFailed) as info:
        imports.read_csv("hostname,colour,attr.a..b\n")
    messages = [message for _, message in info.value.problems]
    assert any("unknown column 'colour'" in m for m in messages)
    assert any("attr.a..b" in m for m in messages)


def test_json_problems_by_item_index():
    rows, problems = imports.read_json(
        '[{"hostname": "a"}, {"hostname": "b", "interfaces": [{"name": "e"}]}, 3]'
    )
    assert [r.where for r in rows] == ["item 0"]
    assert problems == [
        ("item 1", "interfaces: each needs a name and a MAC ({'name': 'e'})"),
        ("item 2", "expected an object"),
    ]


def test_detect_format():
    assert imports.detect_format("x.JSON", "") == "json"
    assert imports.detect_format("x.csv", "[") == "csv"
    assert imports.detect_format("-", '  [{"hostname": "a"}]') == "json"
    assert imports.detect_format("-", "hostname\n") == "csv"


@pytest.mark.parametrize(
    ("value", "tags"),
    [
        (None, []),
        ("", []),
        ("Web, edge;GPU  web", ["edge", "gpu", "web"]),
        (["b", "A", "a"], ["a", "b"]),
        (["rack:12", "v1.2_x-y"], ["rack:12", "v1.2_x-y"]),
    ],
)
def test_normalise_tags(value, tags):
    assert services.normalise_tags(value) == tags


@pytest.mark.parametrize("bad", [["-x"], ["a/b"], ["x" * 65], ["ü"]])
def test_bad_tags(bad):
    with pytest.raises(ValidationError):
        services.normalise_tags(bad)


def test_normalise_hostname():
    assert services.normalise_hostname("  Web01.Example.COM. ") == "web01.example.com"
    assert services.normalise_hostname(None) == ""


def test_bulk_error_keeps_errors_by_index():
    exc = services.BulkError({3: {"hostname": ["taken"]}, 1: {"__all__": ["nope"]}})
    assert list(exc.errors) == [1, 3]
    assert exc.messages == ["item 1: nope", "item 3: hostname: taken"]

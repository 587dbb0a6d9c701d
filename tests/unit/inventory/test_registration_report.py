"""Registration reports without a database: validation, fact merging, generated host names."""

import pytest
from django.core.exceptions import ValidationError

from inventory.registration import Result, base_hostname, deep_merge, parse_report

UUID = "4c4c4544-0042-3510-8052-b7c04f333232"


def errors_of(report):
    with pytest.raises(ValidationError) as info:
        parse_report(report)
    return info.value.message_dict


def test_identity_is_normalised_and_the_rest_are_facts():
    report = parse_report(
        {
            "uuid": UUID.upper(),
            "serial": "  SRV-1 ",
            "sys_vendor": "Dell Inc.",
            "product_name": "PowerEdge R640",
            "hostname": "Web01.Example.COM.",
            "tenant": "acme",
            "token": "dce_never_kept",
            "cpu": {"count": 8},
            "interfaces": [
                {"name": "eno1", "mac": "AA-BB-CC-00-00-01", "boot": True, "speed_mbps": 10000},
                {"name": "eno2", "mac": "aabb.cc00.0002"},
            ],
        }
    )
    assert report.uuid == UUID
    assert (report.serial, report.vendor, report.model) == ("SRV-1", "Dell Inc.", "PowerEdge R640")
    assert report.hostname == "web01.example.com"
    assert report.boot_mac == "aa:bb:cc:00:00:01"
    assert [(i.name, i.mac, i.boot) for i in report.interfaces] == [
        ("eno1", "aa:bb:cc:00:00:01", True),
        ("eno2", "aa:bb:cc:00:00:02", False),
    ]
    # Facts: everything but identity and control keys; the interfaces as reported, normalised.
    assert report.facts == {
        "cpu": {"count": 8},
        "interfaces": [
            {"name": "eno1", "mac": "aa:bb:cc:00:00:01", "boot": True, "speed_mbps": 10000},
            {"name": "eno2", "mac": "aa:bb:cc:00:00:02"},
        ],
    }
    assert "token" not in report.data and report.data["tenant"] == "acme"


def test_vendor_and_model_win_over_their_dmi_names():
    report = parse_report(
        {"vendor": "HPE", "sys_vendor": "HP", "model": "DL360", "product_name": "x"}
    )
    assert (report.vendor, report.model) == ("HPE", "DL360")


@pytest.mark.parametrize(
    ("uuid", "serial", "identified"),
    [
        ("00000000-0000-0000-0000-000000000000", "To Be Filled By O.E.M.", False),
        ("FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF", "", False),
        ("03000200-0400-0500-0006-000700080009", "SRV-1", True),
        (None, "Default string", False),
        (UUID, "", True),
    ],
)
def test_placeholders_identify_nothing(uuid, serial, identified):
    report = parse_report({"uuid": uuid, "serial": serial})
    assert report.identified is identified


@pytest.mark.parametrize(
    ("report", "field", "text"),
    [
        ({"uuid": "not-a-uuid"}, "uuid", "is not a UUID"),
        ({"uuid": 42}, "uuid", "A string is required"),
        ({"serial": "x" * 101}, "serial", "At most 100"),
        ({"vendor": ["Dell"]}, "vendor", "A string is required"),
        ({"hostname": "bad_name!"}, "hostname", "is not a host name"),
        ({"interfaces": {"eno1": "aa:bb:cc:00:00:01"}}, "interfaces", "A list"),
        ({"interfaces": [{"name": "eno1", "mac": "zz"}]}, "interfaces", "is not a MAC"),
        ({"interfaces": [{"mac": "aa:bb:cc:00:00:01"}]}, "interfaces", "a name is required"),
        ({"interfaces": [{"name": "e", "mac": "00:00:00:00:00:00"}]}, "interfaces", "no interface"),
        (
            {
                "interfaces": [
                    {"name": "eno1", "mac": "aa:bb:cc:00:00:01"},
                    {"name": "bond0", "mac": "AA:BB:CC:00:00:01"},
                ]
            },
            "interfaces",
            "reported twice",
        ),
        (
            {
                "interfaces": [
                    {"name": "eno1", "mac": "aa:bb:cc:00:00:01", "boot": True},
                    {"name": "eno2", "mac": "aa:bb:cc:00:00:02", "boot": True},
                ]
            },
            "interfaces",
            "At most one interface",
        ),
        (
            {"interfaces": [{"name": "e", "mac": "aa:bb:cc:00:00:01", "boot": "yes"}]},
            "interfaces",
            "boot must",
        ),
    ],
)
def test_bad_reports_name_the_field(report, field, text):
    errors = errors_of(report)
    assert field in errors
    assert any(text in message for message in errors[field]), errors


def test_a_report_must_be_an_object_of_sane_depth():
    assert "non_field_errors" in errors_of(["uuid"])
    deep = {}
    current = deep
    for _ in range(40):
        current["x"] = {}
        current = current["x"]
    assert "deeper" in errors_of(deep)["non_field_errors"][0]


def test_deep_merge_replaces_reported_keys_and_keeps_the_others():
    old = {"cpu": {"count": 4, "model": "old"}, "owner": "team-a", "disks": [1, 2]}
    new = {"cpu": {"count": 8}, "disks": [3], "rack": None}
    assert deep_merge(old, new) == {
        "cpu": {"count": 8, "model": "old"},
        "owner": "team-a",
        "disks": [3],
        "rack": None,
    }
    assert old == {"cpu": {"count": 4, "model": "old"}, "owner": "team-a", "disks": [1, 2]}


def test_generated_host_names():
    with_boot = parse_report(
        {
            "uuid": UUID,
            "interfaces": [
                {"name": "eno1", "mac": "aa:bb:cc:00:00:01"},
                {"name": "eno2", "mac": "aa:bb:cc:00:00:02", "boot": True},
            ],
        }
    )
    assert base_hostname(with_boot) == "node-aabbcc000002"
    first = parse_report({"uuid": UUID, "interfaces": [{"name": "e", "mac": "aa:bb:cc:00:00:09"}]})
    assert base_hostname(first) == "node-aabbcc000009"
    assert base_hostname(parse_report({"uuid": UUID})) == "node-4c4c45440042"
    assert base_hostname(parse_report({"serial": "CZ J_93/01"})) == "node-cz-j-93-01"


def test_result_status_and_message():
    assert Result("held", None, [], "no identity").http_status == 202
    assert "no identity" in Result("held", None, [], "no identity").message
    assert Result("created", None).http_status == 201
    assert Result("unchanged", None).http_status == 200

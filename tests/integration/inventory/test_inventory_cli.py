"""`manage.py nodels` and `manage.py rinv`: node ranges, filters, output formats and scope."""

import csv
import io
import json
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from inventory import selectors, services
from inventory.models import Conflict, IPAddress, Subnet

pytestmark = pytest.mark.django_db


def run(command, *args, user="root"):
    out = StringIO()
    call_command(command, *args, "--user", user, stdout=out)
    return out.getvalue()


@pytest.fixture
def fleet(admin_user, tenants):
    acme, globex = tenants
    servers = {}
    for i in range(1, 13):
        servers[f"node{i:02d}"] = services.create_server(
            user=admin_user,
            hostname=f"node{i:02d}.dc1.example",
            tenant=acme,
            status="ready" if i % 2 else "new",
            vendor="Dell Inc.",
            tags=["compute"] + (["gpu"] if i <= 2 else []),
            attributes={"cpu": {"cores": 8 * i}, "rack": f"r{(i - 1) // 4 + 1}"},
            interfaces=[{"name": "eth0", "mac": f"02:00:00:00:00:{i:02x}", "boot": True}],
        )
    servers["db1"] = services.create_server(
        user=admin_user, hostname="db1.dc1.example", tenant=acme, serial="SN-DB1"
    )
    servers["rack1-node1"] = services.create_server(
        user=admin_user, hostname="rack1-node1.dc1.example", tenant=acme
    )
    servers["gx1"] = services.create_server(
        user=admin_user, hostname="gx1.globex.example", tenant=globex, tags=["compute"]
    )
    return servers


def names(output):
    return [line.split()[0] for line in output.splitlines()[1:]]


# Node ranges ----------------------------------------------------------------------------------


def test_noderange_names_ranges_lists_and_tags(admin_user, fleet):
    def resolved(text):
        servers = selectors.resolve_noderange(text, user=admin_user)
        return sorted(s.hostname.split(".")[0] for s in servers)

    assert resolved("node[01-03]") == ["node01", "node02", "node03"]
    assert resolved("node[01-02],db1") == ["db1", "node01", "node02"]
    assert resolved("rack1-node[1]") == ["rack1-node1"]
    assert resolved("gpu") == ["node01", "node02"]  # not a host: a tag
    assert resolved("gpu,node12") == ["node01", "node02", "node12"]
    assert resolved("db1.dc1.example") == ["db1"]
    assert len(resolved("compute")) == 13  # the admin sees globex's too


def test_noderange_errors_name_what_matched_nothing(admin_user, operator, fleet):
    with pytest.raises(ValidationError, match=r"node13, node14"):
        selectors.resolve_noderange("node[10-14]", user=admin_user)
    with pytest.raises(ValidationError, match=r"nosuchtag"):
        selectors.resolve_noderange("node01,nosuchtag", user=admin_user)
    # Another tenant's server is as unknown as one that does not exist.
    with pytest.raises(ValidationError, match=r"gx1"):
        selectors.resolve_noderange("gx1", user=operator)
    assert [s.hostname for s in selectors.resolve_noderange("compute", user=operator)].count(
        "gx1.globex.example"
    ) == 0


def test_ambiguous_short_name(admin_user, tenants, fleet):
    services.create_server(user=admin_user, hostname="db1.dc2.example", tenant=tenants[0])
    with pytest.raises(ValidationError, match=r"Ambiguous.*db1\.dc1\.example, db1\.dc2\.example"):
        selectors.resolve_noderange("db1", user=admin_user)
    assert selectors.resolve_noderange("db1.dc2.example", user=admin_user).count() == 1


# nodels ---------------------------------------------------------------------------------------


def test_nodels_table(admin_user, fleet):
    output = run("nodels", "node[01-03]")
    lines = output.splitlines()
    assert lines[0].split() == ["HOSTNAME", "STATUS", "KIND", "TENANT", "VENDOR", "MODEL", "SERIAL"]
    assert names(output) == ["node01.dc1.example", "node02.dc1.example", "node03.dc1.example"]
    assert lines[1].split()[:4] == ["node01.dc1.example", "ready", "physical", "acme"]


def test_nodels_filters(admin_user, fleet):
    assert names(run("nodels", "--attr", "cpu.cores__gte=80")) == [
        "node10.dc1.example",
        "node11.dc1.example",
        "node12.dc1.example",
    ]
    both = run("nodels", "compute", "--attr", "cpu.cores__gte=32", "--attr", "rack=r1")
    assert names(both) == ["node04.dc1.example"]
    assert names(run("nodels", "node[01-04]", "--status", "new")) == [
        "node02.dc1.example",
        "node04.dc1.example",
    ]
    assert names(run("nodels", "--tag", "gpu")) == ["node01.dc1.example", "node02.dc1.example"]


def test_nodels_json_and_csv_with_fields(admin_user, fleet):
    data = json.loads(
        run("nodels", "node0[1-2]", "-o", "json", "--fields", "hostname,attr.cpu.cores,tags")
    )
    assert data == [
        {"hostname": "node01.dc1.example", "attr.cpu.cores": 8, "tags": ["compute", "gpu"]},
        {"hostname": "node02.dc1.example", "attr.cpu.cores": 16, "tags": ["compute", "gpu"]},
    ]
    text = run("nodels", "node01", "-o", "csv", "--fields", "hostname,interfaces,tags,attributes")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows == [
        {
            "hostname": "node01.dc1.example",
            "interfaces": "*eth0=02:00:00:00:00:01",
            "tags": "compute;gpu",
            "attributes": '{"cpu": {"cores": 8}, "rack": "r1"}',
        }
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--attr", "cpu.cores__about=8"], "unknown lookup 'about'"),
        (["--attr", "cpu.cores__gte"], "needs a value"),
        (["--status", "asleep"], "status"),
        (["node[05-01]"], "runs backwards"),
        (["node[1-3"], "Unclosed"),
        (["nosuch"], "No server or tag matches: nosuch"),
        (["--fields", "hostname,colour"], "unknown field 'colour'"),
    ],
)
def test_nodels_errors_are_command_errors(admin_user, fleet, args, message):
    with pytest.raises(CommandError, match=message):
        run("nodels", *args)


def test_nodels_is_scoped_to_the_acting_user(operator, fleet):
    listed = names(run("nodels", "compute", user="op"))
    assert "gx1.globex.example" not in listed
    assert len(listed) == 12


# rinv -----------------------------------------------------------------------------------------


def test_rinv_text_shows_every_fact(admin_user, tenants, fleet):
    node = fleet["node01"]
    subnet = Subnet.objects.create(network="10.0.0.0/24", tenant=tenants[0])
    IPAddress.objects.create(address="10.0.0.11", subnet=subnet, interface=node.interfaces.get())
    Conflict.objects.create(tenant=tenants[0], kind="serial", server=node, detail="serial twice")
    output = run("rinv", "node01")
    assert output.splitlines()[0] == "node01.dc1.example"
    for expected in (
        "tenant:         acme",
        "cpu.cores  8",
        "rack       r1",
        "eth0       02:00:00:00:00:01  boot  10.0.0.11",
        "(serial): serial twice",
        "tags:           compute, gpu",
    ):
        assert expected in output, (expected, output)


def test_rinv_json(admin_user, fleet):
    data = json.loads(run("rinv", "node01,db1", "--json"))
    assert [item["hostname"] for item in data] == ["db1.dc1.example", "node01.dc1.example"]
    assert data[0]["serial"] == "SN-DB1"
    assert data[1]["attributes"] == {"cpu": {"cores": 8}, "rack": "r1"}
    assert data[1]["interfaces"][0]["mac"] == "02:00:00:00:00:01"
    assert data[1]["conflicts"] == []


def test_rinv_out_of_scope_is_unknown(operator, fleet):
    with pytest.raises(CommandError, match="No server or tag matches: gx1"):
        run("rinv", "gx1", user="op")

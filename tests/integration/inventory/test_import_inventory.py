"""`manage.py import_inventory`: CSV and JSON, dry-run diff, idempotency, line-numbered errors,
all or nothing, tenant scope."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from dcportal.models import AuditEvent
from inventory import imports, services
from inventory.models import Interface, Server

pytestmark = pytest.mark.django_db

CSV = (
    "hostname,uuid,serial,vendor,model,status,tenant,tags,attr.cpu.cores,attr.owner,interfaces\n"
    "Web01.Example.net,4C4C4544-0042-3510-8052-B4C04F384833,SN1,Dell Inc.,R650,ready,acme,"
    "web;edge,16,team-a,eth0=02:00:00:00:00:01;*eth1=02-00-00-00-00-02\n"
    'db01.example.net,,SN2,Supermicro,X12,,acme,db,64,"{""name"": ""dba""}",'
    "eth0=0200.0000.0003\n"
)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def run(*args, user="root"):
    out, err = StringIO(), StringIO()
    call_command("import_inventory", *args, "--user", user, stdout=out, stderr=err)
    return out.getvalue()


def failing(*args, user="root"):
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError) as info:
        call_command("import_inventory", *args, "--user", user, stdout=out, stderr=err)
    return str(info.value), err.getvalue()


def test_csv_import_creates_then_is_idempotent(tmp_path, admin_user, tenants):
    path = write(tmp_path, "fleet.csv", CSV)
    output = run(path)
    assert "line 2: create web01.example.net" in output
    assert "line 3: create db01.example.net" in output
    assert output.splitlines()[-1] == "2 servers: 2 created, 0 updated, 0 unchanged"

    web = Server.objects.get(hostname="web01.example.net")
    assert str(web.uuid) == "4c4c4544-0042-3510-8052-b4c04f384833"
    assert (web.serial, web.vendor, web.model, web.status) == ("SN1", "Dell Inc.", "R650", "ready")
    assert web.tenant == tenants[0]
    assert web.tags == ["edge", "web"]
    assert web.attributes == {"cpu": {"cores": 16}, "owner": "team-a"}
    assert list(web.interfaces.values_list("name", "mac", "boot")) == [
        ("eth0", "02:00:00:00:00:01", False),
        ("eth1", "02:00:00:00:00:02", True),  # the starred one
    ]
    db = Server.objects.get(hostname="db01.example.net")
    assert db.attributes["owner"] == {"name": "dba"}
    assert list(db.interfaces.values_list("name", "boot")) == [("eth0", True)]  # the first
    assert AuditEvent.objects.filter(action="create", object_id=str(web.pk)).exists()

    events = AuditEvent.objects.count()
    again = run(path, "--dry-run")
    assert "line 2: unchanged web01.example.net" in again
    assert again.splitlines()[-1] == (
        "2 servers: 0 to create, 0 to update, 2 unchanged (dry run: nothing written)"
    )
    assert run(path).splitlines()[-1] == "2 servers: 0 created, 0 updated, 2 unchanged"
    assert AuditEvent.objects.count() == events  # nothing changed, nothing recorded


def test_dry_run_shows_the_diff_and_writes_nothing(tmp_path, admin_user, tenants):
    run(write(tmp_path, "fleet.csv", CSV))
    changed = (
        CSV.replace("ready", "deployed")
        .replace(",16,", ",32,")
        .replace("*eth1=02-00-00-00-00-02", "*eth1=02-00-00-00-00-02;eth2=02:00:00:00:00:09")
    )
    changed += "new01.example.net,,,,,,,,,,\n"
    path = write(tmp_path, "changed.csv", changed)
    output = run(path, "--dry-run", "--tenant", "acme")
    lines = output.splitlines()
    assert lines[0] == (
        "line 2: update web01.example.net: status ready → deployed; attr.cpu.cores 16 → 32; "
        "interface eth2 added (02:00:00:00:00:09)"
    )
    assert lines[1] == "line 3: unchanged db01.example.net"
    assert lines[2] == "line 4: create new01.example.net: tenant acme"
    assert lines[-1].endswith("(dry run: nothing written)")
    web = Server.objects.get(hostname="web01.example.net")
    assert web.status == "ready"
    assert not Server.objects.filter(hostname="new01.example.net").exists()
    assert not Interface.objects.filter(name="eth2").exists()

    run(path, "--tenant", "acme")
    web.refresh_from_db()
    assert (web.status, web.attributes["cpu"]["cores"]) == ("deployed", 32)
    assert Server.objects.get(hostname="new01.example.net").tenant == tenants[0]


def test_match_by_uuid_renames(tmp_path, admin_user, tenants):
    run(write(tmp_path, "fleet.csv", CSV))
    renamed = "uuid,hostname\n4c4c4544-0042-3510-8052-b4c04f384833,web01-new.example.net\n"
    output = run(write(tmp_path, "rename.csv", renamed))
    assert "update web01-new.example.net: hostname web01.example.net → web01-new.example.net" in (
        output
    )
    assert not Server.objects.filter(hostname="web01.example.net").exists()


def test_errors_carry_line_numbers_and_nothing_is_written(tmp_path, admin_user, tenants):
    text = (
        "hostname,uuid,status,tenant,interfaces,attr.cpu.cores\n"
        "ok1.example.net,,,acme,eth0=02:00:00:00:01:01,4\n"
        "bad_host!,,,acme,,\n"
        "ok2.example.net,not-a-uuid,,acme,,\n"
        "ok3.example.net,,sleeping,acme,,\n"
        "ok4.example.net,,,nosuch,,\n"
        "ok5.example.net,,,acme,eth0=zz,\n"
        "ok6.example.net,,,acme,eth0=02:00:00:00:01:01,\n"  # MAC of line 2
        "ok7.example.net,,,acme,,{broken\n"
        '"ok8.example.net",,,acme,,"multi\nline"\n'
        "ok1.example.net,,,acme,,\n"
    )
    message, errors = failing(write(tmp_path, "bad.csv", text))
    assert "errors in" in message and "nothing was imported" in message
    for fragment in (
        "line 3: hostname:",
        "line 4: uuid: 'not-a-uuid' is not a UUID",
        "line 5: status:",
        "line 6: tenant: no tenant 'nosuch'",
        "line 7: interfaces: eth0:",
        "line 8: interfaces: eth0: mac:",
        "line 9: attr.cpu.cores: ",
        "line 12: hostname ok1.example.net already appears on line 2",
    ):
        assert fragment in errors, (fragment, errors)
    assert "line 10" not in errors  # a quoted multi-line cell is fine: a string fact
    assert not Server.objects.exists()
    assert not AuditEvent.objects.filter(content_type__model="server").exists()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "line 1: the file is empty"),
        ("name,colour\nx,y\n", "line 1: unknown column 'name'"),
        ("serial\nx\n", "line 1: a hostname or a uuid column is needed"),
        ("hostname,attr.cpu..cores\nx,1\n", "line 1: column 'attr.cpu..cores'"),
        ("hostname,hostname\nx,y\n", "repeated column"),
        ("hostname,tags\nx,a;b/c\n", "line 2: tags:"),
        ("hostname\nx,extra\n", "line 2: 2 cells but the header has 1"),
        ("hostname,attributes\nx,[1]\n", "line 2: attributes: expected a JSON object"),
        (
            "hostname,interfaces\nx,*a=02:00:00:00:00:01;*b=02:00:00:00:00:02\n",
            "more than one boot",
        ),
    ],
)
def test_malformed_csv(tmp_path, admin_user, tenants, text, fragment):
    _, errors = failing(write(tmp_path, "bad.csv", text), "--tenant", "acme")
    assert fragment in errors, errors


def test_row_needs_a_tenant(tmp_path, admin_user, tenants):
    # The admin belongs to no tenant: new servers need a tenant column or --tenant.
    _, errors = failing(write(tmp_path, "t.csv", "hostname\nx.example.net\n"))
    assert "line 2: tenant: name one in a tenant column or with --tenant" in errors


def test_json_import(tmp_path, admin_user, tenants):
    data = [
        {
            "hostname": "j1.example.net",
            "tenant": "acme",
            "serial": 12345,
            "tags": ["a", "b"],
            "attributes": {"cpu": {"cores": 4}, "disks": ["sda", "sdb"]},
            "attr.owner": "x",
            "interfaces": [
                {"name": "eth0", "mac": "02:00:00:00:02:01"},
                {"name": "eth1", "mac": "02:00:00:00:02:02", "boot": True},
            ],
        },
        {"hostname": "j2.example.net", "tenant": "acme", "uuid": None},
    ]
    path = write(tmp_path, "fleet.json", json.dumps(data))
    output = run(path)
    assert "item 0: create j1.example.net" in output
    j1 = Server.objects.get(hostname="j1.example.net")
    assert j1.serial == "12345"
    assert j1.attributes == {"cpu": {"cores": 4}, "disks": ["sda", "sdb"], "owner": "x"}
    assert j1.interfaces.get(boot=True).name == "eth1"
    assert run(path).splitlines()[-1] == "2 servers: 0 created, 0 updated, 2 unchanged"
    # Attributes merge: facts the file does not mention stay; a changed list shows per item.
    services.update_server(j1, user=admin_user, attributes={**j1.attributes, "bios": "1.2"})
    data[0]["attributes"]["disks"] = ["sda"]
    output = run(write(tmp_path, "fleet2.json", json.dumps({"servers": data})))
    assert "item 0: update j1.example.net: attr.disks.1 sdb → (removed)" in output
    j1.refresh_from_db()
    assert j1.attributes["bios"] == "1.2"
    assert j1.attributes["disks"] == ["sda"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            '[{"hostname": "a.example.net", "tenant": "acme"},\n {"hostname": }]',
            "line 2: not valid JSON",
        ),
        ('{"hostname": "a"}', "expected a list of servers"),
        ('[{"hostname": "a.example.net", "colour": 1}]', "item 0: unknown column 'colour'"),
        ('[1, {"hostname": "a.example.net", "tags": "x y"}]', "item 0: expected an object"),
        ('[{"hostname": "a.example.net", "attributes": "x"}]', "item 0: attributes: expected"),
        ('[{"tenant": "acme"}]', "item 0: no hostname and no uuid"),
        ('[{"hostname": ["a"]}]', "item 0: hostname: expected text"),
    ],
)
def test_malformed_json(tmp_path, admin_user, tenants, text, fragment):
    _, errors = failing(write(tmp_path, "bad.json", text), "--tenant", "acme")
    assert fragment in errors, errors


def test_import_is_scoped_to_the_acting_user(tmp_path, admin_user, operator, tenants):
    services.create_server(user=admin_user, hostname="theirs.example.net", tenant=tenants[1])
    # The operator cannot see globex's server: the row would create a duplicate, which the
    # database refuses, and the operator cannot name globex either.
    text = "hostname,tenant,status\ntheirs.example.net,acme,ready\nmine.example.net,globex,ready\n"
    _, errors = failing(write(tmp_path, "x.csv", text), user="op")
    assert "line 2: hostname:" in errors
    assert "line 3: tenant: no tenant 'globex'" in errors
    assert Server.objects.get(hostname="theirs.example.net").status == "new"
    # Their only tenant is the default.
    run(write(tmp_path, "y.csv", "hostname\nmine.example.net\n"), user="op")
    assert Server.objects.get(hostname="mine.example.net").tenant == tenants[0]


def test_read_only_cannot_import(tmp_path, make_user, tenants):
    make_user("ro", roles=["read-only"], tenants=[tenants[0]])
    _, errors = failing(write(tmp_path, "x.csv", "hostname\nx.example.net\n"), user="ro")
    assert "permission denied" in errors


def test_stdin_and_format(monkeypatch, admin_user, tenants):
    import io
    import sys

    payload = json.dumps([{"hostname": "s.example.net", "tenant": "acme"}]).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(payload)))
    assert "create s.example.net" in run("-", "--format", "json")


def test_service_api_of_the_importer(admin_user, tenants):
    report = imports.import_inventory(
        user=admin_user, text="hostname\na.example.net\n", tenant=tenants[0], dry_run=True
    )
    assert report.counts == {"create": 1, "update": 0, "unchanged": 0}
    assert not Server.objects.exists()

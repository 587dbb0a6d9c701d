"""/api/inventory/servers/, interfaces, sites and racks: scope, filters, writes and bulk."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dcportal.models import AuditEvent
from inventory import services
from inventory.models import Interface, IPAddress, Rack, Server, Site, Subnet

pytestmark = pytest.mark.django_db

SERVERS = "/api/inventory/servers/"
BULK = "/api/inventory/servers/bulk/"
INTERFACES = "/api/inventory/interfaces/"


@pytest.fixture
def fleet(admin_user, tenants):
    acme, globex = tenants
    make = services.create_server
    return {
        "web01": make(
            user=admin_user,
            hostname="web01.acme.example",
            tenant=acme,
            vendor="Dell Inc.",
            status="ready",
            tags=["web"],
            attributes={"cpu": {"cores": 8}, "memory_gb": 64},
            interfaces=[{"name": "eth0", "mac": "02:00:00:00:01:01", "boot": True}],
        ),
        "db01": make(
            user=admin_user,
            hostname="db01.acme.example",
            tenant=acme,
            vendor="Supermicro",
            serial="SM123",
            uuid="4C4C4544-0042-3510-8052-B4C04F384833",
            tags=["db"],
            attributes={"cpu": {"cores": 64}, "memory_gb": 512, "disks": ["nvme0n1"]},
        ),
        "gx01": make(
            user=admin_user,
            hostname="gx01.globex.example",
            tenant=globex,
            attributes={"cpu": {"cores": 32}},
            interfaces=[{"name": "eth0", "mac": "02:00:00:00:02:01"}],
        ),
    }


def hostnames(response):
    assert response.status_code == 200, response.content
    return sorted(item["hostname"].split(".")[0] for item in response.json()["results"])


def error(response, status):
    assert response.status_code == status, response.content
    return response.json()["error"]


# Reads and scope ------------------------------------------------------------------------------


def test_list_is_scoped_to_the_users_tenants(api, operator, admin_user, fleet):
    assert hostnames(api.as_user(operator).get(SERVERS)) == ["db01", "web01"]
    assert hostnames(api.as_user(admin_user).get(SERVERS)) == ["db01", "gx01", "web01"]


@pytest.mark.parametrize("method", ["get", "patch", "put", "delete"])
def test_another_tenants_server_is_not_found(api, operator, fleet, method):
    target = fleet["gx01"]
    client = api.as_user(operator)
    kwargs = {} if method == "get" else {"data": {"status": "retired"}, "format": "json"}
    response = getattr(client, method)(f"{SERVERS}{target.pk}/", **kwargs)
    assert error(response, 404)["code"] == "not_found"
    target.refresh_from_db()
    assert target.status == "new"


def test_detail_shows_interfaces_and_addresses(api, operator, fleet, tenants):
    web = fleet["web01"]
    subnet = Subnet.objects.create(network="10.1.0.0/24", tenant=tenants[0])
    IPAddress.objects.create(
        address="10.1.0.5", subnet=subnet, interface=web.interfaces.get(name="eth0")
    )
    body = api.as_user(operator).get(f"{SERVERS}{web.pk}/").json()
    assert body["tenant"] == "acme"
    assert body["attributes"] == {"cpu": {"cores": 8}, "memory_gb": 64}
    assert body["interfaces"] == [
        {
            "id": web.interfaces.get().pk,
            "name": "eth0",
            "mac": "02:00:00:00:01:01",
            "boot": True,
            "description": "",
            "addresses": ["10.1.0.5"],
        }
    ]


def _populate(count, user, tenant):
    subnet = Subnet.objects.filter(tenant=tenant).first() or Subnet.objects.create(
        network="10.9.0.0/16", tenant=tenant
    )
    start = Server.objects.count()
    for i in range(start, start + count):
        server = services.create_server(
            user=user,
            hostname=f"n{i:04d}.example",
            tenant=tenant,
            tags=["bulk"],
            attributes={"cpu": {"cores": i}, "disks": [{"size": i}]},
            interfaces=[
                {"name": "eth0", "mac": f"02:10:00:00:{i // 256:02x}:{i % 256:02x}", "boot": True},
                {"name": "eth1", "mac": f"02:20:00:00:{i // 256:02x}:{i % 256:02x}"},
            ],
        )
        IPAddress.objects.create(
            address=f"10.9.{i // 256}.{i % 256 + 1}",
            subnet=subnet,
            interface=server.interfaces.get(name="eth0"),
        )


def _queries(client, url):
    client.get(url)  # warm-up: the token's once-a-minute last_used write is not a list cost
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(captured), response


@pytest.mark.parametrize("who", ["admin", "operator"])
@pytest.mark.parametrize(
    "url", [SERVERS, SERVERS + "?attr=cpu.cores__gte=0&tag=bulk&ordering=-hostname", INTERFACES]
)
def test_list_query_count_does_not_grow_with_rows(api, admin_user, operator, tenants, url, who):
    client = api.as_user(admin_user if who == "admin" else operator)
    _populate(3, admin_user, tenants[0])
    few, response = _queries(client, url)
    assert len(response.json()["results"]) >= 3
    _populate(27, admin_user, tenants[0])
    many, response = _queries(client, url)
    assert len(response.json()["results"]) >= 30
    assert many == few


def test_cursor_pagination_and_ordering(api, admin_user, tenants):
    _populate(7, admin_user, tenants[0])
    client = api.as_user(admin_user)
    seen, url = [], SERVERS + "?page_size=3&ordering=-hostname"
    while url:
        body = client.get(url).json()
        assert "count" not in body  # a cursor, not a COUNT(*) over the table
        seen.extend(item["hostname"] for item in body["results"])
        url = body["next"]
    assert seen == sorted(seen, reverse=True)
    assert len(seen) == 7
    default = [item["hostname"] for item in client.get(SERVERS).json()["results"]]
    assert default == sorted(default)
    created = [item["id"] for item in client.get(SERVERS + "?ordering=created").json()["results"]]
    assert created == sorted(created)


# Filters --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("attr=cpu.cores__gte=32", ["db01"]),
        ("attr=cpu.cores__gte=8&attr=memory_gb__lt=100", ["web01"]),
        ("attr=disks__contains=nvme0n1", ["db01"]),
        ("attr=disks__exists", ["db01"]),
        ("attr=disks__exists=false", ["web01"]),
        ("attr=cpu.cores__in=8,64", ["db01", "web01"]),
        ("q=SM12", ["db01"]),
        ("q=8052-B4C0", ["db01"]),
        ("uuid=4c4c4544-0042-3510-8052-b4c04f384833", ["db01"]),
        ("q=web01", ["web01"]),
        ("q=02-00-00-00-01", ["web01"]),
        ("q=0200.0000.0101", ["web01"]),
        ("q=db", ["db01"]),
        ("status=ready", ["web01"]),
        ("status=ready&status=new", ["db01", "web01"]),
        ("vendor=dell", ["web01"]),
        ("tag=WEB", ["web01"]),
        ("tenant=acme", ["db01", "web01"]),
        ("tenant=globex", []),
        ("mac=02-00-00-00-01-01", ["web01"]),
        ("hostname=WEB01.acme.example.", ["web01"]),
        ("kind=virtual", []),
    ],
)
def test_filters(api, operator, fleet, query, expected):
    assert hostnames(api.as_user(operator).get(f"{SERVERS}?{query}")) == expected


@pytest.mark.parametrize(
    ("query", "field", "fragment"),
    [
        ("attr=cpu.cores__between=1", "attr", "unknown lookup 'between'"),
        ("attr=cpu..cores=1", "attr", "invalid key"),
        ("attr=cpu.cores__gte", "attr", "needs a value"),
        ("attr=cpu.cores__gte=true", "attr", "number or a string"),
        ("attr=disks__contains={broken", "attr", "not valid JSON"),
        ("attr=", None, None),
        ("colour=red", "colour", "Unknown filter"),
        ("status=sleeping", "status", "valid choice"),
        ("ordering=serial", "ordering", "valid choice"),
        ("mac=zz:zz", "mac", "not a MAC address"),
        ("uuid=nope", "uuid", "valid UUID"),
        # A message quoting input with "%" in it is still a field error, not a 500.
        ("attr=a%25s", "attr", "'a%s'"),
    ],
)
def test_bad_filters_are_a_400_never_everything(api, operator, fleet, query, field, fragment):
    response = api.as_user(operator).get(f"{SERVERS}?{query}")
    if field is None:  # an empty attr is no filter at all, not an error
        assert hostnames(response) == ["db01", "web01"]
        return
    err = error(response, 400)
    assert field in err["fields"], err
    assert fragment in " ".join(err["fields"][field]), err


def test_interface_filters(api, operator, fleet):
    client = api.as_user(operator)
    body = client.get(f"{INTERFACES}?mac=02:00:00:00:01:01").json()
    assert [item["server"] for item in body["results"]] == [fleet["web01"].pk]
    assert client.get(f"{INTERFACES}?attr=cpu.cores__gte=8").json()["results"][0]["name"] == "eth0"
    # The globex interface is not in the operator's scope.
    assert client.get(f"{INTERFACES}?mac=02:00:00:00:02:01").json()["results"] == []
    assert error(client.get(f"{INTERFACES}?attr=x__nope=1"), 400)["fields"]["attr"]


# Writes ---------------------------------------------------------------------------------------


def test_create_normalises_and_audits(api, operator, tenants):
    body = {
        "hostname": "  Web02.ACME.example. ",
        "uuid": "4C4C4544-0042-3510-8052-B4C04F384833",
        "tenant": "acme",
        "vendor": "Dell Inc.",
        "model": "PowerEdge R650",  # a field named like create_object's first parameter
        "tags": ["Web", "edge"],
        "attributes": {"cpu": {"cores": 16}},
    }
    response = api.as_user(operator).post(SERVERS, body, format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["hostname"] == "web02.acme.example"
    assert data["uuid"] == "4c4c4544-0042-3510-8052-b4c04f384833"
    assert data["tags"] == ["edge", "web"]
    assert data["model"] == "PowerEdge R650"
    event = AuditEvent.objects.get(action="create", object_id=str(data["id"]))
    assert event.actor == operator
    assert event.changes["hostname"] == [None, "web02.acme.example"]


def test_placeholder_uuid_is_no_identity(api, operator):
    body = {
        "hostname": "x.example",
        "tenant": "acme",
        "uuid": "03000200-0400-0500-0006-000700080009",
    }
    response = api.as_user(operator).post(SERVERS, body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["uuid"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"hostname": "bad_name!", "tenant": "acme"}, "hostname"),
        ({"hostname": "web01.acme.example", "tenant": "acme"}, "hostname"),  # taken
        ({"hostname": "ok.example", "tenant": "acme", "attributes": [1]}, "attributes"),
        ({"hostname": "ok.example", "tenant": "acme", "tags": ["a b"]}, "tags"),
        ({"hostname": "ok.example", "tenant": "globex"}, "tenant"),  # not theirs: unknown
        ({"hostname": "ok.example", "tenant": "acme", "uuid": "nope"}, "uuid"),
        ({"hostname": "ok.example", "tenant": "acme", "position": 3}, "position"),
    ],
)
def test_create_refuses_bad_input_with_field_errors(api, operator, fleet, body, field):
    err = error(api.as_user(operator).post(SERVERS, body, format="json"), 400)
    assert field in err["fields"], err
    assert not Server.objects.filter(hostname="ok.example").exists()


def test_a_number_jsonb_cannot_store_is_a_400(api, operator):
    # Valid JSON that Python reads as infinity: refused, not a database error.
    body = '{"hostname": "ok.example", "tenant": "acme", "attributes": {"x": 1e999}}'
    response = api.as_user(operator).post(SERVERS, body, content_type="application/json")
    assert "attributes" in error(response, 400)["fields"]


@pytest.mark.parametrize("attributes", [{"x": "a\u0000b"}, {"a\u0000": 1}, {"x": [["\u0000"]]}])
def test_a_nul_jsonb_cannot_store_is_a_400(api, operator, attributes):
    body = {"hostname": "ok.example", "tenant": "acme", "attributes": attributes}
    response = api.as_user(operator).post(SERVERS, body, format="json")
    assert "attributes" in error(response, 400)["fields"]
    assert not Server.objects.filter(hostname="ok.example").exists()


def test_json_nested_too_deeply_is_a_400(api, operator):
    # Python's decoder fails with a RecursionError on a few kilobytes of brackets.
    start = '{"hostname": "ok.example", "tenant": "acme", "attributes": {"x": '
    for depth in (150, 5000):
        body = start + "[" * depth + "]" * depth + "}}"
        response = api.as_user(operator).post(SERVERS, body, content_type="application/json")
        assert error(response, 400)["code"] == "parse_error"
    body = start + "[" * 90 + "]" * 90 + "}}"
    response = api.as_user(operator).post(SERVERS, body, content_type="application/json")
    assert response.status_code == 201, response.content


def test_read_only_may_not_write(api, viewer, fleet):
    client = api.as_user(viewer)
    web = fleet["web01"]
    assert error(
        client.post(SERVERS, {"hostname": "n.example", "tenant": "acme"}, format="json"), 403
    )
    assert error(client.patch(f"{SERVERS}{web.pk}/", {"status": "retired"}, format="json"), 403)
    assert error(client.delete(f"{SERVERS}{web.pk}/"), 403)
    assert error(
        client.post(BULK, [{"hostname": "n.example", "tenant": "acme"}], format="json"), 403
    )
    assert error(client.patch(BULK, [{"id": web.pk, "status": "retired"}], format="json"), 403)
    assert error(client.delete(BULK, {"ids": [web.pk]}, format="json"), 403)
    iface = web.interfaces.get()
    assert error(client.post(f"{INTERFACES}{iface.pk}/boot/"), 403)
    web.refresh_from_db()
    assert web.status == "ready"
    assert hostnames(client.get(SERVERS)) == ["db01", "web01"]


def test_update_and_move_between_own_tenants_only(api, operator, fleet, tenants):
    client = api.as_user(operator)
    web = fleet["web01"]
    response = client.patch(f"{SERVERS}{web.pk}/", {"status": "deployed"}, format="json")
    assert response.json()["status"] == "deployed"
    err = error(client.patch(f"{SERVERS}{web.pk}/", {"tenant": "globex"}, format="json"), 400)
    assert "tenant" in err["fields"]


def test_rack_and_position(api, admin_user, operator, fleet):
    site = Site.objects.create(name="DC1", slug="dc1")
    rack = Rack.objects.create(site=site, name="A01", units=42)
    client = api.as_user(operator)
    web, db = fleet["web01"], fleet["db01"]
    body = client.patch(f"{SERVERS}{web.pk}/", {"rack": rack.pk, "position": 10}, format="json")
    assert body.json()["site"] == "dc1"
    err = error(
        client.patch(f"{SERVERS}{db.pk}/", {"rack": rack.pk, "position": 10}, format="json"), 400
    )
    assert err["fields"]
    assert hostnames(client.get(f"{SERVERS}?site=dc1")) == ["web01"]
    assert hostnames(client.get(f"{SERVERS}?rack=A01")) == ["web01"]
    assert hostnames(client.get(f"{SERVERS}?rack={rack.pk}")) == ["web01"]
    sites = api.as_user(admin_user).get("/api/inventory/sites/").json()["results"]
    assert [s["slug"] for s in sites] == ["dc1"]
    racks = client.get("/api/inventory/racks/?site=dc1").json()["results"]
    assert [(r["site"], r["name"]) for r in racks] == [("dc1", "A01")]


def test_interfaces_write_through_services(api, operator, fleet):
    client = api.as_user(operator)
    web = fleet["web01"]
    response = client.post(
        INTERFACES,
        {"server": web.pk, "name": "eth1", "mac": "02-00-00-00-01-02"},
        format="json",
    )
    assert response.status_code == 201, response.content
    eth1 = Interface.objects.get(pk=response.json()["id"])
    assert eth1.mac == "02:00:00:00:01:02"
    # Make it the boot interface: eth0 loses the flag, both changes are audited.
    response = client.post(f"{INTERFACES}{eth1.pk}/boot/")
    assert response.status_code == 200, response.content
    assert response.json()["boot"] is True
    assert dict(web.interfaces.values_list("name", "boot")) == {"eth0": False, "eth1": True}
    assert AuditEvent.objects.filter(object_id=str(eth1.pk), action="update").exists()
    # A MAC taken elsewhere, a bad MAC, another tenant's server.
    taken = client.post(
        INTERFACES, {"server": web.pk, "name": "eth2", "mac": "02:00:00:00:02:01"}, format="json"
    )
    assert "mac" in error(taken, 400)["fields"]
    bad = client.post(INTERFACES, {"server": web.pk, "name": "eth2", "mac": "xx"}, format="json")
    assert "mac" in error(bad, 400)["fields"]
    foreign = client.post(
        INTERFACES,
        {"server": fleet["gx01"].pk, "name": "eth9", "mac": "02:00:00:00:09:09"},
        format="json",
    )
    assert "server" in error(foreign, 400)["fields"]
    gx_iface = fleet["gx01"].interfaces.get()
    assert error(client.post(f"{INTERFACES}{gx_iface.pk}/boot/"), 404)


# Bulk -----------------------------------------------------------------------------------------


def test_bulk_create_all_or_nothing(api, operator, fleet):
    client = api.as_user(operator)
    items = [
        {"hostname": "new1.example", "tenant": "acme"},
        {"hostname": "web01.acme.example", "tenant": "acme"},  # taken
        {"hostname": "new2.example", "tenant": "acme", "status": "nope"},
        {"hostname": "new1.example", "tenant": "acme"},  # twice in the batch
    ]
    before = AuditEvent.objects.count()
    err = error(client.post(BULK, items, format="json"), 400)
    assert set(err["fields"]) == {"1", "2", "3"}
    assert "status" in err["fields"]["2"]
    assert not Server.objects.filter(hostname__startswith="new").exists()
    assert AuditEvent.objects.count() == before

    items = [
        {"hostname": "new1.example", "tenant": "acme"},
        {"hostname": "New2.example", "tenant": "acme"},
    ]
    response = client.post(BULK, items, format="json")
    assert response.status_code == 201, response.content
    assert [item["hostname"] for item in response.json()] == ["new1.example", "new2.example"]


def test_bulk_create_service_errors_are_per_index(api, operator, fleet):
    # Valid for the serializer, refused by the database-backed checks of the service.
    items = [
        {"hostname": "ok1.example", "tenant": "acme"},
        {"hostname": "ok1.example", "tenant": "acme"},
    ]
    err = error(api.as_user(operator).post(BULK, items, format="json"), 400)
    assert set(err["fields"]) == {"1"}
    assert "hostname" in err["fields"]["1"]
    assert not Server.objects.filter(hostname="ok1.example").exists()


def test_bulk_update_all_or_nothing(api, operator, fleet):
    client = api.as_user(operator)
    web, db, gx = fleet["web01"], fleet["db01"], fleet["gx01"]
    items = [
        {"id": web.pk, "status": "deployed"},
        {"id": gx.pk, "status": "deployed"},  # another tenant's: not found
        {"id": db.pk, "hostname": "web01.acme.example"},  # taken
        {"id": 999999, "status": "deployed"},
    ]
    err = error(client.patch(BULK, items, format="json"), 400)
    assert set(err["fields"]) == {"1", "2", "3"}
    assert err["fields"]["1"] == {"id": [f"No server with id {gx.pk}."]}
    web.refresh_from_db()
    assert web.status == "ready"

    missing_id = error(client.patch(BULK, [{"status": "deployed"}], format="json"), 400)
    assert "id" in missing_id["fields"]["0"]

    items = [{"id": web.pk, "status": "deployed"}, {"id": db.pk, "tags": ["db", "Primary"]}]
    response = client.patch(BULK, items, format="json")
    assert response.status_code == 200, response.content
    web.refresh_from_db()
    db.refresh_from_db()
    assert (web.status, db.tags) == ("deployed", ["db", "primary"])


def test_bulk_delete_all_or_nothing(api, operator, fleet):
    client = api.as_user(operator)
    web, db, gx = fleet["web01"], fleet["db01"], fleet["gx01"]
    err = error(client.delete(BULK, {"ids": [web.pk, gx.pk]}, format="json"), 400)
    assert set(err["fields"]) == {"1"}
    assert Server.objects.filter(pk__in=[web.pk, gx.pk]).count() == 2
    assert error(client.delete(BULK, {"ids": []}, format="json"), 400)
    assert error(client.delete(BULK, {}, format="json"), 400)
    response = client.delete(BULK, {"ids": [web.pk, db.pk]}, format="json")
    assert response.status_code == 204, response.content
    assert not Server.objects.filter(pk__in=[web.pk, db.pk]).exists()
    assert AuditEvent.objects.filter(action="delete", object_id=str(web.pk)).exists()


def test_bulk_needs_a_list(api, operator):
    err = error(api.as_user(operator).post(BULK, {"hostname": "x"}, format="json"), 400)
    assert "non_field_errors" in err["fields"]

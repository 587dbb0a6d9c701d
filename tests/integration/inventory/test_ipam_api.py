"""IPAM through /api/inventory/: clear 400s with field errors, tenant scope (404), read-only 403,
filters, usage on the subnet detail and allocation actions."""

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from inventory import ipam
from inventory.models import Interface, IPAddress, IPRange, Server, Subnet
from tests.integration.inventory.ipam_helpers import assert_api_error

pytestmark = pytest.mark.django_db

SUBNETS = "/api/inventory/subnets/"
RANGES = "/api/inventory/ranges/"
ADDRESSES = "/api/inventory/addresses/"


@pytest.fixture
def nets(admin_user, tenants):
    """Acme: 10.0.0.0/24 (VLAN 100) and 2001:db8::/64; Globex: 10.1.0.0/24."""
    acme, globex = tenants
    make = ipam.create_subnet
    return {
        "acme4": make(
            user=admin_user,
            network="10.0.0.0/24",
            tenant=acme,
            name="acme servers",
            vlan=100,
            gateway="10.0.0.1",
        ),
        "acme6": make(user=admin_user, network="2001:db8::/64", tenant=acme, name="acme v6"),
        "globex4": make(user=admin_user, network="10.1.0.0/24", tenant=globex, name="globex"),
    }


def results(response):
    assert response.status_code == 200, response.content
    return response.json()["results"]


def networks(response):
    return [item["network"] for item in results(response)]


# Subnets ----------------------------------------------------------------------------------------


def test_create_subnet_and_read_it_back(api, operator, tenants):
    client = api.as_user(operator)
    body = {
        "network": "192.0.2.0/24",
        "name": "dmz",
        "tenant": "acme",
        "vlan": 42,
        "gateway": "192.0.2.1",
        "dns_servers": ["192.0.2.53", "2001:db8::53"],
        "domain": "dmz.example.com",
    }
    response = client.post(SUBNETS, body, format="json")
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["network"] == "192.0.2.0/24"
    assert created["dns_servers"] == ["192.0.2.53", "2001:db8::53"]
    assert (created["family"], created["size"], created["used"]) == (4, 254, 0)
    assert Subnet.objects.get(pk=created["id"]).tenant == tenants[0]


@pytest.mark.parametrize(
    ("network", "other"),
    [("10.0.0.128/25", "10.0.0.0/24"), ("10.0.0.0/8", "10.0.0.0/24"), ("2001:db8::/48", None)],
)
def test_overlapping_subnet_is_a_400_on_network(api, operator, nets, network, other):
    response = api.as_user(operator).post(
        SUBNETS, {"network": network, "tenant": "acme"}, format="json"
    )
    error = assert_api_error(response, 400, "network", "overlaps")
    message = error["fields"]["network"][0]
    if other == "10.0.0.0/24":
        assert message == f"{network} overlaps the subnet 10.0.0.0/24 (acme servers)."
    assert Subnet.objects.count() == 3


def test_overlap_with_another_tenants_subnet_says_so_without_details(api, operator, nets):
    response = api.as_user(operator).post(
        SUBNETS, {"network": "10.1.0.0/16", "tenant": "acme"}, format="json"
    )
    error = assert_api_error(response, 400, "network")
    assert error["fields"]["network"] == ["10.1.0.0/16 overlaps a subnet of another tenant."]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"network": "10.9.0.1/24"}, "network"),
        ({"network": "banana"}, "network"),
        ({"network": "10.9.0.0/24", "gateway": "10.8.0.1"}, "gateway"),
        ({"network": "10.9.0.0/24", "gateway": "nope"}, "gateway"),
        ({"network": "10.9.0.0/24", "dns_servers": ["1.2.3"]}, "dns_servers"),
        ({"network": "10.9.0.0/24", "vlan": 5000}, "vlan"),
        ({"network": "10.9.0.0/24", "tenant": "globex"}, "tenant"),
    ],
)
def test_bad_subnet_input_is_a_400_on_its_field(api, operator, nets, body, field):
    response = api.as_user(operator).post(SUBNETS, {"tenant": "acme", **body}, format="json")
    assert_api_error(response, 400, field)


def test_subnet_detail_carries_usage(api, operator, nets, admin_user):
    subnet = nets["acme4"]
    ipam.create_range(
        user=admin_user, subnet=subnet, start="10.0.0.100", end="10.0.0.149", kind="dhcp"
    )
    for last in (10, 11, 120):
        ipam.create_address(user=admin_user, address=f"10.0.0.{last}")
    body = api.as_user(operator).get(f"{SUBNETS}{subnet.pk}/").json()
    usage = body["usage"]
    assert (usage["size"], usage["used"], usage["free"], usage["percent"]) == (254, 3, 251, 1.2)
    (pool,) = usage["ranges"]
    assert pool == {
        "id": pool["id"],
        "start": "10.0.0.100",
        "end": "10.0.0.149",
        "kind": "dhcp",
        "description": "",
        "size": 50,
        "used": 1,
        "free": 49,
        "percent": 2.0,
    }


def test_subnet_list_scoped_and_filtered(api, operator, admin_user, nets):
    client = api.as_user(operator)
    assert networks(client.get(SUBNETS)) == ["10.0.0.0/24", "2001:db8::/64"]
    every = api.as_user(admin_user)
    assert networks(every.get(SUBNETS)) == ["10.0.0.0/24", "10.1.0.0/24", "2001:db8::/64"]
    assert networks(every.get(SUBNETS, {"tenant": "globex"})) == ["10.1.0.0/24"]
    assert networks(every.get(SUBNETS, {"vlan": 100})) == ["10.0.0.0/24"]
    assert networks(every.get(SUBNETS, {"family": 6})) == ["2001:db8::/64"]
    assert networks(every.get(SUBNETS, {"family": 4})) == ["10.0.0.0/24", "10.1.0.0/24"]
    assert networks(every.get(SUBNETS, {"contains": "10.1.0.77"})) == ["10.1.0.0/24"]
    assert networks(every.get(SUBNETS, {"contains": "2001:db8::1"})) == ["2001:db8::/64"]
    assert networks(every.get(SUBNETS, {"contains": "192.0.2.1"})) == []
    assert networks(every.get(SUBNETS, {"q": "10.1."})) == ["10.1.0.0/24"]
    assert networks(every.get(SUBNETS, {"q": "ACME"})) == ["10.0.0.0/24", "2001:db8::/64"]
    # The scope applies under every filter (as_user re-authenticates the one test client).
    client = api.as_user(operator)
    assert networks(client.get(SUBNETS, {"contains": "10.1.0.77"})) == []


def test_subnet_list_reports_used_counts(api, admin_user, nets):
    for last in (5, 6):
        ipam.create_address(user=admin_user, address=f"10.0.0.{last}")
    by_network = {s["network"]: s for s in results(api.as_user(admin_user).get(SUBNETS))}
    assert by_network["10.0.0.0/24"]["used"] == 2
    assert by_network["10.1.0.0/24"]["used"] == 0
    assert by_network["2001:db8::/64"]["size"] == 2**64 - 1


@pytest.mark.parametrize(
    "params",
    [{"contains": "10.0.0"}, {"family": "5"}, {"vlan": "x"}, {"network": "10.0.0.0/24"}],
)
def test_bad_or_unknown_filters_are_400_not_everything(api, admin_user, nets, params):
    response = api.as_user(admin_user).get(SUBNETS, params)
    assert_api_error(response, 400, next(iter(params)))


def test_subnets_page_by_network(api, admin_user, tenants):
    for i in range(5):
        ipam.create_subnet(user=admin_user, network=f"10.{i}.0.0/16", tenant=tenants[0])
    client = api.as_user(admin_user)
    first = client.get(SUBNETS, {"page_size": 2}).json()
    assert [s["network"] for s in first["results"]] == ["10.0.0.0/16", "10.1.0.0/16"]
    second = client.get(first["next"]).json()
    assert [s["network"] for s in second["results"]] == ["10.2.0.0/16", "10.3.0.0/16"]


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_another_tenants_subnet_is_not_found(api, operator, nets, method):
    target = nets["globex4"]
    client = api.as_user(operator)
    body = {} if method in ("get", "delete") else {"data": {"name": "x"}, "format": "json"}
    response = getattr(client, method)(f"{SUBNETS}{target.pk}/", **body)
    assert_api_error(response, 404)
    assert_api_error(client.post(f"{SUBNETS}{target.pk}/allocate/", {}, format="json"), 404)
    assert Subnet.objects.get(pk=target.pk).name == "globex"
    assert not IPAddress.objects.exists()


def test_read_only_reads_but_may_not_write_or_allocate(api, viewer, nets):
    client = api.as_user(viewer)
    assert networks(client.get(SUBNETS)) == ["10.0.0.0/24", "2001:db8::/64"]
    subnet = nets["acme4"]
    assert client.get(f"{SUBNETS}{subnet.pk}/").status_code == 200
    body = {"network": "192.0.2.0/24", "tenant": "acme"}
    assert_api_error(client.post(SUBNETS, body, format="json"), 403)
    assert_api_error(client.patch(f"{SUBNETS}{subnet.pk}/", {"name": "x"}, format="json"), 403)
    assert_api_error(client.delete(f"{SUBNETS}{subnet.pk}/"), 403)
    assert_api_error(client.post(f"{SUBNETS}{subnet.pk}/allocate/", {}, format="json"), 403)
    assert_api_error(client.post(ADDRESSES, {"address": "10.0.0.9"}, format="json"), 403)
    assert not IPAddress.objects.exists()


def test_a_read_only_token_may_not_allocate(api, operator, nets):
    client = api.as_user(operator, write=False)
    response = client.post(f"{SUBNETS}{nets['acme4'].pk}/allocate/", {}, format="json")
    assert_api_error(response, 403)


def test_update_and_delete_subnet(api, operator, nets, admin_user):
    client = api.as_user(operator)
    subnet = nets["acme4"]
    response = client.patch(f"{SUBNETS}{subnet.pk}/", {"network": "10.0.0.0/23"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["network"] == "10.0.0.0/23"
    response = client.patch(f"{SUBNETS}{subnet.pk}/", {"network": "10.0.0.0/7"}, format="json")
    assert_api_error(response, 400, "network", "overlaps")
    ipam.create_address(user=admin_user, address="10.0.0.9")
    assert_api_error(client.delete(f"{SUBNETS}{subnet.pk}/"), 400)
    IPAddress.objects.all().delete()
    assert client.delete(f"{SUBNETS}{subnet.pk}/").status_code == 204


# Ranges -----------------------------------------------------------------------------------------


def test_ranges_create_overlap_and_filters(api, operator, nets):
    client = api.as_user(operator)
    subnet = nets["acme4"]
    pool = {"subnet": subnet.pk, "start": "10.0.0.100", "end": "10.0.0.199", "kind": "dhcp"}
    response = client.post(RANGES, pool, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["size"] == 100
    clash = {"subnet": subnet.pk, "start": "10.0.0.150", "end": "10.0.0.220"}
    error = assert_api_error(client.post(RANGES, clash, format="json"), 400, "start")
    assert error["fields"]["start"] == [
        "10.0.0.150-10.0.0.220 overlaps the range 10.0.0.100-10.0.0.199 (DHCP pool) in 10.0.0.0/24."
    ]
    outside = {"subnet": subnet.pk, "start": "10.0.0.200", "end": "10.0.1.5"}
    assert_api_error(client.post(RANGES, outside, format="json"), 400, "end", "is not in")
    v6 = {"subnet": nets["acme6"].pk, "start": "2001:db8::100", "end": "2001:db8::1ff"}
    assert client.post(RANGES, v6, format="json").status_code == 201
    v6_clash = {"subnet": nets["acme6"].pk, "start": "2001:db8::1ff", "end": "2001:db8::2ff"}
    assert_api_error(client.post(RANGES, v6_clash, format="json"), 400, "start", "overlaps")
    listed = results(client.get(RANGES, {"subnet": subnet.pk}))
    assert [(r["start"], r["kind"], r["used"]) for r in listed] == [("10.0.0.100", "dhcp", 0)]
    assert [r["start"] for r in results(client.get(RANGES, {"kind": "static"}))] == [
        "2001:db8::100"
    ]


def test_a_range_in_another_tenants_subnet_cannot_be_made_or_seen(api, operator, nets, admin_user):
    theirs = nets["globex4"]
    body = {"subnet": theirs.pk, "start": "10.1.0.10", "end": "10.1.0.20"}
    assert_api_error(api.as_user(operator).post(RANGES, body, format="json"), 400, "subnet")
    hidden = ipam.create_range(user=admin_user, subnet=theirs, start="10.1.0.10", end="10.1.0.20")
    client = api.as_user(operator)
    assert results(client.get(RANGES)) == []
    assert_api_error(client.get(f"{RANGES}{hidden.pk}/"), 404)
    assert_api_error(client.post(f"{RANGES}{hidden.pk}/allocate/", {}, format="json"), 404)


# Addresses --------------------------------------------------------------------------------------


def test_address_outside_any_of_my_subnets_or_duplicate_is_400(api, operator, nets):
    client = api.as_user(operator)
    response = client.post(ADDRESSES, {"address": "10.0.0.20", "dns_name": "a"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["subnet"] == nets["acme4"].pk
    assert response.json()["subnet_network"] == "10.0.0.0/24"
    error = assert_api_error(client.post(ADDRESSES, {"address": "10.0.0.20"}, format="json"), 400)
    assert error["fields"] == {"address": ["10.0.0.20 is already in use."]}
    outside = {"address": "10.0.7.1", "subnet": nets["acme4"].pk}
    error = assert_api_error(client.post(ADDRESSES, outside, format="json"), 400)
    assert error["fields"] == {"address": ["10.0.7.1 is not in 10.0.0.0/24."]}
    # Globex's subnet holds it, but is not this user's to use.
    assert_api_error(
        client.post(ADDRESSES, {"address": "10.1.0.5"}, format="json"),
        400,
        "address",
        "None of your subnets",
    )
    assert_api_error(
        client.post(
            ADDRESSES, {"address": "10.1.0.5", "subnet": nets["globex4"].pk}, format="json"
        ),
        400,
        "subnet",
    )
    assert_api_error(
        client.post(ADDRESSES, {"address": "10.0.0.300"}, format="json"), 400, "address"
    )
    assert IPAddress.objects.count() == 1


def test_address_filters_and_scope(api, operator, nets, admin_user, tenants):
    acme, globex = tenants
    server = Server.objects.create(hostname="web1.example.com", tenant=acme)
    nic = Interface.objects.create(server=server, name="eth0", mac="52:54:00:00:00:01")
    ipam.create_address(user=admin_user, address="10.0.0.5", interface=nic, dns_name="web1")
    ipam.create_address(user=admin_user, address="10.0.0.6", status="reserved")
    ipam.create_address(user=admin_user, address="2001:db8::6", description="v6 box")
    ipam.create_address(user=admin_user, address="10.1.0.5")
    client = api.as_user(operator)

    def addresses(**params):
        return [a["address"] for a in results(client.get(ADDRESSES, params))]

    assert addresses() == ["10.0.0.5", "10.0.0.6", "2001:db8::6"]
    assert addresses(subnet=nets["acme4"].pk) == ["10.0.0.5", "10.0.0.6"]
    assert addresses(status="reserved") == ["10.0.0.6"]
    assert addresses(interface=nic.pk) == ["10.0.0.5"]
    assert addresses(server="web1.example.com") == ["10.0.0.5"]
    assert addresses(q="2001:db8") == ["2001:db8::6"]
    assert addresses(q="web1") == ["10.0.0.5"]
    assert addresses(q="V6 BOX") == ["2001:db8::6"]
    assert addresses(subnet=nets["globex4"].pk) == []
    detail = results(client.get(ADDRESSES, {"interface": nic.pk}))[0]
    assert (detail["server"], detail["interface_name"]) == ("web1.example.com", "eth0")
    theirs = IPAddress.objects.get(address="10.1.0.5")
    assert_api_error(client.get(f"{ADDRESSES}{theirs.pk}/"), 404)
    assert_api_error(client.delete(f"{ADDRESSES}{theirs.pk}/"), 404)
    assert_api_error(client.get(ADDRESSES, {"status": "bogus"}), 400, "status")


def test_an_interface_of_another_tenant_is_refused(api, operator, nets, tenants):
    server = Server.objects.create(hostname="g.example.com", tenant=tenants[1])
    nic = Interface.objects.create(server=server, name="eth0", mac="52:54:00:00:00:09")
    body = {"address": "10.0.0.9", "interface": nic.pk}
    assert_api_error(api.as_user(operator).post(ADDRESSES, body, format="json"), 400, "interface")


def test_update_an_address(api, operator, nets, admin_user):
    ip = ipam.create_address(user=admin_user, address="10.0.0.5")
    ipam.create_address(user=admin_user, address="10.0.0.6")
    client = api.as_user(operator)
    response = client.patch(f"{ADDRESSES}{ip.pk}/", {"dns_name": "x.example.com"}, format="json")
    assert response.status_code == 200, response.content
    response = client.patch(f"{ADDRESSES}{ip.pk}/", {"address": "10.0.0.6"}, format="json")
    assert_api_error(response, 400, "address", "already in use")
    response = client.patch(f"{ADDRESSES}{ip.pk}/", {"address": "2001:db8::5"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["subnet"] == nets["acme6"].pk


# Allocation -------------------------------------------------------------------------------------


def test_allocate_from_subnet_and_range(api, operator, nets, admin_user, tenants):
    subnet = nets["acme4"]
    pool = ipam.create_range(
        user=admin_user, subnet=subnet, start="10.0.0.2", end="10.0.0.9", kind="dhcp"
    )
    server = Server.objects.create(hostname="db1.example.com", tenant=tenants[0])
    nic = Interface.objects.create(server=server, name="eth1", mac="52:54:00:00:00:11")
    client = api.as_user(operator)
    response = client.post(
        f"{SUBNETS}{subnet.pk}/allocate/",
        {"interface": nic.pk, "dns_name": "db1.example.com"},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    # The gateway (.1) and the DHCP pool (.2-.9) are skipped.
    assert (body["address"], body["server"], body["status"]) == (
        "10.0.0.10",
        "db1.example.com",
        "active",
    )
    response = client.post(f"{RANGES}{pool.pk}/allocate/", {"status": "dhcp"}, format="json")
    assert response.status_code == 201, response.content
    assert (response.json()["address"], response.json()["status"]) == ("10.0.0.2", "dhcp")
    v6 = client.post(f"{SUBNETS}{nets['acme6'].pk}/allocate/", {}, format="json")
    assert v6.status_code == 201 and v6.json()["address"] == "2001:db8::1"
    assert_api_error(
        client.post(f"{SUBNETS}{subnet.pk}/allocate/", {"status": "nope"}, format="json"),
        400,
        "status",
    )


def test_allocate_until_full_is_a_clear_400(api, operator, tenants):
    small = ipam.create_subnet(user=operator, network="192.0.2.0/30", tenant=tenants[0])
    client = api.as_user(operator)
    got = [client.post(f"{SUBNETS}{small.pk}/allocate/", {}, format="json") for _ in range(2)]
    assert [r.json()["address"] for r in got] == ["192.0.2.1", "192.0.2.2"]
    error = assert_api_error(client.post(f"{SUBNETS}{small.pk}/allocate/", {}, format="json"), 400)
    assert error["fields"] == {
        "non_field_errors": ["No free address is left in the subnet 192.0.2.0/30."]
    }
    assert error["message"] == "Invalid input."


def test_ranges_are_deleted_with_their_subnet(api, operator, nets, admin_user):
    subnet = nets["acme6"]
    ipam.create_range(user=admin_user, subnet=subnet, start="2001:db8::10", end="2001:db8::20")
    assert api.as_user(operator).delete(f"{SUBNETS}{subnet.pk}/").status_code == 204
    assert not IPRange.objects.exists()


def test_schema_documents_the_ipam_endpoints(tmp_path):
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    for path in (
        "/api/inventory/subnets/{id}/allocate/:",
        "/api/inventory/ranges/{id}/allocate/:",
        "/api/inventory/addresses/:",
    ):
        assert path in text


def _populate(admin_user, tenant, first, count):
    for i in range(first, first + count):
        subnet = ipam.create_subnet(user=admin_user, network=f"10.{i}.0.0/24", tenant=tenant)
        ipam.create_range(
            user=admin_user, subnet=subnet, start=f"10.{i}.0.100", end=f"10.{i}.0.110"
        )
        server = Server.objects.create(hostname=f"n{i}.example.com", tenant=tenant)
        nic = Interface.objects.create(server=server, name="eth0", mac=f"52:54:00:00:01:{i:02x}")
        ipam.allocate_address(user=admin_user, subnet=subnet, interface=nic)


@pytest.mark.parametrize("url", [SUBNETS, RANGES, ADDRESSES])
def test_list_query_count_does_not_grow_with_rows(url, api, admin_user, tenants):
    client = api.as_user(admin_user)
    _populate(admin_user, tenants[0], 0, 3)
    client.get(url)  # warm-up: the token's once-a-minute last_used write

    def queries():
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        assert response.status_code == 200, response.content
        return len(captured), len(response.json()["results"])

    few, rows = queries()
    assert rows == 3
    _populate(admin_user, tenants[0], 3, 27)
    many, rows = queries()
    assert rows == 30
    assert many == few

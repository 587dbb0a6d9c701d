"""The IPAM portal pages: subnet list with usage, detail with ranges and addresses, the allocate
button (CSRF, permission-aware), and forms that show the services' errors on their fields."""

import html
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from inventory import ipam
from inventory.models import Interface, IPAddress, IPRange, Server, Subnet

pytestmark = pytest.mark.django_db


@pytest.fixture
def nets(admin_user, tenants):
    acme, globex = tenants
    acme4 = ipam.create_subnet(
        user=admin_user,
        network="10.0.0.0/24",
        tenant=acme,
        name="acme servers",
        vlan=100,
        gateway="10.0.0.1",
    )
    ipam.create_range(user=admin_user, subnet=acme4, start="10.0.0.2", end="10.0.0.9", kind="dhcp")
    for last in (10, 11, 12):
        ipam.create_address(user=admin_user, address=f"10.0.0.{last}", dns_name=f"h{last}")
    return {
        "acme4": acme4,
        "acme6": ipam.create_subnet(user=admin_user, network="2001:db8::/64", tenant=acme),
        "globex4": ipam.create_subnet(user=admin_user, network="10.1.0.0/24", tenant=globex),
    }


def page(client, name, *args, **params):
    response = client.get(reverse(name, args=args), params)
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def field_error(html, field):
    match = re.search(rf'id="id_{field}_error">([^<]*)<', html)
    return match.group(1) if match else None


def test_subnet_list_shows_usage_and_only_my_tenants(client, operator, nets):
    client.force_login(operator)
    html = page(client, "inventory:subnets")
    assert "10.0.0.0/24" in html and "2001:db8::/64" in html
    assert "10.1.0.0/24" not in html
    assert "acme servers" in html and ">100<" in html
    assert "3 / 254" in html  # used / size
    assert reverse("inventory:subnet-create") in html
    filtered = page(client, "inventory:subnets", contains="2001:db8::5")
    assert "2001:db8::/64" in filtered and "10.0.0.0/24" not in filtered
    refused = page(client, "inventory:subnets", contains="not-an-address")
    assert "not an IP address" in refused and "10.0.0.0/24" not in refused


def test_subnet_list_query_count_does_not_grow(client, admin_user, tenants):
    client.force_login(admin_user)
    for i in range(3):
        ipam.create_subnet(user=admin_user, network=f"10.{i}.0.0/24", tenant=tenants[0])
    client.get(reverse("inventory:subnets"))
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("inventory:subnets"))
    for i in range(3, 30):
        subnet = ipam.create_subnet(user=admin_user, network=f"10.{i}.0.0/24", tenant=tenants[0])
        ipam.allocate_address(user=admin_user, subnet=subnet)
    with CaptureQueriesContext(connection) as many:
        client.get(reverse("inventory:subnets"))
    assert len(many) == len(few)


def test_subnet_detail_shows_ranges_addresses_and_the_allocate_button(
    client, operator, nets, tenants, admin_user
):
    server = Server.objects.create(hostname="web1.example.com", tenant=tenants[0])
    nic = Interface.objects.create(server=server, name="eth0", mac="52:54:00:00:00:01")
    ipam.create_address(user=admin_user, address="10.0.0.200", interface=nic)
    client.force_login(operator)
    html = page(client, "inventory:subnet", nets["acme4"].pk)
    assert f'<a href="{reverse("inventory:server", args=[server.pk])}">web1.example.com</a>' in html
    assert "DHCP pool" in html and "10.0.0.2" in html and "10.0.0.9" in html
    assert "h10" in html and "10.0.0.12" in html
    assert "Allocate next free address" in html
    assert "csrfmiddlewaretoken" in html
    assert 'Next free in the subnet: <span class="mono">10.0.0.13</span>' in html
    assert reverse("inventory:subnet-allocate", args=[nets["acme4"].pk]) in html


def test_read_only_sees_no_buttons_and_cannot_post(client, viewer, nets):
    client.force_login(viewer)
    subnet = nets["acme4"]
    html = page(client, "inventory:subnet", subnet.pk)
    assert "Allocate next free address" not in html
    assert "Delete subnet" not in html and "Release" not in html
    assert reverse("inventory:subnet-create") not in page(client, "inventory:subnets")
    assert client.post(reverse("inventory:subnet-allocate", args=[subnet.pk])).status_code == 403
    assert client.get(reverse("inventory:subnet-create")).status_code == 403
    assert client.get(reverse("inventory:subnet-edit", args=[subnet.pk])).status_code == 403
    assert client.post(reverse("inventory:subnet-delete", args=[subnet.pk])).status_code == 403
    assert IPAddress.objects.count() == 3


def test_another_tenants_subnet_is_404(client, operator, nets):
    client.force_login(operator)
    theirs = nets["globex4"]
    for name in ("inventory:subnet", "inventory:subnet-edit"):
        assert client.get(reverse(name, args=[theirs.pk])).status_code == 404
    assert client.post(reverse("inventory:subnet-allocate", args=[theirs.pk])).status_code == 404
    assert client.post(reverse("inventory:subnet-delete", args=[theirs.pk])).status_code == 404
    assert Subnet.objects.filter(pk=theirs.pk).exists()


def test_allocate_with_a_real_csrf_token(operator, nets):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    subnet = nets["acme4"]
    url = reverse("inventory:subnet-allocate", args=[subnet.pk])
    assert client.post(url, {"dns_name": "x"}).status_code == 403  # no token
    html = page(client, "inventory:subnet", subnet.pk)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    response = client.post(url, {"dns_name": "new.example.com", "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert response["Location"] == reverse("inventory:subnet", args=[subnet.pk])
    ip = IPAddress.objects.get(dns_name="new.example.com")
    # .1 gateway, .2-.9 the DHCP pool, .10-.12 taken.
    assert str(ip.address) == "10.0.0.13"
    assert "Allocated 10.0.0.13." in client.get(response["Location"]).content.decode()


def test_allocate_from_a_range_and_until_full(client, operator, tenants):
    client.force_login(operator)
    small = ipam.create_subnet(user=operator, network="192.0.2.0/30", tenant=tenants[0])
    pool = ipam.create_range(user=operator, subnet=small, start="192.0.2.2", end="192.0.2.2")
    url = reverse("inventory:subnet-allocate", args=[small.pk])
    client.post(url, {"iprange": pool.pk})
    assert [str(a) for a in IPAddress.objects.values_list("address", flat=True)] == ["192.0.2.2"]
    client.post(url)
    response = client.post(url, follow=True)
    assert "No free address is left in the subnet 192.0.2.0/30." in response.content.decode()
    assert IPAddress.objects.count() == 2


def test_create_subnet_form_shows_overlap_on_the_network_field(client, operator, nets, tenants):
    client.force_login(operator)
    url = reverse("inventory:subnet-create")
    form = page(client, "inventory:subnet-create")
    assert "Globex" not in form  # only the user's tenants are offered
    response = client.post(url, {"network": "10.0.0.128/25", "tenant": tenants[0].pk})
    assert response.status_code == 200
    html = response.content.decode()
    assert (
        field_error(html, "network")
        == "10.0.0.128/25 overlaps the subnet 10.0.0.0/24 (acme servers)."
    )
    response = client.post(
        url, {"network": "192.0.2.0/24", "tenant": tenants[0].pk, "gateway": "10.9.9.9"}
    )
    assert field_error(response.content.decode(), "gateway") == "10.9.9.9 is not in 192.0.2.0/24."
    response = client.post(
        url,
        {
            "network": "192.0.2.0/24",
            "tenant": tenants[0].pk,
            "gateway": "192.0.2.1",
            "dns_servers": "192.0.2.53, 2001:db8::53",
            "name": "dmz",
        },
    )
    created = Subnet.objects.get(network="192.0.2.0/24")
    assert response["Location"] == reverse("inventory:subnet", args=[created.pk])
    assert [str(a) for a in created.dns_servers] == ["192.0.2.53", "2001:db8::53"]


def test_edit_subnet(client, operator, nets):
    client.force_login(operator)
    subnet = nets["acme6"]
    url = reverse("inventory:subnet-edit", args=[subnet.pk])
    assert 'value="2001:db8::/64"' in page(client, "inventory:subnet-edit", subnet.pk)
    response = client.post(
        url, {"network": "2001:db8::/64", "tenant": subnet.tenant_id, "name": "renamed"}
    )
    assert response.status_code == 302
    subnet.refresh_from_db()
    assert subnet.name == "renamed"


def test_range_form_shows_overlap_on_start(client, operator, nets):
    client.force_login(operator)
    subnet = nets["acme4"]
    url = reverse("inventory:subnet-range-create", args=[subnet.pk])
    response = client.post(url, {"start": "10.0.0.5", "end": "10.0.0.20", "kind": "static"})
    assert "overlaps the range 10.0.0.2-10.0.0.9 (DHCP pool)" in field_error(
        response.content.decode(), "start"
    )
    response = client.post(url, {"start": "10.0.0.50", "end": "10.0.0.60", "kind": "reserved"})
    assert response.status_code == 302
    reserved = IPRange.objects.get(kind="reserved")
    edit = reverse("inventory:subnet-range-edit", args=[reserved.pk])
    response = client.post(edit, {"start": "10.0.0.50", "end": "10.0.0.70", "kind": "reserved"})
    assert response.status_code == 302
    reserved.refresh_from_db()
    assert str(reserved.end) == "10.0.0.70"
    client.post(reverse("inventory:subnet-range-delete", args=[reserved.pk]))
    assert not IPRange.objects.filter(pk=reserved.pk).exists()


def test_address_form_and_release(client, operator, nets):
    client.force_login(operator)
    subnet = nets["acme4"]
    url = reverse("inventory:subnet-address-create", args=[subnet.pk])
    response = client.post(url, {"address": "10.0.0.10", "status": "active"})
    assert field_error(response.content.decode(), "address") == "10.0.0.10 is already in use."
    response = client.post(url, {"address": "10.0.1.10", "status": "active"})
    assert field_error(response.content.decode(), "address") == "10.0.1.10 is not in 10.0.0.0/24."
    response = client.post(url, {"address": "10.0.0.77", "status": "reserved"})
    assert response.status_code == 302
    ip = IPAddress.objects.get(address="10.0.0.77")
    client.post(reverse("inventory:subnet-address-delete", args=[ip.pk]))
    assert not IPAddress.objects.filter(pk=ip.pk).exists()


def test_delete_subnet_refused_while_it_has_addresses(client, operator, nets):
    client.force_login(operator)
    subnet = nets["acme4"]
    response = client.post(reverse("inventory:subnet-delete", args=[subnet.pk]), follow=True)
    assert "still has 3 address(es)" in response.content.decode()
    empty = nets["acme6"]
    response = client.post(reverse("inventory:subnet-delete", args=[empty.pk]))
    assert response["Location"] == reverse("inventory:subnets")
    assert not Subnet.objects.filter(pk=empty.pk).exists()


def test_addresses_are_paginated(client, admin_user, tenants):
    client.force_login(admin_user)
    subnet = ipam.create_subnet(user=admin_user, network="10.5.0.0/24", tenant=tenants[0])
    IPAddress.objects.bulk_create(
        IPAddress(subnet=subnet, address=f"10.5.0.{i}") for i in range(1, 151)
    )
    first = page(client, "inventory:subnet", subnet.pk, size=100)
    assert "10.5.0.100<" in first and "10.5.0.101<" not in first
    assert "<strong>150</strong> addresses" in first
    # Keyset pages in address order (not text order: .100 after .99), back and forth.
    next_url = html.unescape(re.search(r'href="(\?[^"]*after=[^"]+)" hx-get', first)[1])
    url = reverse("inventory:subnet", args=[subnet.pk])
    second = client.get(url + next_url).content.decode()
    assert "10.5.0.101<" in second and "10.5.0.150<" in second and "10.5.0.100<" not in second
    assert 'rel="next"' not in second
    previous_url = html.unescape(re.search(r'href="(\?[^"]*before=[^"]+)" hx-get', second)[1])
    again = client.get(url + previous_url).content.decode()
    assert "10.5.0.1<" in again and "10.5.0.100<" in again and "10.5.0.101<" not in again

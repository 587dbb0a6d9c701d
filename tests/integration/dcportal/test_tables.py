"""The portal's one table component (dcportal.tables), exercised through real list pages:
search, column and attribute filters, sorting, keyset pages, page size, the capped count, the
column chooser, CSV/JSON export, errors, query counts, bulk actions by permission, the live
job list, and the edit forms that open in the dialog."""

import csv
import html
import io
import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from dcportal import audit, jobs, services, tables
from dcportal.models import ApiToken, Credential, Job, UserPreference
from inventory import ipam
from inventory import services as inventory_services
from inventory.models import Conflict, Interface, IPAddress, Server, Subnet

pytestmark = pytest.mark.django_db

SERVERS = reverse("inventory:index")
INTERFACES = reverse("inventory:interfaces")
SUBNETS = reverse("inventory:subnets")
JOBS = reverse("jobs")
AUDIT = reverse("audit")
TOKENS = reverse("tokens")
CONFLICTS = reverse("inventory:conflicts")
HTMX = {"HTTP_HX_REQUEST": "true"}


def body(response):
    assert response.status_code == 200, response.content[:800]
    return response.content.decode()


def cells(text, column):
    """The texts of one column (by position among the headers) of the page's table."""
    if "<tbody>" not in text:
        return []
    index = headers(text).index(column)
    rows = re.findall(r"<tr>(.*?)</tr>", text.split("<tbody>", 1)[-1], re.S)
    result = []
    for row in rows:
        tds = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        data = [td for td in tds if 'name="ids"' not in td]
        result.append(re.sub(r"<[^>]+>", "", data[index]).strip())
    return result


def headers(text):
    heads = re.findall(r'<th scope="col"[^>]*>(.*?)</th>', text, re.S)
    names = [re.sub(r"<[^>]+>|[▲▼]", "", head).strip() for head in heads]
    return [name for name in names if name and name != "Actions"]


def link(text, rel):
    found = re.search(rf'href="(\?[^"]*)" hx-get="[^"]*"[^>]*rel="{rel}"', text)
    return html.unescape(found[1]) if found else None


def exported(response):
    assert response.status_code == 200
    return b"".join(response.streaming_content).decode()


def many_interfaces(tenant, count, *, prefix="if", host="box"):
    """`count` interfaces spread over a few servers of `tenant` (plain rows: this is a list
    test, not a service test)."""
    servers = Server.objects.bulk_create(
        Server(hostname=f"{host}{i}.{tenant.slug}.example", tenant=tenant) for i in range(3)
    )
    start = Interface.objects.count()
    Interface.objects.bulk_create(
        Interface(
            server=servers[i % 3],
            name=f"{prefix}{i:03d}",
            mac=f"02:{tenant.pk % 256:02x}:00:00:{(start + i) // 256:02x}:{(start + i) % 256:02x}",
            description=f"port {i}",
        )
        for i in range(count)
    )
    return servers


# Search and filters -----------------------------------------------------------------------------


def test_search_column_filter_and_attribute_filter(client, operator, admin_user, tenants):
    acme, globex = tenants
    make = inventory_services.create_server
    make(
        user=admin_user,
        hostname="big.acme.example",
        tenant=acme,
        vendor="Dell Inc.",
        attributes={"cpu": {"cores": 16}},
    )
    make(
        user=admin_user,
        hostname="eight.acme.example",
        tenant=acme,
        vendor="HPE",
        attributes={"cpu": {"cores": 8}},
    )
    make(
        user=admin_user,
        hostname="small.acme.example",
        tenant=acme,
        vendor="Dell Inc.",
        attributes={"cpu": {"cores": 2}},
    )
    make(
        user=admin_user,
        hostname="big.globex.example",
        tenant=globex,
        attributes={"cpu": {"cores": 64}},
    )
    client.force_login(operator)
    hosts = lambda **params: cells(body(client.get(SERVERS, params)), "Host name")  # noqa: E731
    assert hosts(attr="cpu.cores__gte=8") == ["big.acme.example", "eight.acme.example"]
    assert hosts(q="small") == ["small.acme.example"]
    assert hosts(vendor="dell") == ["big.acme.example", "small.acme.example"]
    assert hosts(vendor="dell", attr="cpu.cores__gte=8") == ["big.acme.example"]
    # Another tenant's rows are not counted either.
    assert "<strong>3</strong> servers" in body(client.get(SERVERS))

    many_interfaces(acme, 5)
    names = cells(body(client.get(INTERFACES, {"q": "if003"})), "Name")
    assert names == ["if003"]
    # A part of a MAC is searched as text; a column filter takes a whole MAC.
    assert len(cells(body(client.get(INTERFACES, {"q": "02:"})), "Name")) == 5
    mac = Interface.objects.get(name="if002").mac
    assert cells(body(client.get(INTERFACES, {"mac": mac.upper()})), "Name") == ["if002"]


def test_unknown_or_invalid_filter_is_an_error_with_no_rows(client, admin_user, tenants):
    many_interfaces(tenants[0], 3)
    client.force_login(admin_user)
    for url, params, message in (
        (INTERFACES, {"colour": "red"}, "Unknown filter"),
        (INTERFACES, {"mac": "not-a-mac"}, "not a MAC address"),
        (JOBS, {"colour": "red"}, "Unknown filter"),
        (AUDIT, {"since": "yesterday"}, "since"),
        (SUBNETS, {"contains": "nope"}, "not an IP address"),
        (INTERFACES, {"size": "7"}, "A page holds"),
        (INTERFACES, {"sort": "nope"}, "Cannot sort by"),
        (INTERFACES, {"after": "garbage"}, "The page link is damaged"),
    ):
        text = body(client.get(url, params))
        assert message in text, (url, params)
        assert 'role="alert"' in text
        assert "<tbody>" not in text, (url, params)
        assert "<strong>0</strong>" in text


# Sorting, pages, count ---------------------------------------------------------------------------


def test_sort_both_ways_keyset_pages_and_page_size(client, admin_user, tenants):
    many_interfaces(tenants[0], 120)
    client.force_login(admin_user)
    everything = [f"if{i:03d}" for i in range(120)]

    first = body(client.get(INTERFACES, {"sort": "name"}))
    assert "<strong>120</strong> interfaces" in first
    assert cells(first, "Name") == everything[:50]
    assert 'aria-sort="ascending"' in first
    assert link(first, "prev") is None
    second = body(client.get(INTERFACES + link(first, "next")))
    assert cells(second, "Name") == everything[50:100]
    third = body(client.get(INTERFACES + link(second, "next")))
    assert cells(third, "Name") == everything[100:]
    assert link(third, "next") is None
    # Back from the last page gives exactly the page before it, then the first.
    back = body(client.get(INTERFACES + link(third, "prev")))
    assert cells(back, "Name") == everything[50:100]
    assert cells(body(client.get(INTERFACES + link(back, "prev"))), "Name") == everything[:50]

    descending = body(client.get(INTERFACES, {"sort": "-name"}))
    assert cells(descending, "Name") == everything[::-1][:50]
    assert 'aria-sort="descending"' in descending
    later = body(client.get(INTERFACES + link(descending, "next")))
    assert cells(later, "Name") == everything[::-1][50:100]
    # The header link of the sorted column turns it around; the filters stay.
    page = html.unescape(body(client.get(INTERFACES, {"sort": "name", "boot": "false"})))
    assert "sort=-name" in page and "boot=false" in page

    small = body(client.get(INTERFACES, {"sort": "name", "size": "25"}))
    assert cells(small, "Name") == everything[:25]
    following = link(small, "next")
    assert "size=25" in following
    assert cells(body(client.get(INTERFACES + following)), "Name") == everything[25:50]


def test_sort_by_a_column_with_ties_pages_through_every_row_once(client, admin_user, tenants):
    many_interfaces(tenants[0], 120)
    client.force_login(admin_user)
    seen, url = [], f"{INTERFACES}?sort=-host"
    while url:
        text = body(client.get(url))
        seen.extend(cells(text, "Name"))
        following = link(text, "next")
        url = INTERFACES + following if following else None
    assert sorted(seen) == [f"if{i:03d}" for i in range(120)]


def test_count_is_capped(client, admin_user, tenants, monkeypatch):
    many_interfaces(tenants[0], 12)
    client.force_login(admin_user)
    monkeypatch.setattr(tables, "COUNT_LIMIT", 10)
    text = body(client.get(INTERFACES))
    assert "<strong>10+</strong> interfaces" in text
    assert len(cells(text, "Name")) == 12  # the cap is on counting, never on the rows
    assert "<strong>2</strong> interfaces" in body(client.get(INTERFACES, {"q": "if01"}))


# Column chooser ----------------------------------------------------------------------------------


def test_column_chooser_is_saved_per_user(client, admin_user, make_user, tenants):
    many_interfaces(tenants[0], 2)
    other = make_user("other", roles=["admin"])
    chooser = reverse("table-columns", args=["interfaces"])
    client.force_login(admin_user)
    defaults = headers(body(client.get(INTERFACES)))
    assert defaults == ["Host", "Name", "MAC", "Boot", "Addresses"]

    response = client.post(
        chooser, {"columns": ["name", "description", "tenant"], "next": f"{INTERFACES}?q=if"}
    )
    assert response.status_code == 302 and response["Location"] == f"{INTERFACES}?q=if"
    text = body(client.get(INTERFACES))
    assert headers(text) == ["Name", "Description", "Tenant"]
    assert cells(text, "Description") == ["port 0", "port 1"]
    # The column chooser shows the choice.
    assert 'value="description" checked' in text and 'value="mac" checked' not in text

    client.force_login(other)
    assert headers(body(client.get(INTERFACES))) == defaults

    client.force_login(admin_user)
    refused = client.post(chooser, {"columns": ["name", "password"], "next": INTERFACES})
    assert "No such column: password." in body(client.get(refused["Location"]))
    assert headers(body(client.get(INTERFACES))) == ["Name", "Description", "Tenant"]
    assert client.post(reverse("table-columns", args=["nope"]), {}).status_code == 404

    client.post(chooser, {"reset": "1", "columns": ["name"], "next": INTERFACES})
    assert headers(body(client.get(INTERFACES))) == defaults
    assert not UserPreference.objects.filter(user=admin_user).exists()


# Export ------------------------------------------------------------------------------------------


def test_export_has_every_matching_row_of_my_tenants_only(client, operator, tenants):
    acme, globex = tenants
    many_interfaces(acme, 60)
    many_interfaces(globex, 5, prefix="theirs", host="gx")
    client.force_login(operator)
    page = body(client.get(INTERFACES, {"size": "25"}))
    assert len(cells(page, "Name")) == 25

    text = exported(client.get(INTERFACES, {"size": "25", "export": "csv"}))
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["Host", "Name", "MAC", "Boot", "Addresses"]
    assert len(rows) == 61
    assert not any("theirs" in cell or "gx" in cell for row in rows for cell in row)

    # From the second page too, an export is every matching row, not the rest of the pages.
    second = link(body(client.get(INTERFACES, {"q": "if00", "sort": "name", "size": "25"})), "next")
    assert second is None
    following = link(page, "next")
    assert len(json.loads(exported(client.get(f"{INTERFACES}{following}&export=json")))) == 60
    response = client.get(INTERFACES, {"q": "if00", "sort": "name", "export": "json"})
    items = json.loads(exported(response))
    assert [item["name"] for item in items] == [f"if00{i}" for i in range(10)]
    assert set(items[0]) == {"host", "name", "mac", "boot", "addresses"}
    assert items[0]["boot"] is False and items[0]["addresses"] == []
    assert response["Content-Type"] == "application/json"
    assert 'attachment; filename="interfaces-' in response["Content-Disposition"]

    everything = json.loads(exported(client.get(INTERFACES, {"export": "json"})))
    assert len(everything) == 60
    assert client.get(INTERFACES, {"export": "xls"}).status_code == 200  # an error page
    assert "Export as csv or json" in body(client.get(INTERFACES, {"export": "xls"}))


def test_csv_export_neutralises_formulas(client, admin_user, tenants):
    make = inventory_services.create_server
    make(user=admin_user, hostname="a.example", tenant=tenants[0], serial="=HYPERLINK(1)")
    make(user=admin_user, hostname="b.example", tenant=tenants[0], serial="@SUM(A1)")
    make(user=admin_user, hostname="c.example", tenant=tenants[0], serial="-12.5")
    client.force_login(admin_user)
    client.post(
        reverse("table-columns", args=["servers"]),
        {"columns": ["hostname", "serial"], "next": SERVERS},
    )
    rows = list(csv.reader(io.StringIO(exported(client.get(SERVERS, {"export": "csv"})))))
    assert rows == [
        ["Host name", "Serial"],
        ["a.example", "'=HYPERLINK(1)"],
        ["b.example", "'@SUM(A1)"],
        ["c.example", "-12.5"],
    ]
    # JSON carries the value as it is: no spreadsheet reads it.
    items = json.loads(exported(client.get(SERVERS, {"export": "json"})))
    assert items[0] == {"hostname": "a.example", "serial": "=HYPERLINK(1)"}


# Query counts ------------------------------------------------------------------------------------


def _populate_interfaces(admin_user, tenants, count):
    servers = many_interfaces(
        tenants[0],
        count,
        prefix=f"n{Interface.objects.count()}-",
        host=f"b{Server.objects.count()}-",
    )
    subnet = Subnet.objects.filter(network="10.9.0.0/16").first() or ipam.create_subnet(
        user=admin_user, network="10.9.0.0/16", tenant=tenants[0]
    )
    for nic in Interface.objects.filter(server__in=servers):
        IPAddress.objects.create(
            subnet=subnet, address=f"10.9.{nic.pk // 250}.{nic.pk % 250 + 1}", interface=nic
        )


def _populate_subnets(admin_user, tenants, count):
    start = Subnet.objects.count()
    for i in range(start, start + count):
        subnet = ipam.create_subnet(user=admin_user, network=f"10.{i}.0.0/24", tenant=tenants[0])
        ipam.allocate_address(user=admin_user, subnet=subnet)


def _populate_jobs(admin_user, tenants, count):
    for _ in range(count):
        cred = services.create_credential(
            user=admin_user, tenant=tenants[0], name=f"c{Credential.objects.count()}", secret="x"
        )
        jobs.enqueue("dcportal.ping", user=admin_user, obj=cred)


def _populate_conflicts(admin_user, tenants, count):
    server = Server.objects.create(hostname=f"s{Server.objects.count()}", tenant=tenants[0])
    for i in range(count):
        Conflict.objects.create(
            tenant=tenants[0],
            kind="serial",
            server=server,
            other_server=server,
            detail=f"d{i}",
            report={},
        )


def _populate_tokens(admin_user, tenants, count):
    for _ in range(count):
        services.create_token(user=admin_user, name=f"t{ApiToken.objects.count()}")


@pytest.mark.parametrize(
    ("url", "populate"),
    [
        (INTERFACES, _populate_interfaces),
        (SUBNETS, _populate_subnets),
        (JOBS, _populate_jobs),
        (AUDIT, _populate_jobs),
        (CONFLICTS, _populate_conflicts),
        (TOKENS, _populate_tokens),
    ],
)
def test_query_count_is_the_same_for_10_and_60_rows(client, admin_user, tenants, url, populate):
    client.force_login(admin_user)

    def count():
        client.get(url, {"size": "100"})
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url, {"size": "100"}).status_code == 200
        return len(captured)

    populate(admin_user, tenants, 10)
    few = count()
    populate(admin_user, tenants, 50)
    assert count() == few


def test_subnet_addresses_query_count_is_the_same_for_10_and_60_rows(client, admin_user, tenants):
    client.force_login(admin_user)
    subnet = ipam.create_subnet(user=admin_user, network="10.7.0.0/24", tenant=tenants[0])
    url = reverse("inventory:subnet", args=[subnet.pk])
    servers = many_interfaces(tenants[0], 60)
    nics = list(Interface.objects.filter(server__in=servers).order_by("name"))

    def count():
        client.get(url, {"size": "100"})
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url, {"size": "100"}).status_code == 200
        return len(captured)

    for _ in range(10):
        ipam.allocate_address(user=admin_user, subnet=subnet)
    IPAddress.objects.filter(subnet=subnet).update(interface=nics[0])
    few = count()
    for _ in range(50):
        ipam.allocate_address(user=admin_user, subnet=subnet)
    IPAddress.objects.filter(subnet=subnet, interface=None).update(interface=nics[1])
    assert count() == few


# Bulk actions ------------------------------------------------------------------------------------


@pytest.fixture
def subnet_with_addresses(admin_user, tenants):
    subnet = ipam.create_subnet(user=admin_user, network="10.0.0.0/24", tenant=tenants[0])
    for last in (10, 11, 12):
        ipam.create_address(user=admin_user, address=f"10.0.0.{last}", dns_name=f"h{last}")
    theirs = ipam.create_subnet(user=admin_user, network="10.1.0.0/24", tenant=tenants[1])
    ipam.create_address(user=admin_user, address="10.1.0.10")
    return subnet, theirs


def test_bulk_actions_only_for_users_with_the_permission(
    client, operator, viewer, admin_user, make_user, tenants, subnet_with_addresses
):
    subnet, _ = subnet_with_addresses
    url = reverse("inventory:subnet", args=[subnet.pk])
    bulk = reverse("inventory:address-bulk")
    client.force_login(operator)
    text = body(client.get(url))
    assert f'formaction="{bulk}"' in text and 'value="release"' in text
    assert "data-select-all" in text and 'name="ids"' in text
    client.force_login(viewer)
    text = body(client.get(url))
    assert bulk not in text and 'name="ids"' not in text and "data-select-all" not in text
    assert client.post(bulk, {"ids": [1], "action": "release"}).status_code == 403

    # Jobs: cancelling other people's jobs is an action of its own.
    _populate_jobs(admin_user, tenants, 1)
    client.force_login(admin_user)
    assert 'value="cancel"' in body(client.get(JOBS))
    starter = make_user("starter", tenants=[tenants[0]])
    client.force_login(starter)
    assert 'value="cancel"' not in body(client.get(JOBS))
    assert client.post(JOBS, {"ids": [Job.objects.get().pk]}).status_code == 403

    # Conflicts: dismissing takes resolve_conflict.
    _populate_conflicts(admin_user, tenants, 1)
    client.force_login(operator)
    assert reverse("inventory:conflict-bulk") in body(client.get(CONFLICTS))
    client.force_login(viewer)
    assert reverse("inventory:conflict-bulk") not in body(client.get(CONFLICTS))


def test_bulk_release_confirms_then_releases_only_my_tenants_addresses(
    client, operator, subnet_with_addresses
):
    subnet, theirs = subnet_with_addresses
    mine = list(IPAddress.objects.filter(subnet=subnet).order_by("address"))
    foreign = IPAddress.objects.get(subnet=theirs)
    back = reverse("inventory:subnet", args=[subnet.pk])
    client.force_login(operator)
    ids = [mine[0].pk, mine[1].pk, foreign.pk]
    ask = body(
        client.post(
            reverse("inventory:address-bulk"), {"action": "release", "ids": ids, "next": back}
        )
    )
    assert "Release 2 addresses?" in ask
    assert "10.0.0.10 h10" in ask and "10.1.0.10" not in ask
    assert IPAddress.objects.count() == 4  # nothing happens before confirming
    response = client.post(
        reverse("inventory:address-bulk"),
        {"action": "release", "ids": ids, "next": back, "confirm": "1"},
    )
    assert response.status_code == 302 and response["Location"] == back
    assert set(IPAddress.objects.values_list("pk", flat=True)) == {mine[2].pk, foreign.pk}
    assert "Released 2 addresses." in body(client.get(back))


def test_bulk_revoke_of_my_api_tokens(client, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    first, _ = services.create_token(user=alice, name="=cmd|calc")
    second, _ = services.create_token(user=alice, name="second")
    bobs, _ = services.create_token(user=bob, name="bobs")
    client.force_login(alice)
    text = body(client.get(TOKENS))
    assert cells(text, "Name") == ["second", "=cmd|calc"]
    assert reverse("token-revoke", args=[first.pk]) in text
    ids = [first.pk, bobs.pk]
    ask = body(client.post(TOKENS, {"action": "revoke", "ids": ids, "next": TOKENS}))
    assert "Revoke 1 token?" in ask and "bobs" not in ask
    client.post(TOKENS, {"action": "revoke", "ids": ids, "confirm": "1", "next": TOKENS})
    first.refresh_from_db(), second.refresh_from_db(), bobs.refresh_from_db()
    assert first.revoked and not second.revoked and not bobs.revoked
    assert cells(body(client.get(TOKENS, {"active": "true"})), "Name") == ["second"]
    rows = list(csv.reader(io.StringIO(exported(client.get(TOKENS, {"export": "csv"})))))
    assert [row[0] for row in rows[1:]] == ["second", "'=cmd|calc"]
    assert "bobs" not in str(rows)


def test_bulk_dismiss_conflicts_and_revoke_enrolment_tokens(client, operator, admin_user, tenants):
    from inventory import registration

    _populate_conflicts(admin_user, tenants, 2)
    theirs = Conflict.objects.create(
        tenant=tenants[1], kind="placeholder", detail="globex-only conflict", report={}
    )
    client.force_login(operator)
    text = body(client.get(CONFLICTS))
    # A long, distinctive detail: short ones turn up in random tokens of the page.
    assert cells(text, "Detail") == ["d1", "d0"] and "globex-only conflict" not in text
    ids = [*Conflict.objects.values_list("pk", flat=True)]
    bulk = reverse("inventory:conflict-bulk")
    assert "Dismiss 2 conflicts?" in body(client.post(bulk, {"ids": ids}))
    client.post(bulk, {"ids": ids, "confirm": "1"})
    assert Conflict.objects.filter(resolved__isnull=True).get() == theirs
    assert cells(body(client.get(CONFLICTS)), "Detail") == []
    assert len(cells(body(client.get(CONFLICTS, {"state": "resolved"})), "Detail")) == 2

    mine, _ = registration.create_enrolment_token(user=admin_user, tenant=tenants[0], name="m")
    other, _ = registration.create_enrolment_token(user=admin_user, tenant=tenants[1], name="o")
    bulk = reverse("inventory:enrolment-token-bulk")
    client.post(bulk, {"ids": [mine.pk, other.pk], "confirm": "1"})
    mine.refresh_from_db(), other.refresh_from_db()
    assert mine.revoked and not other.revoked


# Live jobs ---------------------------------------------------------------------------------------


def test_job_list_shows_status_badges_and_progress_and_refreshes_while_busy(
    client, admin_user, tenants
):
    _populate_jobs(admin_user, tenants, 2)
    running, queued = Job.objects.order_by("pk")
    Job.objects.filter(pk=running.pk).update(status="running", progress=40)
    client.force_login(admin_user)
    text = body(client.get(JOBS))
    assert 'data-live-table="table-jobs"' in text and "dcportal/job.js" in text
    assert '<span class="badge badge-running">running</span>' in text
    assert '<span class="badge badge-queued">queued</span>' in text
    assert '<progress max="100" value="40"' in text
    # What job.js fetches every two seconds: the same page, with the new progress.
    Job.objects.filter(pk=running.pk).update(progress=90)
    assert '<progress max="100" value="90"' in body(client.get(JOBS))
    assert cells(body(client.get(JOBS, {"status": "running"})), "Job") == [f"#{running.pk}"]
    assert cells(body(client.get(JOBS, {"sort": "id"})), "Job") == [
        f"#{running.pk}",
        f"#{queued.pk}",
    ]

    ask = body(client.post(JOBS, {"ids": [running.pk, queued.pk], "next": JOBS}))
    assert "Cancel 2 jobs?" in ask
    client.post(JOBS, {"ids": [running.pk, queued.pk], "confirm": "1", "next": JOBS})
    assert Job.objects.get(pk=queued.pk).status == "cancelled"
    assert Job.objects.get(pk=running.pk).cancel_requested


def test_audit_table_filters_and_links_requests(client, admin_user, tenants):
    _populate_jobs(admin_user, tenants, 1)
    audit.created(user=admin_user, obj=tenants[1])
    client.force_login(admin_user)
    text = body(client.get(AUDIT, {"object_type": "dcportal.credential"}))
    assert cells(text, "Object") == ["c0"]
    assert cells(text, "Action") == ["create"]
    assert cells(body(client.get(AUDIT, {"q": "Globex"})), "Object") == ["Globex"]


# Forms in the dialog -----------------------------------------------------------------------------


def test_edit_links_open_the_dialog_only_for_editors(
    client, operator, viewer, subnet_with_addresses, tenants
):
    subnet, _ = subnet_with_addresses
    many_interfaces(tenants[0], 1)
    ip = IPAddress.objects.filter(subnet=subnet).first()
    nic = Interface.objects.get()
    client.force_login(operator)
    assert f'<a href="{INTERFACES}">Interfaces</a>' in body(client.get(SUBNETS))  # the nav
    assert f'href="{reverse("inventory:subnet-edit", args=[subnet.pk])}" data-dialog=' in body(
        client.get(SUBNETS)
    )
    detail = body(client.get(reverse("inventory:subnet", args=[subnet.pk])))
    for url in (
        reverse("inventory:subnet-address-edit", args=[ip.pk]),
        reverse("inventory:subnet-range-create", args=[subnet.pk]),
        reverse("inventory:subnet-address-create", args=[subnet.pk]),
    ):
        assert f'href="{url}" data-dialog=' in detail
    # The allocate form keeps ids of its own: the dialog's address form has the same fields.
    assert 'id="allocate_dns_name"' in detail and 'id="id_dns_name"' not in detail
    edit_nic = reverse("inventory:interface-edit", args=[nic.pk])
    assert f'href="{edit_nic}" data-dialog=' in body(client.get(INTERFACES))
    client.force_login(viewer)
    assert "data-dialog=" not in body(client.get(SUBNETS))
    assert "data-dialog=" not in body(client.get(reverse("inventory:subnet", args=[subnet.pk])))
    assert "data-dialog=" not in body(client.get(INTERFACES))
    assert client.get(edit_nic).status_code == 403


def _saved(response):
    assert response.status_code == 204, response.content[:800]
    return json.loads(response["HX-Trigger"])["dcportal:saved"]


def test_dialog_form_flow(client, operator, subnet_with_addresses, tenants):
    subnet, theirs = subnet_with_addresses
    client.force_login(operator)
    url = reverse("inventory:subnet-edit", args=[subnet.pk])
    form = body(client.get(url, **HTMX))
    assert "data-dialog-form" in form and f'hx-post="{url}"' in form

    invalid = client.post(
        url, {"network": "10.0.0.0/24", "tenant": tenants[0].pk, "gateway": "10.9.9.9"}, **HTMX
    )
    # The error sits in the field's own paragraph, right after its input.
    assert re.search(
        r'<p class="has-errors"><label for="id_gateway">Gateway</label> <input[^>]*'
        r'id="id_gateway"[^>]*>\s*<span class="errors field-error" id="id_gateway_error">'
        r"10.9.9.9 is not in 10.0.0.0/24.</span>",
        body(invalid),
    ), body(invalid)
    subnet.refresh_from_db()
    assert str(subnet.network) == "10.0.0.0/24"

    saved = _saved(
        client.post(
            url, {"network": "10.0.0.0/24", "tenant": tenants[0].pk, "name": "edge"}, **HTMX
        )
    )
    assert saved == {
        "location": reverse("inventory:subnet", args=[subnet.pk]),
        "message": "Subnet 10.0.0.0/24 saved.",
    }
    subnet.refresh_from_db()
    assert subnet.name == "edge"

    range_url = reverse("inventory:subnet-range-create", args=[subnet.pk])
    bad = body(client.post(range_url, {"start": "10.0.0.9", "end": "10.0.0.2"}, **HTMX))
    assert 'id="id_kind_error"' in bad
    assert (
        _saved(
            client.post(
                range_url, {"start": "10.0.0.50", "end": "10.0.0.60", "kind": "reserved"}, **HTMX
            )
        )["message"]
        == "Range saved."
    )

    ip = IPAddress.objects.get(address="10.0.0.10")
    address_url = reverse("inventory:subnet-address-edit", args=[ip.pk])
    taken = body(client.post(address_url, {"address": "10.0.0.11", "status": "active"}, **HTMX))
    assert re.search(r'id="id_address_error">10.0.0.11 is already in use', taken)
    assert (
        _saved(
            client.post(
                address_url,
                {"address": "10.0.0.10", "status": "reserved", "dns_name": "renamed"},
                **HTMX,
            )
        )["message"]
        == "Address 10.0.0.10 saved."
    )
    ip.refresh_from_db()
    assert ip.status == "reserved" and ip.dns_name == "renamed"
    foreign = IPAddress.objects.get(subnet=theirs)
    assert (
        client.get(reverse("inventory:subnet-address-edit", args=[foreign.pk])).status_code == 404
    )

    # Without htmx the same form redirects with a message, as forms always did.
    response = client.post(
        address_url, {"address": "10.0.0.10", "status": "active", "dns_name": "plain"}
    )
    assert response.status_code == 302 and response["Location"] == reverse(
        "inventory:subnet", args=[subnet.pk]
    )


def test_interface_dialog_form(client, operator, tenants, admin_user):
    servers = many_interfaces(tenants[0], 2)
    many_interfaces(tenants[1], 1, prefix="gx", host="gx")
    eth0 = Interface.objects.get(server=servers[0])
    eth1 = Interface.objects.get(server=servers[1])
    inventory_services.set_boot_interface(user=admin_user, interface=eth0)
    client.force_login(operator)
    url = reverse("inventory:interface-edit", args=[eth0.pk])
    bad = body(client.post(url, {"name": "eth0", "mac": "zz"}, **HTMX))
    assert re.search(r'id="id_mac_error">[^<]*not a MAC address', bad)
    dup = body(client.post(url, {"name": "eth0", "mac": eth1.mac, "boot": "on"}, **HTMX))
    assert 'id="id_mac_error"' in dup
    saved = _saved(
        client.post(url, {"name": "eth0", "mac": "02-AA-BB-CC-DD-EE", "boot": "on"}, **HTMX)
    )
    assert saved["location"].startswith(reverse("inventory:server", args=[servers[0].pk]))
    eth0.refresh_from_db()
    assert eth0.name == "eth0" and eth0.mac == "02:aa:bb:cc:dd:ee" and eth0.boot
    foreign = Interface.objects.get(server__tenant=tenants[1])
    assert client.get(reverse("inventory:interface-edit", args=[foreign.pk])).status_code == 404
    text = body(client.get(INTERFACES))
    assert "gx" not in "".join(cells(text, "Host"))
    assert cells(body(client.get(INTERFACES, {"boot": "true"})), "Name") == ["eth0"]


def test_subnets_page_by_network_and_by_usage(client, admin_user, tenants):
    subnets = Subnet.objects.bulk_create(
        Subnet(network=f"10.{i}.0.0/24", tenant=tenants[0]) for i in range(55)
    )
    IPAddress.objects.bulk_create(
        IPAddress(subnet=subnet, address=f"10.{i}.0.{n + 1}")
        for i, subnet in enumerate(subnets)
        for n in range(i % 4)
    )
    client.force_login(admin_user)
    # Networks sort as networks: 10.9.0.0/24 before 10.10.0.0/24.
    first = body(client.get(SUBNETS))
    assert cells(first, "Network")[8:11] == ["10.8.0.0/24", "10.9.0.0/24", "10.10.0.0/24"]
    assert cells(body(client.get(SUBNETS + link(first, "next"))), "Network") == [
        f"10.{i}.0.0/24" for i in range(50, 55)
    ]
    seen, url = [], f"{SUBNETS}?sort=-used&size=25"
    while url:
        text = body(client.get(url))
        seen.extend(zip(cells(text, "Network"), cells(text, "Used"), strict=True))
        following = link(text, "next")
        url = SUBNETS + following if following else None
    assert sorted(network for network, _ in seen) == sorted(f"10.{i}.0.0/24" for i in range(55))
    used = [int(text.split(" / ")[0]) for _, text in seen]
    assert used == sorted(used, reverse=True) and used[0] == 3 and used[-1] == 0


def test_a_dialog_on_the_subnet_page_reloads_that_page_whole(
    client, operator, subnet_with_addresses, tenants
):
    subnet, _ = subnet_with_addresses
    detail = reverse("inventory:subnet", args=[subnet.pk])
    client.force_login(operator)
    on_detail = {**HTMX, "HTTP_HX_CURRENT_URL": f"http://testserver{detail}"}
    on_list = {**HTMX, "HTTP_HX_CURRENT_URL": f"http://testserver{SUBNETS}?q=10"}
    added = client.post(
        reverse("inventory:subnet-range-create", args=[subnet.pk]),
        {"start": "10.0.0.50", "end": "10.0.0.60", "kind": "reserved"},
        **on_detail,
    )
    # Its ranges, usage and facts are outside the address table.
    assert _saved(added)["location"] == detail and added["HX-Refresh"] == "true"
    fields = {"network": "10.0.0.0/24", "tenant": tenants[0].pk, "name": "n"}
    edit = reverse("inventory:subnet-edit", args=[subnet.pk])
    from_list = client.post(edit, fields, **on_list)
    _saved(from_list)
    assert "HX-Refresh" not in from_list  # the list reloads its table in place
    assert client.post(edit, fields, **on_detail)["HX-Refresh"] == "true"

"""Portal pages for servers: list with search, attribute filters, sort, pages and bulk actions;
detail with facts, interfaces, addresses, conflicts and history; create and edit forms."""

import html
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from dcportal.models import AuditEvent
from inventory import services
from inventory.models import Conflict, IPAddress, Server, Subnet

pytestmark = pytest.mark.django_db

LIST = reverse("inventory:index")


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
            attributes={"cpu": {"cores": 8, "model": "EPYC"}, "disks": [{"name": "sda"}]},
            interfaces=[{"name": "eth0", "mac": "02:00:00:00:01:01", "boot": True}],
        ),
        "db01": make(
            user=admin_user,
            hostname="db01.acme.example",
            tenant=acme,
            vendor="Supermicro",
            attributes={"cpu": {"cores": 64}, "items": "not a method"},
        ),
        "gx01": make(user=admin_user, hostname="gx01.globex.example", tenant=globex),
    }


def listed(response):
    assert response.status_code == 200, response.content[:500]
    return listed_html(response.content.decode())


def listed_html(text):
    return re.findall(r'<a href="/inventory/servers/\d+/">([^<]+)</a>', text)


def test_list_is_scoped_and_searchable(client, operator, fleet):
    client.force_login(operator)
    assert listed(client.get(LIST)) == ["db01.acme.example", "web01.acme.example"]
    assert listed(client.get(LIST, {"q": "02:00:00:00:01:01"})) == ["web01.acme.example"]
    assert listed(client.get(LIST, {"vendor": "super"})) == ["db01.acme.example"]
    assert listed(client.get(LIST, {"tag": "web"})) == ["web01.acme.example"]


def test_attribute_filter_box_and_its_errors(client, operator, fleet):
    client.force_login(operator)
    response = client.get(LIST, {"attr": "cpu.cores__gte=16"})
    assert listed(response) == ["db01.acme.example"]
    # Several expressions, one per line, all must hold.
    both = client.get(LIST, {"attr": "cpu.cores__gte=4\r\ndisks.0.name=sda"})
    assert listed(both) == ["web01.acme.example"]
    bad = client.get(LIST, {"attr": "cpu.cores__nearly=8"})
    assert listed(bad) == []  # an error shows no rows, never every row
    assert "unknown lookup" in bad.content.decode()
    assert 'role="alert"' in bad.content.decode()


def test_sort_by_column_and_pages(client, admin_user, tenants):
    for i in range(55):
        services.create_server(
            user=admin_user, hostname=f"n{i:02d}.example", tenant=tenants[0], vendor=f"v{i % 3}"
        )
    client.force_login(admin_user)
    response = client.get(LIST)
    first = listed(response)
    assert len(first) == 50
    assert first == sorted(first)
    assert "<strong>55</strong> servers" in response.content.decode()
    # Keyset pages: the Next link carries a cursor; Previous leads back to the same rows.
    next_url = re.search(r'href="(\?[^"]*after=[^"]+)" hx-get', response.content.decode())[1]
    response = client.get(LIST + html.unescape(next_url))
    assert listed(response) == [f"n{i}.example" for i in range(50, 55)]
    previous_url = re.search(r'href="(\?[^"]*before=[^"]+)" hx-get', response.content.decode())[1]
    assert listed(client.get(LIST + html.unescape(previous_url))) == first
    reverse_order = listed(client.get(LIST, {"sort": "-hostname"}))
    assert reverse_order[0] == "n54.example"
    # The header link of the sorted column reverses it, and filters survive sorting.
    page = client.get(LIST, {"sort": "hostname", "vendor": "v1"}).content.decode()
    assert "sort=-hostname" in html.unescape(page) and "vendor=v1" in page
    assert 'aria-sort="ascending"' in page
    by_vendor = listed(client.get(LIST, {"sort": "-vendor"}))
    assert by_vendor[0].startswith("n") and len(by_vendor) == 50
    assert listed(client.get(LIST, {"vendor": "v1"}))[0] == "n01.example"
    # A damaged cursor or an unknown sort is an error on the page, never "everything".
    damaged = client.get(LIST, {"after": "not-a-cursor"}).content.decode()
    assert "The page link is damaged" in damaged and listed_html(damaged) == []
    assert "Cannot sort by" in client.get(LIST, {"sort": "serial_nope"}).content.decode()
    assert "Unknown filter" in client.get(LIST, {"colour": "red"}).content.decode()


def test_list_query_count_does_not_grow_with_rows(client, admin_user, tenants):
    def populate(count):
        start = Server.objects.count()
        for i in range(start, start + count):
            services.create_server(
                user=admin_user,
                hostname=f"q{i:03d}.example",
                tenant=tenants[0],
                tags=["t"],
                interfaces=[{"name": "eth0", "mac": f"02:30:00:00:00:{i:02x}", "boot": True}],
            )

    client.force_login(admin_user)

    def count():
        client.get(LIST)
        with CaptureQueriesContext(connection) as captured:
            assert client.get(LIST).status_code == 200
        return len(captured)

    populate(3)
    few = count()
    populate(27)
    assert count() == few


def test_read_only_sees_no_edit_controls_and_cannot_write(client, viewer, fleet):
    client.force_login(viewer)
    web = fleet["web01"]
    page = client.get(LIST).content.decode()
    assert 'name="ids"' not in page
    assert reverse("inventory:server-create") not in page
    detail = client.get(reverse("inventory:server", args=[web.pk])).content.decode()
    assert reverse("inventory:server-edit", args=[web.pk]) not in detail
    assert "Boot from this" not in detail
    assert client.get(reverse("inventory:server-create")).status_code == 403
    assert client.get(reverse("inventory:server-edit", args=[web.pk])).status_code == 403
    assert client.post(reverse("inventory:server-delete", args=[web.pk])).status_code == 403
    bulk = {"action": "status", "status": "retired", "ids": [web.pk], "confirm": "1"}
    assert client.post(reverse("inventory:server-bulk"), bulk).status_code == 403
    web.refresh_from_db()
    assert web.status == "ready"


def test_other_tenants_server_pages_are_404(client, operator, fleet):
    client.force_login(operator)
    gx = fleet["gx01"]
    for name in ("inventory:server", "inventory:server-edit", "inventory:server-delete"):
        assert client.get(reverse(name, args=[gx.pk])).status_code == 404


def test_detail_shows_facts_interfaces_addresses_conflicts_history(
    client, operator, fleet, tenants
):
    web = fleet["web01"]
    subnet = Subnet.objects.create(network="10.1.0.0/24", tenant=tenants[0])
    IPAddress.objects.create(address="10.1.0.7", subnet=subnet, interface=web.interfaces.get())
    Conflict.objects.create(
        tenant=tenants[0], kind="mac", server=web, detail="MAC 02:00:00:00:01:01 seen elsewhere"
    )
    services.update_server(web, user=operator, status="deployed")
    client.force_login(operator)
    page = client.get(reverse("inventory:server", args=[web.pk])).content.decode()
    for text in (
        "EPYC",  # a nested fact
        "cores",
        "02:00:00:00:01:01",
        "10.1.0.7",
        "seen elsewhere",
        "deployed",  # the audit diff in the history
        'id="history"',
    ):
        assert text in page, text
    # A fact whose key is "items" is shown as data, not mistaken for a method.
    db = fleet["db01"]
    assert "not a method" in client.get(reverse("inventory:server", args=[db.pk])).content.decode()


def test_deeply_nested_facts_render(client, operator, fleet):
    # Facts come from machines: nesting deeper than the page shows becomes JSON text.
    deep = "bottom"
    for _ in range(300):
        deep = {"k": deep}
    web = fleet["web01"]
    services.update_server(web, user=operator, attributes={"deep": deep})
    client.force_login(operator)
    response = client.get(reverse("inventory:server", args=[web.pk]))
    assert response.status_code == 200
    assert "bottom" in response.content.decode()


def test_create_with_field_errors_then_success(client, operator, fleet, tenants):
    client.force_login(operator)
    url = reverse("inventory:server-create")
    bad = client.post(
        url,
        {
            "hostname": "web01.acme.example",  # taken
            "tenant": tenants[0].pk,
            "status": "new",
            "kind": "physical",
            "attributes": "[1, 2]",
        },
    )
    assert bad.status_code == 200
    assert "JSON object" in " ".join(bad.context["form"].errors["attributes"])
    taken = client.post(
        url,
        {
            "hostname": "WEB01.acme.example",
            "tenant": tenants[0].pk,
            "status": "new",
            "kind": "physical",
        },
    )
    assert "already exists" in " ".join(taken.context["form"].errors["hostname"])
    assert "already exists" in taken.content.decode()
    good = client.post(
        url,
        {
            "hostname": "New01.Acme.Example",
            "tenant": tenants[0].pk,
            "status": "new",
            "kind": "physical",
            "tags": "gpu, Rack12",
            "attributes": '{"cpu": {"cores": 4}}',
        },
    )
    assert good.status_code == 302
    server = Server.objects.get(hostname="new01.acme.example")
    assert server.tags == ["gpu", "rack12"]
    assert server.attributes == {"cpu": {"cores": 4}}
    # Another tenant is not even offered.
    other = client.post(
        url, {"hostname": "x.example", "tenant": tenants[1].pk, "status": "new", "kind": "physical"}
    )
    assert "tenant" in other.context["form"].errors


def test_edit_changes_only_what_changed(client, operator, fleet):
    web = fleet["web01"]
    client.force_login(operator)
    url = reverse("inventory:server-edit", args=[web.pk])
    form = client.get(url).context["form"]
    data = {name: form[name].value() for name in form.fields}
    data = {k: ("" if v is None else v) for k, v in data.items()}
    data["status"] = "deployed"
    response = client.post(url, data)
    assert response.status_code == 302, response.context["form"].errors
    web.refresh_from_db()
    assert web.status == "deployed"
    assert web.attributes["cpu"]["cores"] == 8
    event = AuditEvent.objects.filter(object_id=str(web.pk), action="update").latest("time")
    assert set(event.changes) == {"status"}


def test_bulk_actions_confirm_then_apply(client, operator, fleet):
    client.force_login(operator)
    web, db, gx = fleet["web01"], fleet["db01"], fleet["gx01"]
    url = reverse("inventory:server-bulk")
    ask = {"action": "status", "status": "retired", "ids": [web.pk, db.pk, gx.pk], "next": LIST}
    confirm = client.post(url, ask)
    assert confirm.status_code == 200
    page = confirm.content.decode()
    assert "Set the status of 2 servers to retired?" in page
    assert "gx01" not in page  # another tenant's id drops out of the selection
    assert Server.objects.filter(status="retired").count() == 0

    response = client.post(url, {**ask, "confirm": "1"})
    assert response.status_code == 302
    assert set(Server.objects.filter(status="retired").values_list("hostname", flat=True)) == {
        "web01.acme.example",
        "db01.acme.example",
    }
    assert Server.objects.get(pk=gx.pk).status == "new"

    tags = {"action": "tag", "tags": "Rack7 spare", "ids": [web.pk, db.pk], "confirm": "1"}
    client.post(url, tags)
    web.refresh_from_db()
    assert web.tags == ["rack7", "spare", "web"]

    bad_tags = {"action": "tag", "tags": "no/slash", "ids": [web.pk], "confirm": "1"}
    response = client.post(url, bad_tags)
    assert response.status_code == 200
    assert "Nothing was changed" in response.content.decode()

    client.post(url, {"action": "delete", "ids": [web.pk, db.pk], "confirm": "1"})
    assert not Server.objects.filter(pk__in=[web.pk, db.pk]).exists()


def test_single_delete_asks_first(client, operator, fleet):
    client.force_login(operator)
    web = fleet["web01"]
    url = reverse("inventory:server-delete", args=[web.pk])
    assert "Delete web01.acme.example?" in client.get(url).content.decode()
    assert Server.objects.filter(pk=web.pk).exists()
    assert client.post(url).status_code == 302
    assert not Server.objects.filter(pk=web.pk).exists()


def test_boot_interface_button(client, operator, fleet):
    web = fleet["web01"]
    eth1 = services.create_interface(
        user=operator, server=web, name="eth1", mac="02:00:00:00:01:02"
    )
    client.force_login(operator)
    response = client.post(reverse("inventory:interface-boot", args=[eth1.pk]))
    assert response.status_code == 302
    assert dict(web.interfaces.values_list("name", "boot")) == {"eth0": False, "eth1": True}


# The detail page: header badges, tabs, certificates -------------------------------------------


def detail_page(client, server):
    response = client.get(reverse("inventory:server", args=[server.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_detail_tabs_are_an_accessible_tablist(client, operator, fleet):
    client.force_login(operator)
    page = detail_page(client, fleet["web01"])
    tablist = re.search(
        r'<nav class="tabs" role="tablist" aria-label="[^"]+"[^>]*>(.*?)</nav>', page, re.S
    )
    assert tablist
    tabs = re.findall(
        r'<a role="tab" id="tab-(\w+)" href="#(\w+)" aria-controls="panel-(\w+)" '
        r'aria-selected="(true|false)">([^<]+)',
        tablist.group(1),
    )
    assert [label.strip() for *_, label in tabs] == [
        "Overview",
        "Facts",
        "Interfaces &amp; addresses",
        "Deploy",
        "Power",
        "Certificates",
        "History",
    ]
    assert [selected for *_, selected, _ in tabs].count("true") == 1 and tabs[0][3] == "true"
    for name, anchor, panel, _, _ in tabs:
        assert name == anchor == panel
        # Each tab controls a panel labelled by it; the #hash names a section inside it, so a
        # link such as …/#power (after a power action) opens the right tab.
        assert re.search(
            rf'role="tabpanel" id="panel-{name}" aria-labelledby="tab-{name}"[^>]*>\s*'
            rf'<section id="{name}"',
            page,
        ), name
    # Without scripts every panel is shown: none is hidden by the server.
    assert not re.search(r'role="tabpanel"[^>]*hidden', page)
    assert "inventory/power.js" in page


def test_detail_tabs_follow_permissions(client, make_user, tenants, fleet):
    """A user who may view servers only sees no Deploy, Power, Certificates or History tab."""
    from django.contrib.auth.models import Permission

    from dcportal.models import Role

    role = Role.objects.create(name="servers-only", rank=5)
    role.permissions.add(Permission.objects.get(codename="view_server"))
    user = make_user("looker", tenants=[tenants[0]])
    role.users.add(user)
    client.force_login(user)
    page = detail_page(client, fleet["web01"])
    assert re.findall(r'role="tab" id="tab-(\w+)"', page) == ["overview", "facts", "interfaces"]
    assert 'id="certificates"' not in page and 'id="power"' not in page


def test_edit_opens_in_the_dialog_and_read_only_has_none(client, operator, viewer, fleet):
    web = fleet["web01"]
    edit = reverse("inventory:server-edit", args=[web.pk])
    client.force_login(operator)
    assert f'href="{edit}" data-dialog="Edit web01.acme.example">Edit</a>' in detail_page(
        client, web
    )
    client.force_login(viewer)
    page = detail_page(client, web)
    assert edit not in page and "data-dialog=" not in page
    assert "Delete…" not in page
    # The read-only user still sees every tab, with nothing to change in them.
    assert 'id="tab-certificates"' in page and 'id="tab-power"' in page


def test_header_shows_power_and_deploy_state_and_polls_while_building(client, operator, fleet):
    from deploy.models import ServerDeploy
    from inventory.models import Bmc

    web = fleet["web01"]
    Bmc.objects.create(server=web, driver="manual", power_state="on")
    client.force_login(operator)
    page = detail_page(client, web)
    state = re.search(r'<p id="server-state"[^>]*>(.*?)</p>', page, re.S)
    assert 'data-header="power">power on<' in state.group(1)
    assert 'data-header="deploy"' not in state.group(1)
    assert "hx-trigger" not in state.group(0)  # nothing runs: no polling

    ServerDeploy.objects.create(server=web, state="building", stage="installing", progress=40)
    page = detail_page(client, web)
    state = re.search(r'<p id="server-state"[^>]*>(.*?)</p>', page, re.S)
    assert 'data-header="deploy">building: installing<' in state.group(1)
    assert 'value="40"' in state.group(1) and 'data-header="progress">40%<' in state.group(1)
    # The block asks for the page again and keeps only its own fresh copy.
    opening = state.group(0).split(">", 1)[0]
    for attribute in (
        f'hx-get="{reverse("inventory:server", args=[web.pk])}"',
        'hx-trigger="every 3s"',
        'hx-select="#server-state"',
        'hx-swap="outerHTML"',
    ):
        assert attribute in opening, attribute

    ServerDeploy.objects.filter(server=web).update(state="deployed", progress=100)
    page = detail_page(client, web)
    state = re.search(r'<p id="server-state"[^>]*>(.*?)</p>', page, re.S)
    assert 'data-header="deploy">deployed<' in state.group(1)
    assert "hx-trigger" not in state.group(0)


def test_header_polls_while_a_power_job_is_queued(client, operator, fleet):
    from inventory.models import Bmc

    web = fleet["web01"]
    Bmc.objects.create(server=web, driver="manual")
    client.force_login(operator)
    response = client.post(reverse("inventory:server-power", args=[web.pk]), {"action": "on"})
    assert response.status_code == 302
    page = detail_page(client, web)
    state = re.search(r'<p id="server-state"[^>]*>(.*?)</p>', page, re.S)
    assert 'hx-trigger="every 3s"' in state.group(0)
    assert re.search(r'data-header="power-job">power job #\d+ queued<', state.group(1))


def test_certificates_tab_lists_the_servers_certificates_only(
    client, admin_user, operator, fleet, tenants
):
    from ca import services as ca_services

    web, db = fleet["web01"], fleet["db01"]
    root = ca_services.create_authority(user=admin_user, name="Root", slug="root")

    def issue(names, **where):
        request = ca_services.generate_request(
            user=admin_user,
            authority=root,
            names=names,
            sign=True,
            approve_names=True,
            **where,
        )
        return request.certificates.get()

    linked = issue(["web01.acme.example"], server=web)
    by_name = issue(["web01.acme.example", "www.acme.example"], tenant=tenants[0])
    other_server = issue(["db01.acme.example"], server=db)
    # Another server's certificate stays with it even when it names web01 as well.
    also_names_web = issue(["db01.acme.example", "web01.acme.example"], server=db)
    other_tenant = issue(["web01.acme.example"], tenant=tenants[1])

    for user in (operator, admin_user):
        client.force_login(user)
        page = detail_page(client, web)
        panel = re.search(r'<section id="certificates">(.*?)</section>', page, re.S).group(1)
        shown = set(re.findall(r'href="/ca/certificates/(\d+)/"', panel))
        assert shown == {str(linked.pk), str(by_name.pk)}, user
        assert re.search(r'id="tab-certificates"[^>]*>Certificates <small>2</small>', page)
        for certificate in (other_server, also_names_web, other_tenant):
            assert f"/ca/certificates/{certificate.pk}/" not in page
        # Read-only: no revoke or renew control in the tab.
        assert "/revoke/" not in panel and "/renew/" not in panel
    client.force_login(operator)
    db_page = detail_page(client, db)
    assert f"/ca/certificates/{other_server.pk}/" in db_page
    assert f"/ca/certificates/{linked.pk}/" not in db_page


def test_power_filter_counts_bmcs_and_vms_alike(client, admin_user, tenants):
    from inventory.models import Bmc
    from virt.models import Pool, Vm

    def server(name):
        return Server.objects.create(hostname=name, tenant=tenants[0])

    Bmc.objects.create(server=server("bmc-on"), address="10.0.0.1", power_state="on")
    Bmc.objects.create(server=server("bmc-off"), address="10.0.0.2", power_state="off")
    Bmc.objects.create(server=server("bmc-unknown"), address="10.0.0.3")
    server("no-bmc")
    pool = Pool.objects.create(name="p", url="https://xen.example/", tenant=tenants[0])
    Vm.objects.create(server=server("vm-running"), pool=pool, uuid="a", power_state="running")
    Vm.objects.create(server=server("vm-halted"), pool=pool, uuid="b", power_state="halted")
    client.force_login(admin_user)
    assert listed(client.get(LIST, {"power": "on"})) == ["bmc-on", "vm-running"]
    assert listed(client.get(LIST, {"power": "off"})) == ["bmc-off", "vm-halted"]
    assert listed(client.get(LIST, {"power": "unknown"})) == ["bmc-unknown", "no-bmc"]
    assert listed(client.get(LIST, {"bmc_power": "on"})) == ["bmc-on"]
    page = client.get(LIST, {"power": "sideways"}).content.decode()
    assert "power:" in page and listed_html(page) == []

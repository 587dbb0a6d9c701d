"""The server list as an operator uses it: filters, search, sort, the edit dialog and a bulk
nodeset, in a real browser against the live portal."""

import re

import pytest

from deploy.models import ServerDeploy
from inventory import services
from inventory.models import Server
from tests.integration.deploy.build_helpers import make_profile

from .conftest import need

expect = need("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LIST = "/inventory/servers/"
HOSTNAME = re.compile(r"\.example$")


@pytest.fixture
def fleet(admin_user, tenants):
    acme, globex = tenants

    def make(hostname, cores, vendor, mac, tenant=acme):
        return services.create_server(
            user=admin_user,
            hostname=hostname,
            tenant=tenant,
            vendor=vendor,
            attributes={"cpu": {"cores": cores}},
            interfaces=[{"name": "eth0", "mac": mac, "boot": True}],
        )

    return {
        "db01": make("db01.acme.example", 16, "Supermicro", "02:00:00:00:00:01"),
        "web01": make("web01.acme.example", 8, "Dell", "02:00:00:00:00:02"),
        "web02": make("web02.acme.example", 4, "HPE", "02:00:00:00:00:03"),
        # Another tenant's server never shows to the operator of acme.
        "gx01": make("gx01.globex.example", 8, "Dell", "02:00:00:00:00:04", tenant=globex),
    }


def servers_region(page):
    return page.get_by_role("region", name="Servers")


def listed(page):
    """The host names of the table's rows, in order (each row links its host name)."""
    return servers_region(page).get_by_role("row").get_by_role("link", name=HOSTNAME)


def row_of(page, hostname):
    return (
        servers_region(page)
        .get_by_role("row")
        .filter(has=page.get_by_role("link", name=hostname, exact=True))
    )


def field(dialog, label):
    return dialog.get_by_label(label, exact=True)


def test_filter_search_and_sort(open_as, operator, fleet):
    page = open_as(operator)
    page.goto(LIST)
    expect(listed(page)).to_have_text(
        ["db01.acme.example", "web01.acme.example", "web02.acme.example"]
    )

    # A JSON attribute filter, typed as the operator would.
    page.get_by_text("Filters", exact=True).click()
    page.get_by_label("Attributes").fill("cpu.cores__gte=8")
    page.get_by_role("button", name="Apply").click()
    expect(listed(page)).to_have_text(["db01.acme.example", "web01.acme.example"])
    expect(page).to_have_url(re.compile(r"attr=cpu\.cores__gte%3D8"))

    # "/" jumps to the search box from anywhere on the page; the list follows the typing.
    page.get_by_role("heading", name="Servers", level=1).click()
    page.keyboard.press("/")
    search = page.get_by_role("searchbox", name="Search Servers")
    expect(search).to_be_focused()
    page.keyboard.type("web01")
    expect(listed(page)).to_have_text(["web01.acme.example"])
    expect(page).to_have_url(re.compile(r"q=web01"))

    page.get_by_role("link", name="Clear").click()
    expect(listed(page)).to_have_count(3)

    # Sorting by a column header, then the other way round.
    page.get_by_role("columnheader", name="Vendor").get_by_role("link").click()
    expect(page.get_by_role("columnheader", name="Vendor")).to_have_attribute(
        "aria-sort", "ascending"
    )
    expect(listed(page)).to_have_text(
        ["web01.acme.example", "web02.acme.example", "db01.acme.example"]
    )
    page.get_by_role("columnheader", name="Vendor").get_by_role("link").click()
    expect(page.get_by_role("columnheader", name="Vendor")).to_have_attribute(
        "aria-sort", "descending"
    )
    expect(listed(page)).to_have_text(
        ["db01.acme.example", "web02.acme.example", "web01.acme.example"]
    )


def test_edit_in_the_dialog(open_as, operator, fleet):
    page = open_as(operator)
    asked, answers = [], []

    def on_dialog(dialog):
        asked.append(dialog.message)
        if answers.pop(0):
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(LIST)

    row_of(page, "web02.acme.example").get_by_role("link", name="Edit").click()
    dialog = page.get_by_role("dialog", name="Edit web02.acme.example")
    expect(dialog).to_be_visible()
    # A label names the first element of its id in the document: an id the dialog shares with
    # the page (the filter form's fields) ties the dialog's labels to fields outside it.
    shared = page.evaluate(
        """() => [...document.querySelectorAll("dialog [id]")].map((e) => e.id)
            .filter((id) => document.querySelectorAll("#" + CSS.escape(id)).length > 1)"""
    )
    assert shared == [], f"ids of the dialog also used elsewhere on the page: {shared}"
    field(dialog, "Vendor").fill("Lenovo")
    # A position without a rack is refused: the error sits at the field, the dialog stays.
    field(dialog, "Position").fill("4")
    dialog.get_by_role("button", name="Save").click()
    position = field(dialog, "Position")
    expect(dialog.get_by_text("A position needs a rack.")).to_be_visible()
    expect(position).to_have_attribute("aria-invalid", "true")
    expect(position).to_have_accessible_description(re.compile("A position needs a rack"))
    expect(position).to_be_focused()
    expect(field(dialog, "Vendor")).to_have_value("Lenovo")
    assert Server.objects.get(pk=fleet["web02"].pk).vendor == "HPE"

    position.fill("")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(row_of(page, "web02.acme.example")).to_contain_text("Lenovo")
    expect(page.get_by_role("status").filter(has_text="saved")).to_have_text(
        "Server web02.acme.example saved."
    )
    saved = Server.objects.get(pk=fleet["web02"].pk)
    assert (saved.vendor, saved.position) == ("Lenovo", None)
    assert asked == []

    # Esc on an untouched dialog just closes it.
    row_of(page, "web01.acme.example").get_by_role("link", name="Edit").click()
    dialog = page.get_by_role("dialog", name="Edit web01.acme.example")
    expect(field(dialog, "Hostname")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert asked == []

    # With something typed, Esc asks first: "no" keeps the dialog and the typing, "yes" drops it.
    row_of(page, "web01.acme.example").get_by_role("link", name="Edit").click()
    vendor = field(dialog, "Vendor")
    vendor.fill("Fujitsu")
    answers.append(False)
    page.keyboard.press("Escape")
    expect(dialog).to_be_visible()
    expect(vendor).to_have_value("Fujitsu")
    assert asked == ["Discard your unsaved changes?"]
    vendor.press_sequentially(" Primergy")
    answers.append(True)
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert asked == ["Discard your unsaved changes?"] * 2
    assert Server.objects.get(pk=fleet["web01"].pk).vendor == "Dell"
    expect(row_of(page, "web01.acme.example")).to_contain_text("Dell")


def test_bulk_nodeset_from_the_list(open_as, operator, tenants):
    acme = tenants[0]
    make_profile("rocky9", tenant=acme)
    nodes = [
        services.create_server(
            user=operator,
            hostname=f"node0{n}.acme.example",
            tenant=acme,
            interfaces=[{"name": "eth0", "mac": f"02:00:00:00:01:0{n}", "boot": True}],
        )
        for n in (1, 2, 3)
    ]
    page = open_as(operator)
    page.goto(LIST)
    deploy = page.get_by_role("group", name="Bulk actions").get_by_role(
        "button", name="Deploy (nodeset / rinstall)…"
    )
    expect(deploy).to_be_disabled()
    page.get_by_role("checkbox", name="Select node01.acme.example").check()
    page.get_by_role("checkbox", name="Select node03.acme.example").check()
    expect(page.get_by_text("2 selected")).to_be_visible()
    expect(deploy).to_be_enabled()
    deploy.click()

    expect(page.get_by_role("heading", name="Deploy 2 servers")).to_be_visible()
    main = page.get_by_role("main")
    expect(main.get_by_role("link", name=HOSTNAME)).to_have_text(
        ["node01.acme.example", "node03.acme.example"]
    )
    page.get_by_label("Action").select_option(label="Install at next boot (nodeset install)")
    page.get_by_label("Profile").select_option(label="rocky9")
    page.get_by_role("button", name="Apply to 2 servers").click()

    expect(page.get_by_role("status").filter(has_text="next boot")).to_have_text(
        "2 server(s): next boot install."
    )
    for hostname in ("node01.acme.example", "node03.acme.example"):
        row = page.get_by_role("row").filter(
            has=page.get_by_role("link", name=hostname, exact=True)
        )
        expect(row).to_contain_text("building")
        expect(row).to_contain_text("rocky9")
    expect(page.get_by_role("link", name="node02.acme.example", exact=True)).to_have_count(0)
    states = dict(ServerDeploy.objects.values_list("server__hostname", "state"))
    assert states == {
        "node01.acme.example": ServerDeploy.State.BUILDING,
        "node03.acme.example": ServerDeploy.State.BUILDING,
    }
    assert not ServerDeploy.objects.filter(server=nodes[1]).exists()

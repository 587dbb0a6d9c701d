"""A read-only user is offered nothing they may not do: the same pages an operator sees with
their edit, bulk and power controls show a read-only user none of them."""

import re

import pytest

from inventory import services
from inventory.models import Bmc
from virt.models import Host, Pool, Vm

from .conftest import need

expect = need("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Controls that change something. Everything else a read-only user may press changes nothing
# but their own view (search, filters, the column chooser, logging out) or only reads: "Power
# status" asks the BMC and switches nothing (inventory.power_services: the "view" permission).
EDITING = re.compile(
    r"^(New|Edit|Delete|Destroy|Add|Remove|Sync now|Power (on|off|cycle)|Soft off|Reset|"
    r"PXE boot|Start|Shut down|Force|Reboot|Install|Migrate|Set status)\b"
)
HARMLESS_BUTTONS = {"Log out", "Apply", "Save columns", "Defaults", "Show", "Power status"}


@pytest.fixture
def estate(admin_user, tenants):
    acme = tenants[0]
    server = services.create_server(
        user=admin_user,
        hostname="web01.acme.example",
        tenant=acme,
        interfaces=[{"name": "eth0", "mac": "02:00:00:00:02:01", "boot": True}],
    )
    Bmc.objects.create(server=server, address="10.9.0.1", power_state=Bmc.PowerState.ON)
    pool = Pool.objects.create(name="xen-par1", url="https://xen-par1.example", tenant=acme)
    host = Host.objects.create(pool=pool, uuid="host-1", name="xen-par1-h1")
    Host.objects.create(pool=pool, uuid="host-2", name="xen-par1-h2")
    guest = services.create_server(
        user=admin_user, hostname="vm01.acme.example", tenant=acme, kind="virtual"
    )
    vm = Vm.objects.create(
        server=guest,
        pool=pool,
        uuid="vm-1",
        host=host,
        state=Vm.State.PRESENT,
        power_state=Vm.PowerState.RUNNING,
    )
    return {
        "servers": "/inventory/servers/",
        "server": f"/inventory/servers/{server.pk}/",
        "vms": "/virt/vms/",
        "vm": f"/virt/vms/{vm.pk}/",
        "pools": "/virt/",
        "pool": f"/virt/pools/{pool.pk}/",
    }


def names(locator):
    return [text.strip() for text in locator.all_inner_texts()]


def editing_controls(page):
    """The controls of the page that change something, in every one of its tabs."""
    main = page.get_by_role("main")
    found = []
    tabs = main.get_by_role("tab")
    for index in range(max(1, tabs.count())):
        if tabs.count():
            tabs.nth(index).click()
        found += [name for name in names(main.get_by_role("link")) if EDITING.match(name)]
        found += [
            name for name in names(main.get_by_role("button")) if name not in HARMLESS_BUTTONS
        ]
    return found


def show_section(page, name):
    """Server and pool pages put sections in tabs: open the one named so, if there are tabs."""
    tab = page.get_by_role("main").get_by_role("tab", name=re.compile(rf"^{name}\b"))
    if tab.count():
        tab.click()


def test_operator_sees_the_controls(open_as, operator, estate):
    """The other half of the proof: the pages below do offer these controls to those who may."""
    page = open_as(operator)
    page.goto(estate["servers"])
    main = page.get_by_role("main")
    expect(main.get_by_role("link", name="New server")).to_be_visible()
    expect(main.get_by_role("link", name="Edit", exact=True).first).to_be_visible()
    expect(main.get_by_role("group", name="Bulk actions")).to_be_visible()
    expect(main.get_by_role("checkbox", name="Select web01.acme.example")).to_be_visible()

    page.goto(estate["server"])
    for name in ("Edit", "Delete…"):
        expect(main.get_by_role("link", name=name, exact=True)).to_be_visible()
    show_section(page, "Power")
    for name in ("Power on", "Power off", "Power cycle"):
        expect(main.get_by_role("button", name=name, exact=True)).to_be_visible()

    page.goto(estate["vm"])
    for name in ("Shut down", "Reboot", "Migrate"):
        expect(main.get_by_role("button", name=name, exact=True)).to_be_visible()
    expect(main.get_by_role("link", name="Destroy…")).to_be_visible()

    page.goto(estate["pool"])
    expect(main.get_by_role("button", name="Sync now")).to_be_visible()
    for name in ("Edit", "New VM"):
        expect(main.get_by_role("link", name=name, exact=True)).to_be_visible()

    page.goto(estate["vms"])
    expect(main.get_by_role("link", name="vm01.acme.example").first).to_be_visible()
    assert editing_controls(page), "the VM list offers an operator no control at all"


def test_read_only_user_sees_no_edit_controls(open_as, viewer, estate):
    page = open_as(viewer)
    for name, url in estate.items():
        page.goto(url)
        main = page.get_by_role("main")
        # The page is really there, with the objects the viewer may see.
        expect(main.get_by_role("heading", level=1)).to_be_visible()
        if name in ("servers", "vms"):
            expect(
                main.get_by_role("link", name=re.compile(r"\.acme\.example$")).first
            ).to_be_visible()
        assert editing_controls(page) == [], f"{name} page ({url}) offers a read-only user these"
        expect(main.get_by_role("group", name="Bulk actions")).to_have_count(0)
        expect(main.get_by_role("checkbox", name=re.compile(r"^Select"))).to_have_count(0)

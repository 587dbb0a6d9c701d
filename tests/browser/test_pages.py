"""The main pages, each with something on it: axe-core finds no serious or critical
accessibility violation, and a full-page screenshot of each lands in var/screenshots/ (not
committed) for a person to look over."""

import pytest
from django.urls import reverse

from ca import services as ca_services
from dcportal import jobs
from deploy import services as deploy_services
from inventory import services
from inventory.models import Bmc, IPRange, Subnet
from tests.integration.deploy.build_helpers import make_profile
from tests.workers import run_burst_worker
from virt.models import Host, Pool, Vm

from .conftest import SCREENSHOTS, need

expect = need("playwright.sync_api").expect
Axe = need("axe_playwright_python.sync_playwright").Axe

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BLOCKING = {"serious", "critical"}


@pytest.fixture
def estate(admin_user, tenants):
    """A little of everything, so that no page is judged on its empty state alone."""
    acme, globex = tenants
    subnet = Subnet.objects.create(
        network="10.20.0.0/24", name="provisioning", tenant=acme, gateway="10.20.0.1"
    )
    IPRange.objects.create(subnet=subnet, start="10.20.0.200", end="10.20.0.229", kind="dhcp")
    servers = [
        services.create_server(
            user=admin_user,
            hostname=f"web{n:02d}.acme.example",
            tenant=acme if n < 4 else globex,
            status="ready" if n % 2 else "new",
            vendor="Dell Inc.",
            model="PowerEdge R650",
            tags=["web", "prod"],
            attributes={"cpu": {"cores": 8 * n, "model": "EPYC"}, "disks": [{"name": "sda"}]},
            interfaces=[{"name": "eno1", "mac": f"02:00:00:00:03:{n:02x}", "boot": True}],
        )
        for n in range(1, 6)
    ]
    Bmc.objects.create(server=servers[0], address="10.9.0.1", power_state=Bmc.PowerState.ON)
    profile = make_profile("rocky9", tenant=acme)
    deploy_services.nodeset(
        user=admin_user, servers=servers[1:3], next_boot="install", profile=profile
    )
    pool = Pool.objects.create(name="xen-par1", url="https://xen-par1.example", tenant=acme)
    host = Host.objects.create(pool=pool, uuid="host-1", name="xen-par1-h1", cpu_count=32)
    guest = services.create_server(
        user=admin_user, hostname="vm01.acme.example", tenant=acme, kind="virtual"
    )
    Vm.objects.create(
        server=guest,
        pool=pool,
        uuid="vm-1",
        host=host,
        state=Vm.State.PRESENT,
        power_state=Vm.PowerState.RUNNING,
        vcpus=2,
        memory_bytes=2 << 30,
    )
    root = ca_services.create_authority(user=admin_user, name="Fleet root", slug="root")
    hosts = ca_services.create_authority(user=admin_user, name="Hosts", slug="hosts", parent=root)
    ca_services.generate_request(
        user=admin_user,
        authority=hosts,
        server=servers[0],
        names=["web01.acme.example"],
        sign=True,
    )
    jobs.enqueue("dcportal.ping", user=admin_user, params={"seconds": 0, "steps": 2})
    run_burst_worker("default")
    return {"server": servers[0]}


def main_pages(estate):
    server = estate["server"]
    return [
        ("dashboard", reverse("dashboard")),
        ("servers", reverse("inventory:servers")),
        ("server", reverse("inventory:server", args=[server.pk])),
        ("subnets", reverse("inventory:subnets")),
        ("deploy-profiles", reverse("deploy:profiles")),
        ("deploy-templates", reverse("deploy:templates")),
        ("vms", reverse("virt:vms")),
        ("pools", reverse("virt:index")),
        ("certificates", reverse("ca:certificates")),
        ("jobs", reverse("jobs")),
        ("audit", reverse("audit")),
    ]


def violations(page):
    """axe-core's serious and critical findings on the page as it is now, one line per element."""
    found = Axe().run(page).response["violations"]
    return [
        f"{violation['id']} ({violation['impact']}): {violation['help']} at "
        f"{' '.join(map(str, node['target']))}: {node['failureSummary']} — {node['html'][:300]}"
        for violation in found
        if violation["impact"] in BLOCKING
        for node in violation["nodes"]
    ]


def capture(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    assert path.stat().st_size > 0


def test_main_pages(open_as, admin_user, estate):
    """Every page is captured and checked before the test judges, so one bad page never hides
    the state of the others."""
    problems = {}
    page = open_as(admin_user)
    for name, url in main_pages(estate):
        response = page.goto(url)
        assert response.status == 200, f"{name}: {url} answered {response.status}"
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        capture(page, name)
        problems[name] = violations(page)

    # The edit dialog over the server list.
    page.goto(reverse("inventory:servers"))
    page.get_by_role("link", name="Edit", exact=True).first.click()
    expect(page.get_by_role("dialog")).to_be_visible()
    capture(page, "server-edit-dialog")
    problems["server-edit-dialog"] = violations(page)

    login = open_as(None)
    login.goto(reverse("login"))
    expect(login.get_by_role("heading", level=1)).to_be_visible()
    capture(login, "login")
    problems["login"] = violations(login)

    report = "\n".join(f"{name}: {line}" for name, lines in problems.items() for line in lines)
    assert not report, f"serious or critical accessibility violations:\n{report}"

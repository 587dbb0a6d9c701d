"""The dashboard: fleet, deployments, power, certificates and pools, counted per tenant, drawn
as accessible SVG, each figure linking to a list of exactly the rows it counts."""

import html
import re
import uuid as uuidlib
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from ca import services as ca_services
from deploy.models import ServerDeploy
from inventory.models import Bmc, Server
from tests.integration.virt.api_helpers import GIB, make_pool, make_vms
from virt.models import Host, StorageRepository, Vm

pytestmark = pytest.mark.django_db

DASHBOARD = reverse("dashboard")
# The detail link of a row in each list a figure leads to.
ROW_LINKS = {
    "/inventory/": r'href="/inventory/servers/(\d+)/"',
    "/deploy/": r'href="/deploy/servers/(\d+)/"',
    "/virt/": r'href="/virt/vms/(\d+)/"',
    "/ca/": r'href="/ca/certificates/(\d+)/"',
}


def make_servers(tenant, prefix, count, **fields):
    return [
        Server.objects.create(hostname=f"{prefix}{n:02d}.example", tenant=tenant, **fields)
        for n in range(count)
    ]


def issue(admin, authority, server, days):
    request = ca_services.generate_request(
        user=admin,
        authority=authority,
        server=server,
        names=[server.hostname],
        validity_days=days,
        sign=True,
        approve_names=True,
    )
    return request.certificates.get()


@pytest.fixture
def authority(admin_user):
    root = ca_services.create_authority(user=admin_user, name="Root", slug="root")
    return ca_services.create_authority(
        user=admin_user, name="Hosts", slug="hosts", parent=root, key_type="ec-p256"
    )


@pytest.fixture
def world(admin_user, tenants, authority):
    """acme: 2 ready + 1 deployed physical servers, BMC on/off/unknown, 1 building and
    1 failed build, 2 running VMs, 1 expiring and 1 valid certificate, 1 revoked.
    globex: 3 deployed servers with BMCs on, 1 failed build, 3 halted VMs, 2 expiring
    certificates. One shared pool holds both tenants' VMs."""
    acme, globex = tenants
    ready = make_servers(acme, "ready", 2, status="ready")
    (deployed,) = make_servers(acme, "live", 1, status="deployed")
    for server, state in zip([*ready, deployed], ["on", "off", "unknown"], strict=True):
        Bmc.objects.create(server=server, driver="manual", power_state=state)
    gx = make_servers(globex, "gx", 3, status="deployed")
    for server in gx:
        Bmc.objects.create(server=server, driver="manual", power_state="on")
    ServerDeploy.objects.create(server=ready[0], state="building")
    ServerDeploy.objects.create(server=ready[1], state="failed", finished=timezone.now())
    ServerDeploy.objects.create(
        server=gx[0], state="failed", finished=timezone.now() - timedelta(days=3)
    )
    pool = make_pool("shared-pool")
    Host.objects.filter(pool=pool).update(memory_total_bytes=64 * GIB, memory_free_bytes=48 * GIB)
    StorageRepository.objects.filter(pool=pool).update(used_bytes=25 * GIB)
    own_pool = make_pool("globex-pool", globex)
    make_vms(pool, acme, 2, prefix="acmevm")
    for vm in make_vms(pool, globex, 2, prefix="gxvm") + make_vms(own_pool, globex, 1):
        Vm.objects.filter(pk=vm.pk).update(power_state="halted")
    issue(admin_user, authority, ready[0], 10)
    issue(admin_user, authority, deployed, 365)
    revoked = issue(admin_user, authority, ready[1], 365)
    ca_services.revoke_certificate(revoked, user=admin_user)
    for server in gx[:2]:
        issue(admin_user, authority, server, 5)
    return {"pool": pool, "own_pool": own_pool}


def figures(page, key):
    """{label: (count, url)} of one chart's table of figures."""
    table = re.search(rf'<table class="chart-data" data-chart="{key}">(.*?)</table>', page, re.S)
    assert table, key
    rows = re.findall(
        r'<th scope="row">([^<]+)</th><td>(?:<a href="([^"]+)">)?(\d+)', table.group(1)
    )
    return {html.unescape(label): (int(count), html.unescape(url)) for label, url, count in rows}


def counts(page, key):
    return {label: count for label, (count, _) in figures(page, key).items()}


def dashboard(client, user):
    client.force_login(user)
    response = client.get(DASHBOARD)
    assert response.status_code == 200
    return response.content.decode()


def test_an_operator_counts_only_its_tenant(client, operator, world):
    page = dashboard(client, operator)
    status = counts(page, "chart-status")
    assert status == {
        "new": 2,  # the acme VMs' servers
        "ready": 2,
        "deploying": 0,
        "deployed": 1,
        "failed": 0,
        "retired": 0,
    }
    assert counts(page, "chart-kind") == {"physical": 3, "virtual": 2}
    assert counts(page, "chart-builds") == {"building": 1, "failed": 1}
    assert "1 build failed in the last 24 h" in page
    assert counts(page, "chart-bmc-power") == {"on": 1, "off": 1, "unknown": 1}
    vm_power = counts(page, "chart-vm-power")
    assert vm_power["running"] == 2 and vm_power["halted"] == 0
    certificates = counts(page, "chart-certificates")
    assert certificates == {"expiring within 30 days": 1, "valid": 2, "revoked": 1}
    # The shared pool counts acme's 2 VMs, not globex's; globex's own pool is not listed.
    pools = re.findall(r'<th scope="row"><a href="/virt/pools/(\d+)/">([^<]+)</a>', page)
    assert pools == [(str(world["pool"].pk), "shared-pool")]
    assert f'<a href="/virt/vms/?pool={world["pool"].pk}">2</a>' in page
    assert "globex-pool" not in page and "gx00" not in page


def test_an_admin_counts_every_tenant(client, admin_user, world):
    page = dashboard(client, admin_user)
    assert counts(page, "chart-status")["deployed"] == 4
    assert counts(page, "chart-kind") == {"physical": 6, "virtual": 5}
    assert counts(page, "chart-builds") == {"building": 1, "failed": 2}
    assert "1 build failed in the last 24 h" in page
    assert counts(page, "chart-bmc-power") == {"on": 4, "off": 1, "unknown": 1}
    vm_power = counts(page, "chart-vm-power")
    assert vm_power["running"] == 2 and vm_power["halted"] == 3
    assert counts(page, "chart-certificates")["expiring within 30 days"] == 3
    assert f'<a href="/virt/vms/?pool={world["pool"].pk}">4</a>' in page
    assert f'<a href="/virt/vms/?pool={world["own_pool"].pk}">1</a>' in page
    # Memory used = total - free over the synced hosts; storage as the repositories report.
    assert "32.0 GiB of 128.0 GiB (25 %)" in page
    assert "25.0 GiB of 100.0 GiB (25 %)" in page


@pytest.mark.parametrize("who", ["operator", "admin_user"])
def test_every_figure_links_to_exactly_its_rows(client, request, world, who):
    user = request.getfixturevalue(who)
    page = dashboard(client, user)
    keys = re.findall(r'data-chart="([^"]+)"', page)
    assert len(keys) == 6
    followed = 0
    for key in keys:
        for label, (count, url) in figures(page, key).items():
            assert url, (key, label)
            listed = client.get(url)
            assert listed.status_code == 200, url
            pattern = next(p for prefix, p in ROW_LINKS.items() if url.startswith(prefix))
            rows = set(re.findall(pattern, listed.content.decode()))
            assert len(rows) == count, (key, label, url)
            followed += 1
    assert followed >= 20
    # A pool's VM figure leads to the VM list of that pool, showing the VMs counted.
    for pool_id, count in re.findall(r'<a href="/virt/vms/\?pool=(\d+)">(\d+)</a>', page):
        listed = client.get(reverse("virt:vms"), {"pool": pool_id}).content.decode()
        assert len(set(re.findall(ROW_LINKS["/virt/"], listed))) == int(count)


def test_charts_are_accessible_svg(client, operator, world):
    page = dashboard(client, operator)
    for key, title in (
        ("chart-status", "Servers by status"),
        ("chart-kind", "Servers by kind"),
        ("chart-builds", "Deployments"),
        ("chart-bmc-power", "Power of servers with a BMC"),
        ("chart-vm-power", "Power of VMs"),
        ("chart-certificates", "Certificates"),
    ):
        svg = re.search(rf'<svg role="img" aria-labelledby="{key}-title {key}-desc".*?</svg>', page)
        assert svg, key
        assert f'<title id="{key}-title">{title}</title>' in svg.group(0)
        assert f'<desc id="{key}-desc">{title}.' in svg.group(0)
        # Bars lead to their lists on a click; nothing inside the image is focusable (assistive
        # technology cannot reach into role=img): the keyboard has the same links in the table.
        assert 'data-href="' in svg.group(0)
        assert "<a " not in svg.group(0) and "tabindex" not in svg.group(0)
    assert re.search(r'<svg role="img" aria-labelledby="chart-pool-\d+-memory-title', page)
    assert "<script" not in page.split("<main", 1)[1].split("</main>", 1)[0]


def test_sections_follow_permissions(client, make_user, tenants, world):
    """A user who holds no view permission sees no chart and no pool."""
    nobody = make_user("nobody", tenants=[tenants[0]])
    page = dashboard(client, nobody)
    assert "data-chart=" not in page and "Hypervisor pools" not in page


def test_query_count_does_not_grow_with_the_fleet(client, admin_user, tenants, authority, world):
    client.force_login(admin_user)

    def count():
        client.get(DASHBOARD)
        with CaptureQueriesContext(connection) as captured:
            assert client.get(DASHBOARD).status_code == 200
        return len(captured)

    few = count()
    for tenant in tenants:
        servers = make_servers(tenant, f"more-{tenant.slug}-", 15, status="deployed")
        for server in servers:
            Bmc.objects.create(server=server, driver="manual", power_state="on")
            ServerDeploy.objects.create(server=server, state="building")
        issue(admin_user, authority, servers[0], 3)
        pool = make_pool(f"pool-{tenant.slug}-{uuidlib.uuid4().hex[:6]}", tenant)
        make_vms(pool, tenant, 4, prefix=f"q{tenant.slug}")
    assert count() == few

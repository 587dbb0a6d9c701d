"""The virtualization pages, driven like a user drives them: a logged-in client fills the forms,
a real RQ worker runs the jobs, and the project's XAPI server (or libvirt's test:///default
hypervisor) is the peer whose state the tests read back.
"""

import csv
import html
import io
import json
import os
import re
import xml.etree.ElementTree as ET

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from dcportal.models import Job
from inventory.models import Interface, Server
from tests.fakes.xapi_server import XapiServer
from tests.integration.deploy.build_helpers import make_profile
from tests.workers import run_burst_worker
from virt import services
from virt.drivers import libvirt as libvirt_driver
from virt.drivers import xenapi
from virt.models import Network, Pool, StorageRepository, Vm, VmTemplate

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "xapi-secret"
LIBVIRT_TEMPLATE = f"""<domain type='test'>
  <name>tpl-debian</name>
  <metadata><dcportal:template xmlns:dcportal='{libvirt_driver.TEMPLATE_NS}'/></metadata>
  <memory unit='KiB'>1048576</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type><boot dev='hd'/></os>
  <devices>
    <disk type='file' device='disk'><source file='/guest/template.img'/>
      <target dev='vda' bus='virtio'/></disk>
  </devices>
</domain>"""


@pytest.fixture
def xapi():
    with XapiServer(password=PASSWORD) as running:
        yield running
    xenapi.close_all()


@pytest.fixture
def acme(tenants):
    return tenants[0]


@pytest.fixture
def logged_in():
    """A client of its own per user: one user's messages never show on another's page."""

    def login(user):
        client = Client()
        client.force_login(user)
        return client

    return login


def pool_fields(**overrides):
    values = {
        "name": "pool0",
        "driver": "xenapi",
        "url": "",
        "username": "root",
        "password": "",
        "verify_tls": "on",
        "ca_bundle": "",
        "tenant": "",
        "import_tenant": "",
        "max_sessions": "4",
        "sync_interval": "0",
        "vnc_port_min": "5900",
        "vnc_port_max": "6899",
        "options": "",
        "description": "",
    }
    return values | overrides


def create_pool_in_form(client, **fields):
    response = client.post(reverse("virt:pool-create"), pool_fields(**fields))
    assert response.status_code == 302, response.content.decode()
    return Pool.objects.get(name=fields.get("name", "pool0"))


def sync_in_page(client, pool):
    response = client.post(reverse("virt:pool-sync", args=[pool.pk]))
    job = Job.objects.filter(kind=services.SYNC_JOB_KIND).latest("pk")
    assert response.status_code == 302 and response["Location"] == reverse("job", args=[job.pk])
    run_burst_worker("virt")
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    pool.refresh_from_db()


def vm_fields(pool, **overrides):
    values = {
        "name": "web01",
        "tenant": str(pool.tenant_id),
        "template": str(VmTemplate.objects.filter(pool=pool).order_by("name").first().pk),
        "storage": "",
        "networks": [],
        "vcpus": "2",
        "memory_bytes": "2G",
        "disk_bytes": "",
        "start": "on",
    }
    return values | overrides


def create_vm_in_form(client, pool, **fields):
    response = client.post(
        reverse("virt:vm-create") + f"?pool={pool.pk}", vm_fields(pool, **fields)
    )
    assert response.status_code == 302, response.content.decode()
    vm = Vm.objects.get(server__hostname=fields.get("name", "web01"))
    assert response["Location"] == reverse("virt:vm", args=[vm.pk])
    run_burst_worker("virt")
    vm.refresh_from_db()
    return vm


def press(client, vm, action):
    response = client.post(reverse("virt:vm-action", args=[vm.pk]), {"action": action})
    assert response.status_code == 302 and response["Location"] == reverse("virt:vm", args=[vm.pk])
    run_burst_worker("virt")
    vm.refresh_from_db()
    assert vm.job.status == Job.Status.SUCCEEDED, vm.job.error


def page(client, name, *args):
    response = client.get(reverse(name, args=args))
    assert response.status_code == 200
    return response.content.decode()


def listed(client, url, params=None):
    """The host names the VM list shows, in order."""
    response = client.get(url, params or {})
    assert response.status_code == 200
    return re.findall(r'<a href="/virt/vms/\d+/">([^<]+)</a>', response.content.decode())


def exported(client, url, params):
    response = client.get(url, params)
    assert response.status_code == 200
    return b"".join(response.streaming_content).decode()


@pytest.fixture
def xen_pool(xapi, make_user, acme, logged_in):
    """A pool of the XAPI server, created and synced through the pages by an operator."""
    client = logged_in(make_user("xenop", roles=["operator"], tenants=[acme]))
    pool = create_pool_in_form(client, url=xapi.url, password=PASSWORD, tenant=str(acme.pk))
    sync_in_page(client, pool)
    return pool


# XAPI -------------------------------------------------------------------------------------------


def test_pool_form_sync_and_pool_page(xapi, operator, acme, logged_in):
    client = logged_in(operator)
    assert "New pool" in page(client, "virt:index")
    pool = create_pool_in_form(client, url=xapi.url, password=PASSWORD, tenant=str(acme.pk))
    assert (pool.tenant, pool.driver, pool.password.reveal()) == (acme, "xenapi", PASSWORD)

    sync_in_page(client, pool)
    assert pool.last_sync is not None and not pool.last_sync_error
    detail = page(client, "virt:pool", pool.pk)
    for text in ("xen1", "xen2", "Debian Bookworm 12", "Storage network", "Local storage"):
        assert text in detail
    assert "Sync now" in detail and "New VM" in detail
    listing = page(client, "virt:index")
    assert "pool0" in listing and xapi.url in listing and "Acme" in listing


def test_create_vm_power_it_and_destroy_it(xapi, xen_pool, operator, logged_in):
    client = logged_in(operator)
    step_one = page(client, "virt:vm-create")
    assert "pool0" in step_one and "Create VM" not in step_one
    step_two = client.get(reverse("virt:vm-create") + f"?pool={xen_pool.pk}").content.decode()
    assert "Debian Bookworm 12" in step_two and "Storage network" in step_two

    networks = [str(n.pk) for n in Network.objects.filter(pool=xen_pool).order_by("name")]
    storage = StorageRepository.objects.get(pool=xen_pool, name="Local storage")
    vm = create_vm_in_form(
        client, xen_pool, networks=networks, storage=str(storage.pk), disk_bytes="10G"
    )
    assert vm.state == Vm.State.PRESENT, vm.last_error
    assert (vm.vcpus, vm.memory_bytes) == (2, 2 * 1024**3)
    record = xapi.record("VM", vm.uuid)
    assert record["power_state"] == "Running"
    xapi_macs = {xapi.record("VIF", ref)["MAC"].lower() for ref in record["VIFs"]}
    portal_macs = {
        mac.lower()
        for mac in Interface.objects.filter(server=vm.server).values_list("mac", flat=True)
    }
    assert len(portal_macs) == 2 and xapi_macs == portal_macs

    detail = page(client, "virt:vm", vm.pk)
    for mac in portal_macs:
        assert mac in detail
    for label in ("Shut down", "Force shutdown", "Reboot", "Force reboot", "Destroy…"):
        assert label in detail
    assert 'value="start"' not in detail  # it runs
    assert "Install with" not in detail  # no profile to install with
    assert reverse("inventory:server", args=[vm.server_id]) in detail
    assert reverse("virt:vm", args=[vm.pk]) in page(client, "inventory:server", vm.server_id)

    press(client, vm, "reboot")
    assert xapi.calls["VM.clean_reboot"] == 1
    press(client, vm, "shutdown")
    assert xapi.record("VM", vm.uuid)["power_state"] == "Halted"
    halted = page(client, "virt:vm", vm.pk)
    assert 'value="start"' in halted and 'value="shutdown"' not in halted
    press(client, vm, "start")
    assert xapi.record("VM", vm.uuid)["power_state"] == "Running"
    press(client, vm, "hard-reboot")
    assert xapi.calls["VM.hard_reboot"] == 1
    press(client, vm, "hard-shutdown")
    assert xapi.record("VM", vm.uuid)["power_state"] == "Halted"
    assert vm.power_state == Vm.PowerState.HALTED

    url = reverse("virt:vm-destroy", args=[vm.pk])
    assert "web01" in page(client, "virt:vm-destroy", vm.pk)
    wrong = client.post(url, {"confirm": "web02"})
    assert wrong.status_code == 200 and 'class="errors"' in wrong.content.decode()
    assert not Job.objects.filter(kind=services.DESTROY_JOB_KIND).exists()
    right = client.post(url, {"confirm": vm.server.hostname})
    job = Job.objects.get(kind=services.DESTROY_JOB_KIND)
    assert right.status_code == 302 and right["Location"] == reverse("job", args=[job.pk])
    run_burst_worker("virt")
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert not Vm.objects.filter(pk=vm.pk).exists()
    assert not Server.objects.filter(pk=vm.server_id).exists()
    with pytest.raises(KeyError):
        xapi.record("VM", vm.uuid)


def test_create_form_shows_field_errors(xen_pool, operator, logged_in):
    client = logged_in(operator)
    response = client.post(
        reverse("virt:vm-create") + f"?pool={xen_pool.pk}",
        vm_fields(xen_pool, memory_bytes="plenty", vcpus="0"),
    )
    assert response.status_code == 200
    form = response.context["form"]
    assert set(form.errors) >= {"memory_bytes", "vcpus"}
    assert not Vm.objects.exists() and not Server.objects.exists()


def test_another_pools_objects_are_refused(xapi, xen_pool, operator, logged_in):
    """A template of another pool cannot be smuggled into the form."""
    other = services.create_pool(
        user=operator, name="pool1", url=xapi.url, username="root", password=PASSWORD,
        tenant=xen_pool.tenant,
    )  # fmt: skip
    client = logged_in(operator)
    sync_in_page(client, other)
    foreign = VmTemplate.objects.get(pool=other)
    response = client.post(
        reverse("virt:vm-create") + f"?pool={xen_pool.pk}",
        vm_fields(xen_pool, template=str(foreign.pk)),
    )
    assert response.status_code == 200 and "template" in response.context["form"].errors
    assert not Vm.objects.exists()


def test_migrate_is_for_vm_power_admins(xapi, xen_pool, make_user, acme, logged_in):
    admin = make_user("vmadmin", roles=["vm-admin"], tenants=[acme])
    mover = make_user("mover", roles=["vm-power-admin"], tenants=[acme])
    vm = create_vm_in_form(logged_in(admin), xen_pool)
    assert vm.state == Vm.State.PRESENT, vm.last_error
    assert "Migrate" not in page(logged_in(admin), "virt:vm", vm.pk)
    assert logged_in(admin).post(reverse("virt:vm-migrate", args=[vm.pk])).status_code == 403

    client = logged_in(mover)
    assert "Migrate" in page(client, "virt:vm", vm.pk)
    target = vm.pool.hosts.exclude(pk=vm.host_id).get()
    response = client.post(reverse("virt:vm-migrate", args=[vm.pk]), {"host": target.pk})
    assert response.status_code == 302
    run_burst_worker("virt")
    vm.refresh_from_db()
    assert vm.job.kind == services.MIGRATE_JOB_KIND
    assert vm.job.status == Job.Status.SUCCEEDED, vm.job.error
    assert xapi.record("VM", vm.uuid)["resident_on"] == xapi.ref("host", target.uuid)


def test_install_button_queues_an_install(xen_pool, operator, acme, logged_in):
    profile = make_profile("rocky9", tenant=acme)
    client = logged_in(operator)
    networks = [str(n.pk) for n in Network.objects.filter(pool=xen_pool)]
    vm = create_vm_in_form(client, xen_pool, networks=networks)
    assert "rocky9" in page(client, "virt:vm", vm.pk)
    response = client.post(reverse("virt:vm-install", args=[vm.pk]), {"profile": profile.pk})
    assert response.status_code == 302
    vm.refresh_from_db()
    assert vm.job.kind == services.INSTALL_JOB_KIND


# Permissions and scope --------------------------------------------------------------------------


def test_viewer_sees_no_buttons_and_cannot_post(xen_pool, operator, viewer, logged_in):
    vm = create_vm_in_form(logged_in(operator), xen_pool)
    jobs = Job.objects.count()
    client = logged_in(viewer)
    detail = page(client, "virt:vm", vm.pk)
    for label in ("Shut down", "Force reboot", "Destroy", "Migrate", "Install"):
        assert label not in detail
    pool_page = page(client, "virt:pool", xen_pool.pk)
    assert "Sync now" not in pool_page and ">Edit<" not in pool_page and "New VM" not in pool_page
    assert "New pool" not in page(client, "virt:index")
    assert "New VM" not in page(client, "virt:vms")

    posts = [
        (reverse("virt:vm-action", args=[vm.pk]), {"action": "shutdown"}),
        (reverse("virt:vm-destroy", args=[vm.pk]), {"confirm": vm.server.hostname}),
        (reverse("virt:vm-migrate", args=[vm.pk]), {}),
        (reverse("virt:vm-install", args=[vm.pk]), {}),
        (reverse("virt:pool-sync", args=[xen_pool.pk]), {}),
        (reverse("virt:pool-edit", args=[xen_pool.pk]), pool_fields(name="mine")),
        (reverse("virt:pool-delete", args=[xen_pool.pk]), {}),
        (reverse("virt:vm-create") + f"?pool={xen_pool.pk}", vm_fields(xen_pool, name="x")),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code in (403, 404), url
    assert Job.objects.count() == jobs
    assert Vm.objects.get().state == Vm.State.PRESENT


def test_vm_operator_powers_but_does_not_destroy(xen_pool, operator, make_user, acme, logged_in):
    vm = create_vm_in_form(logged_in(operator), xen_pool)
    client = logged_in(make_user("vmop", roles=["vm-operator"], tenants=[acme]))
    detail = page(client, "virt:vm", vm.pk)
    assert "Shut down" in detail and "Force reboot" in detail
    assert "Destroy" not in detail and "Install" not in detail and "Migrate" not in detail
    url = reverse("virt:vm-destroy", args=[vm.pk])
    assert client.post(url, {"confirm": vm.server.hostname}).status_code == 403
    press(client, vm, "shutdown")
    assert vm.power_state == Vm.PowerState.HALTED


def test_changes_are_post_only(xen_pool, operator, logged_in):
    vm = create_vm_in_form(logged_in(operator), xen_pool)
    client = logged_in(operator)
    for name, args in (
        ("virt:vm-action", [vm.pk]),
        ("virt:vm-migrate", [vm.pk]),
        ("virt:vm-install", [vm.pk]),
        ("virt:pool-sync", [xen_pool.pk]),
    ):
        assert client.get(reverse(name, args=args)).status_code == 405


def test_another_tenants_vm_and_pool_answer_404(xen_pool, operator, make_user, tenants, logged_in):
    vm = create_vm_in_form(logged_in(operator), xen_pool)
    outsider = make_user("globex-op", roles=["operator"], tenants=[tenants[1]])
    client = logged_in(outsider)
    assert client.get(reverse("virt:vm", args=[vm.pk])).status_code == 404
    assert client.get(reverse("virt:pool", args=[xen_pool.pk])).status_code == 404
    assert client.get(reverse("virt:vm-create") + f"?pool={xen_pool.pk}").status_code == 404
    for name in ("virt:vm-action", "virt:vm-destroy"):
        response = client.post(
            reverse(name, args=[vm.pk]), {"action": "shutdown", "confirm": "web01"}
        )
        assert response.status_code == 404
    assert "web01" not in page(client, "virt:vms") and "pool0" not in page(client, "virt:index")
    assert client.post(reverse("virt:pool-sync", args=[xen_pool.pk])).status_code == 404
    assert Vm.objects.get().power_state == Vm.PowerState.RUNNING


def test_password_is_never_rendered(xapi, admin_user, acme, logged_in):
    client = logged_in(admin_user)
    pool = create_pool_in_form(client, url=xapi.url, password=PASSWORD, tenant=str(acme.pk))
    sync_in_page(client, pool)
    urls = [
        reverse("virt:index"),
        reverse("virt:pool", args=[pool.pk]),
        reverse("virt:pool-edit", args=[pool.pk]),
        reverse("virt:pool-delete", args=[pool.pk]),
        reverse("virt:vms"),
        reverse("virt:vm-create") + f"?pool={pool.pk}",
        f"/admin/virt/pool/{pool.pk}/change/",
        "/admin/virt/pool/",
        f"/admin/virt/pool/{pool.pk}/history/",
        reverse("job", args=[pool.sync_job_id]),
        reverse("audit"),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert PASSWORD not in response.content.decode(), url
    assert "password stored" in page(client, "virt:pool", pool.pk)

    # An empty box keeps the password; "clear password" removes it.
    edit = reverse("virt:pool-edit", args=[pool.pk])
    fields = pool_fields(url=xapi.url, tenant=str(acme.pk), description="kept")
    assert client.post(edit, fields).status_code == 302
    pool.refresh_from_db()
    assert pool.password.reveal() == PASSWORD and pool.description == "kept"
    assert client.post(edit, fields | {"clear_password": "on"}).status_code == 302
    pool.refresh_from_db()
    assert not pool.password
    assert "Clear password" not in page(client, "virt:pool-edit", pool.pk)


def test_a_shared_pool_is_changed_by_admins_only(xapi, admin_user, operator, acme, logged_in):
    admin = logged_in(admin_user)
    pool = create_pool_in_form(admin, url=xapi.url, password=PASSWORD)
    assert pool.tenant is None
    client = logged_in(operator)
    detail = page(client, "virt:pool", pool.pk)
    assert "Sync now" not in detail and ">Edit<" not in detail and "Delete…" not in detail
    assert "shared" in page(client, "virt:index")
    assert client.post(reverse("virt:pool-sync", args=[pool.pk])).status_code == 403
    response = client.post(reverse("virt:pool-edit", args=[pool.pk]), pool_fields(name="x"))
    assert response.status_code == 403
    assert client.post(reverse("virt:pool-delete", args=[pool.pk])).status_code == 403
    assert Pool.objects.get().name == "pool0"


def test_pool_delete_is_refused_while_it_holds_vms(xen_pool, operator, logged_in):
    client = logged_in(operator)
    create_vm_in_form(client, xen_pool)
    assert "Delete the pool" in page(client, "virt:pool-delete", xen_pool.pk)
    response = client.post(reverse("virt:pool-delete", args=[xen_pool.pk]), follow=True)
    assert response.status_code == 200 and Pool.objects.filter(pk=xen_pool.pk).exists()
    assert 'class="flash flash-error"' in response.content.decode()


def test_vm_list_filters_and_constant_queries(xen_pool, operator, logged_in):
    client = logged_in(operator)
    networks = [str(n.pk) for n in Network.objects.filter(pool=xen_pool)]

    def create(count):
        start = Vm.objects.count()
        for index in range(start, start + count):
            response = client.post(
                reverse("virt:vm-create") + f"?pool={xen_pool.pk}",
                vm_fields(xen_pool, name=f"node{index:02d}", networks=networks, start=""),
            )
            assert response.status_code == 302, response.content.decode()

    def queries(url):
        client.get(url)
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        assert response.status_code == 200
        return len(captured)

    create(2)
    url = reverse("virt:vms")
    few, few_index, few_pool = (
        queries(url),
        queries(reverse("virt:index")),
        queries(reverse("virt:pool", args=[xen_pool.pk])),
    )
    create(4)
    assert queries(url) == few
    assert queries(reverse("virt:index")) == few_index
    assert queries(reverse("virt:pool", args=[xen_pool.pk])) == few_pool

    run_burst_worker("virt")
    Vm.objects.filter(server__hostname="node03").update(power_state=Vm.PowerState.RUNNING)
    listing = client.get(url, {"hostname": "node0", "power_state": "halted"}).content.decode()
    assert "node00" in listing and "node03" not in listing
    listing = client.get(url, {"pool": str(xen_pool.pk), "state": "present"}).content.decode()
    assert "node05" in listing
    listing = client.get(url, {"tenant": "globex"}).content.decode()
    assert "node00" not in listing and "No VMs match" in listing

    # The table's search, filters, sorting, pages and exports.
    names = [f"node{i:02d}" for i in range(6)]
    assert listed(client, url) == names
    assert listed(client, url, {"q": "node04"}) == ["node04"]
    assert listed(client, url, {"power_state": "running"}) == ["node03"]
    assert listed(client, url, {"pool": "pool0", "tenant": "acme"}) == names
    assert listed(client, url, {"sort": "-hostname"}) == names[::-1]
    by_power = listed(client, url, {"sort": "-power_state"})
    assert by_power[0] == "node03" and sorted(by_power) == names
    first = client.get(url, {"size": "25", "sort": "hostname"}).content.decode()
    assert 'aria-sort="ascending"' in first and "<strong>6</strong> VMs" in first
    assert "Cannot sort by" in client.get(url, {"sort": "colour"}).content.decode()
    assert "Unknown filter" in client.get(url, {"colour": "red"}).content.decode()
    assert listed(client, url, {"colour": "red"}) == []

    rows = list(csv.DictReader(io.StringIO(exported(client, url, {"export": "csv"}))))
    assert [row["Host name"] for row in rows] == names
    macs = set(Interface.objects.filter(server__hostname="node01").values_list("mac", flat=True))
    row = rows[1]
    assert set(row["MACs"].split(", ")) == macs and row["Pool"] == "pool0"
    assert row["Tenant"] == "Acme" and row["Memory"] == "2G" and row["State"] == "present"
    data = json.loads(exported(client, url, {"export": "json", "power_state": "running"}))
    assert [item["hostname"] for item in data] == ["node03"]
    assert data[0]["power_state"] == "running" and data[0]["vcpus"] == 2


def test_vm_list_pages_with_keyset_links(xen_pool, operator, logged_in):
    client = logged_in(operator)
    template = VmTemplate.objects.filter(pool=xen_pool).first()
    for index in range(27):
        services.create_vm(
            user=operator, pool=xen_pool, name=f"p{index:02d}", tenant=xen_pool.tenant,
            template=template, vcpus=1, memory_bytes=1024**3, start=False,
        )  # fmt: skip
    url = reverse("virt:vms")
    response = client.get(url, {"size": "25"})
    first = re.findall(r'<a href="/virt/vms/\d+/">([^<]+)</a>', response.content.decode())
    assert first == [f"p{index:02d}" for index in range(25)]
    next_url = re.search(r'href="(\?[^"]*after=[^"]+)" hx-get', response.content.decode())[1]
    assert listed(client, url + html.unescape(next_url)) == ["p25", "p26"]
    damaged = client.get(url, {"after": "not-a-cursor"}).content.decode()
    assert "The page link is damaged" in damaged


def vm_list_html(client):
    response = client.get(reverse("virt:vms"))
    assert response.status_code == 200
    return response.content.decode()


def bulk(client, vms, action, **extra):
    data = {"action": action, "ids": [str(vm.pk) for vm in vms], "next": reverse("virt:vms")}
    return client.post(reverse("virt:vm-bulk"), data | extra)


def test_bulk_power_on_three_vms(xapi, xen_pool, operator, make_user, acme, logged_in):
    vms = [create_vm_in_form(logged_in(operator), xen_pool, name=f"web{i}") for i in (1, 2, 3)]
    assert {xapi.record("VM", vm.uuid)["power_state"] for vm in vms} == {"Running"}
    client = logged_in(make_user("vmop", roles=["vm-operator"], tenants=[acme]))
    listing = vm_list_html(client)
    for action in ("start", "shutdown", "hard-shutdown", "reboot"):
        assert f'name="action" value="{action}"' in listing
    assert f'formaction="{reverse("virt:vm-bulk")}"' in listing
    assert listing.count('name="ids"') == 3

    # The first post asks: the page names the VMs and nothing is queued yet.
    power_jobs = Job.objects.filter(kind=services.POWER_JOB_KIND)
    asked = bulk(client, vms, "shutdown")
    assert asked.status_code == 200 and power_jobs.count() == 0
    text = asked.content.decode()
    assert "Shut down: 3 VMs?" in text and all(vm.server.hostname in text for vm in vms)
    assert 'name="confirm" value="1"' in text

    done = bulk(client, vms, "shutdown", confirm="1")
    jobs = list(power_jobs.order_by("pk"))
    assert len(jobs) == 3 and {job.params["vm_id"] for job in jobs} == {vm.pk for vm in vms}
    assert done.status_code == 302
    assert done["Location"] == reverse("virt:vm-jobs") + "?ids=" + ",".join(
        str(job.pk) for job in jobs
    )
    following = client.get(done["Location"]).content.decode()
    assert all(f"#{job.pk}" in following for job in jobs) and 'hx-trigger="every 2s"' in following
    run_burst_worker("virt")
    assert {xapi.record("VM", vm.uuid)["power_state"] for vm in vms} == {"Halted"}
    assert xapi.calls["VM.clean_shutdown"] == 3
    for job in jobs:
        job.refresh_from_db()
        assert job.status == Job.Status.SUCCEEDED, job.error
    finished = client.get(done["Location"]).content.decode()
    assert finished.count("badge-succeeded") == 3 and "every 2s" not in finished
    assert set(Vm.objects.values_list("power_state", flat=True)) == {Vm.PowerState.HALTED}

    assert bulk(client, vms, "start", confirm="1").status_code == 302
    run_burst_worker("virt")
    assert {xapi.record("VM", vm.uuid)["power_state"] for vm in vms} == {"Running"}


def test_bulk_power_is_all_or_nothing(xapi, xen_pool, operator, logged_in):
    client = logged_in(operator)
    ready = [create_vm_in_form(client, xen_pool, name=f"web{i}") for i in (1, 2)]
    # Its create job has not run: the VM is not on the hypervisor yet.
    response = client.post(
        reverse("virt:vm-create") + f"?pool={xen_pool.pk}", vm_fields(xen_pool, name="web3")
    )
    assert response.status_code == 302
    creating = Vm.objects.get(server__hostname="web3")
    assert creating.state == Vm.State.CREATING
    jobs = Job.objects.count()

    refused = bulk(client, [*ready, creating], "reboot", confirm="1")
    assert refused.status_code == 200
    text = refused.content.decode()
    assert "No job was queued" in text and "web3" in text
    assert Job.objects.count() == jobs
    run_burst_worker("virt")
    assert xapi.calls["VM.clean_reboot"] == 0
    assert Vm.objects.get(pk=ready[0].pk).job.kind == services.CREATE_JOB_KIND


def test_bulk_power_is_offered_by_permission_and_scoped(
    xen_pool, operator, viewer, make_user, tenants, logged_in
):
    vm = create_vm_in_form(logged_in(operator), xen_pool)
    listing = vm_list_html(logged_in(viewer))
    assert "web01" in listing
    assert 'name="ids"' not in listing
    assert "/virt/vms/bulk/" not in listing and "Bulk actions" not in listing
    jobs = Job.objects.count()
    assert bulk(logged_in(viewer), [vm], "shutdown", confirm="1").status_code == 403

    # Another tenant's VM drops out of the selection: nothing is left to operate.
    outsider = logged_in(make_user("globex-op", roles=["operator"], tenants=[tenants[1]]))
    refused = bulk(outsider, [vm], "shutdown", confirm="1")
    assert refused.status_code == 302 and refused["Location"] == reverse("virt:vms")
    assert "can be operated by you" in outsider.get(refused["Location"]).content.decode()
    assert Job.objects.count() == jobs
    # An empty selection and a foreign "next" go back to the list.
    response = logged_in(operator).post(
        reverse("virt:vm-bulk"), {"action": "shutdown", "next": "https://elsewhere.example/"}
    )
    assert response.status_code == 302 and response["Location"] == reverse("virt:vms")
    assert logged_in(operator).get(reverse("virt:vm-bulk")).status_code == 405


def test_pool_form_in_the_dialog(xapi, xen_pool, operator, viewer, logged_in):
    client = logged_in(operator)
    listing = page(client, "virt:index")
    assert f'href="{reverse("virt:pool-create")}" data-dialog="New pool"' in listing
    edit = reverse("virt:pool-edit", args=[xen_pool.pk])
    assert f'href="{edit}" data-dialog=' in listing
    assert f'href="{edit}" data-dialog=' in page(client, "virt:pool", xen_pool.pk)
    assert "data-dialog-form" in page(client, "virt:pool-edit", xen_pool.pk)

    headers = {"HX-Request": "true"}
    fields = pool_fields(url=xapi.url, tenant=str(xen_pool.tenant_id))
    bad = client.post(edit, fields | {"max_sessions": "0"}, headers=headers)
    assert bad.status_code == 200 and "field-error" in bad.content.decode()
    saved = client.post(edit, fields | {"description": "in a dialog"}, headers=headers)
    assert saved.status_code == 204
    trigger = json.loads(saved["HX-Trigger"])["dcportal:saved"]
    assert trigger["location"] == reverse("virt:pool", args=[xen_pool.pk])
    xen_pool.refresh_from_db()
    assert xen_pool.description == "in a dialog"
    created = client.post(
        reverse("virt:pool-create"),
        pool_fields(name="pool9", url=xapi.url, tenant=str(xen_pool.tenant_id)),
        headers=headers,
    )
    assert created.status_code == 204 and Pool.objects.filter(name="pool9").exists()

    assert 'data-dialog="' not in page(logged_in(viewer), "virt:index")


def test_pool_list_table(xapi, xen_pool, admin_user, operator, make_user, tenants, logged_in):
    shared = services.create_pool(
        user=admin_user, name="shared0", url=xapi.url, username="root", password=PASSWORD
    )
    client = logged_in(operator)
    url = reverse("virt:index")
    text = client.get(url).content.decode()
    assert "pool0" in text and "shared0" in text and "<strong>2</strong> pools" in text
    # A shared pool is not the operator's to edit.
    assert reverse("virt:pool-edit", args=[shared.pk]) not in text
    assert "shared0" not in client.get(url, {"shared": "false"}).content.decode()
    assert "pool0" not in client.get(url, {"q": "shared"}).content.decode()
    rows = list(csv.DictReader(io.StringIO(exported(client, url, {"export": "csv"}))))
    assert [(row["Name"], row["Tenant"]) for row in rows] == [
        ("pool0", "Acme"),
        ("shared0", "shared"),
    ]
    assert PASSWORD not in exported(client, url, {"export": "json"})
    outsider = logged_in(make_user("globex-op", roles=["operator"], tenants=[tenants[1]]))
    text = outsider.get(url).content.decode()
    assert "pool0" not in text and "<strong>1</strong> pools" in text
    assert ">Acme<" not in text  # nor among the tenant filter's choices


# libvirt ----------------------------------------------------------------------------------------


@pytest.fixture
def libvirt_host():
    """libvirt's test:///default hypervisor with a template. Its state lives while a connection
    is open, so this one stays open for the test: the portal's jobs connect beside it."""
    if libvirt_driver.libvirt is None:
        message = "libvirt-python is not installed (pip install -r requirements-libvirt.txt)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and {message}", pytrace=False)
        pytest.skip(message)
    conn = libvirt_driver.libvirt.open("test:///default")
    conn.defineXML(LIBVIRT_TEMPLATE)
    yield conn
    conn.close()


def test_a_libvirt_pool_through_the_same_pages(libvirt_host, operator, acme, logged_in):
    client = logged_in(operator)
    pool = create_pool_in_form(
        client, name="kvm0", driver="libvirt", url="test:///default", username="",
        tenant=str(acme.pk),
    )  # fmt: skip
    sync_in_page(client, pool)
    detail = page(client, "virt:pool", pool.pk)
    assert "tpl-debian" in detail and "default-pool" in detail

    network = Network.objects.get(pool=pool, name="default")
    storage = StorageRepository.objects.get(pool=pool, name="default-pool")
    vm = create_vm_in_form(
        client, pool, name="kvm-web01", networks=[str(network.pk)], storage=str(storage.pk),
        disk_bytes="1G",
    )  # fmt: skip
    assert vm.state == Vm.State.PRESENT, vm.last_error
    domain = libvirt_host.lookupByUUIDString(vm.uuid)
    assert domain.isActive()
    macs = {
        element.get("address").lower()
        for element in ET.fromstring(domain.XMLDesc(0)).findall("devices/interface/mac")
    }
    assert macs == {vm.server.interfaces.get().mac.lower()}
    assert "kvm-web01" in page(client, "virt:vms")

    press(client, vm, "hard-shutdown")
    assert not domain.isActive()
    press(client, vm, "start")
    assert domain.isActive()
    press(client, vm, "hard-shutdown")

    response = client.post(
        reverse("virt:vm-destroy", args=[vm.pk]), {"confirm": vm.server.hostname}
    )
    assert response.status_code == 302
    run_burst_worker("virt")
    assert not Vm.objects.filter(pk=vm.pk).exists()
    names = [d.name() for d in libvirt_host.listAllDomains(0)]
    assert "kvm-web01" not in names

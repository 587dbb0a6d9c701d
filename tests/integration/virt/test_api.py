"""The virtualization API against real hypervisors: pools on the project's XAPI server and on
libvirt's test:///default, synced and operated by a real RQ worker, with the results read back
from the hypervisor; write-only pool passwords; 400s naming the field; the XAPI roles
(vm-operator, vm-admin, vm-power-admin, operator) and tenant scope; constant-cost lists; the
OpenAPI schema.

transaction=True where the worker runs: it has a database connection of its own."""

import datetime
import uuid

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from dcportal import services as platform_services
from dcportal.models import ApiToken, Job
from inventory.models import Server
from tests.integration.deploy.build_helpers import make_profile
from tests.workers import run_burst_worker
from virt import services
from virt.drivers import libvirt as libvirt_driver
from virt.models import Network, Pool, Vm, VmTemplate

from .api_helpers import (  # noqa: F401 (fixtures)
    GIB,
    POOLS,
    VMS,
    make_pool,
    make_vms,
    roles_fixture,
    vm_url,
    xapi_fixture,
)

SECRET = "xapi-secret"  # the XAPI server's root password


def client_for(user, *, write=True):
    """A client of its own per user (the shared `api` fixture holds one user at a time)."""
    client = APIClient()
    _, key = platform_services.create_token(
        user=user, name=f"t{ApiToken.objects.count()}", write=write
    )
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def fields(response):
    assert response.status_code == 400, response.content
    return response.json()["error"]["fields"]


def pem_certificate():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "xen-ca")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


class Recorder:
    """A client that keeps every response, to check afterwards that none carried a secret."""

    def __init__(self, client):
        self.client, self.responses = client, []

    def __getattr__(self, method):
        call = getattr(self.client, method)

        def request(*args, **kwargs):
            if method != "get":
                kwargs.setdefault("format", "json")
            response = call(*args, **kwargs)
            self.responses.append(response)
            return response

        return request

    def assert_never_shown(self, secret):
        for response in self.responses:
            assert secret not in response.content.decode(), response.request["PATH_INFO"]


def xapi_pool_body(xapi, **extra):
    return {"name": "xen", "url": xapi.url, "username": "root", "password": SECRET, **extra}


def sync(client, pool_id):
    response = client.post(f"{POOLS}{pool_id}/sync/")
    assert response.status_code == 202, response.content
    run_burst_worker("virt")
    job = Job.objects.get(pk=response.json()["job"]["id"])
    return job


def names(client, url, **params):
    response = client.get(url, params)
    assert response.status_code == 200, response.content
    return sorted(row["name"] for row in response.json()["results"])


def xapi_vm(xapi, name):
    """The guest named `name` on the XAPI server (a record), or None."""
    with xapi.lock:
        records = [
            dict(record)
            for record in xapi.objects["VM"].values()
            if record["name_label"] == name and not record["is_a_template"]
        ]
    assert len(records) <= 1
    return records[0] if records else None


def xapi_macs(xapi, record):
    vifs = [xapi.record("VIF", ref) for ref in record["VIFs"]]
    return [vif["MAC"] for vif in sorted(vifs, key=lambda vif: int(vif["device"]))]


@pytest.fixture
def synced_xapi_pool(xapi, operator, tenants):
    """A pool of acme on the XAPI server, created and synced through the API."""
    client = client_for(operator)
    created = client.post(POOLS, xapi_pool_body(xapi, tenant="acme"), format="json")
    assert created.status_code == 201, created.content
    job = sync(client, created.json()["id"])
    assert job.status == "succeeded", job.error
    return Pool.objects.get(pk=created.json()["id"])


def create_vm(client, **overrides):
    body = {
        "name": "web01",
        "pool": "xen",
        "tenant": "acme",
        "template": "Debian Bookworm 12",
        "vcpus": 2,
        "memory": "2G",
        "disk": 10 * GIB,
        "storage": "Local storage",
        "networks": ["Pool-wide network associated with eth0", "Storage network"],
        "start": True,
    } | overrides
    return client.post(VMS, body, format="json")


# Pools ----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_pool_crud_keeps_the_password_write_only(xapi, operator, tenants):
    client = Recorder(client_for(operator))
    bundle = pem_certificate()

    created = client.post(POOLS, xapi_pool_body(xapi, tenant="acme", ca_bundle=bundle))

    assert created.status_code == 201, created.content
    data = created.json()
    assert "password" not in data
    assert (data["has_password"], data["tenant"], data["driver"]) == (True, "acme", "xenapi")
    assert data["ca_bundle"].strip() == bundle.strip()
    url = f"{POOLS}{data['id']}/"
    changed = client.patch(url, {"description": "rack 12", "max_sessions": 2})
    assert changed.status_code == 200, changed.content
    assert changed.json()["has_password"] is True
    # The stored password still logs in: the sync reaches the XAPI server with it.
    assert sync(client.client, data["id"]).status == "succeeded"
    assert xapi.logins >= 1
    assert client.get(url).json()["last_sync_error"] == ""
    assert [row["name"] for row in client.get(POOLS, {"tenant": "acme"}).json()["results"]] == [
        "xen"
    ]

    wrong = client.patch(url, {"password": "not-the-password"})
    assert wrong.json()["has_password"] is True
    failed = sync(client.client, data["id"])
    assert failed.status == "failed"
    assert client.get(url).json()["last_sync_error"]
    cleared = client.patch(url, {"password": ""})
    assert cleared.json()["has_password"] is False

    client.assert_never_shown(SECRET)
    client.assert_never_shown("not-the-password")
    assert client.delete(url).status_code == 204
    assert not Pool.objects.exists()


@pytest.mark.django_db
def test_pool_validation_errors_name_the_field(api, operator, tenants):
    client = api.as_user(operator)

    def post(**body):
        body = {"name": "x", "url": "https://xen1/", "tenant": "acme"} | body
        return client.post(POOLS, body, format="json")

    assert "url" in fields(post(url="xen1"))
    assert "url" in fields(post(driver="libvirt", url="/var/run/libvirt"))
    assert "ca_bundle" in fields(post(ca_bundle="junk"))
    assert "driver" in fields(post(driver="vmware"))
    assert "tenant" in fields(post(tenant="globex"))
    assert "options" in fields(post(options=[1]))
    assert "max_sessions" in fields(post(max_sessions=0))
    assert "vnc_port_max" in fields(post(vnc_port_min=6000, vnc_port_max=5999))
    assert post(name="xen").status_code == 201
    assert "name" in fields(post(name="xen"))
    assert list(Pool.objects.values_list("name", flat=True)) == ["xen"]
    # Sharing a pool with every tenant is an admin's decision.
    assert post(name="everyone", tenant=None).status_code == 403


@pytest.mark.django_db
def test_a_pool_with_vms_is_not_deleted(api, operator, tenants):
    pool = make_pool("xen", tenants[0])
    make_vms(pool, tenants[0], 1)

    response = api.as_user(operator).delete(f"{POOLS}{pool.pk}/")

    assert response.status_code == 400, response.content
    assert Pool.objects.filter(pk=pool.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_sync_reads_the_xapi_pool_into_the_portal(xapi, operator, tenants):
    client = client_for(operator)
    created = client.post(POOLS, xapi_pool_body(xapi, tenant="acme"), format="json")
    pool_id = created.json()["id"]

    response = client.post(f"{POOLS}{pool_id}/sync/")

    assert response.status_code == 202, response.content
    job = response.json()["job"]
    assert (job["kind"], job["queue"], job["status"]) == (services.SYNC_JOB_KIND, "virt", "queued")
    run_burst_worker("virt")
    assert Job.objects.get(pk=job["id"]).status == "succeeded"
    assert names(client, "/api/virt/hosts/", pool="xen") == ["xen1", "xen2"]
    assert names(client, "/api/virt/hosts/", pool=pool_id, name="xen2") == ["xen2"]
    assert names(client, "/api/virt/templates/", pool="xen") == ["Debian Bookworm 12"]
    assert names(client, "/api/virt/networks/", pool="xen") == [
        "Pool-wide network associated with eth0",
        "Storage network",
    ]
    storage = client.get("/api/virt/storage/", {"pool": "xen"}).json()["results"]
    assert {row["name"]: row["size_bytes"] for row in storage} == {
        "Local storage": 100 * GIB,
        "Small storage": 4 * GIB,
    }
    master = client.get("/api/virt/hosts/", {"name": "xen1"}).json()["results"][0]
    assert master["uuid"] == xapi.record("host", xapi.master)["uuid"]
    pool = client.get(f"{POOLS}{pool_id}/").json()
    assert pool["last_sync"] and pool["sync_job"] == job["id"]
    assert pool["host_count"] == 2
    assert xapi.live_sessions == 0  # the job logged out


@pytest.mark.django_db(transaction=True)
def test_sync_reads_a_libvirt_hypervisor(admin_user, roles, tenants):
    if libvirt_driver.libvirt is None:
        pytest.skip("libvirt-python is not installed")
    client = client_for(admin_user)
    body = {"name": "kvm", "driver": "libvirt", "url": "test:///default", "import_tenant": "acme"}
    created = client.post(POOLS, body, format="json")
    assert created.status_code == 201, created.content
    assert (created.json()["tenant"], created.json()["import_tenant"]) == (None, "acme")

    job = sync(client, created.json()["id"])

    assert job.status == "succeeded", job.error
    # What the hypervisor holds, read with libvirt itself.
    conn = libvirt_driver.libvirt.open("test:///default")
    try:
        guest = conn.lookupByName("test").UUIDString()
        host_cpus = conn.getInfo()[2]
    finally:
        conn.close()
    viewer = client_for(roles["read-only"])  # of acme: sees the shared pool and acme's guest
    (host,) = viewer.get("/api/virt/hosts/", {"pool": "kvm"}).json()["results"]
    assert host["cpu_count"] == host_cpus
    assert names(viewer, "/api/virt/networks/", pool="kvm") == ["default"]
    assert names(viewer, "/api/virt/storage/", pool="kvm") == ["default-pool"]
    assert names(viewer, "/api/virt/templates/", pool="kvm") == []
    (vm,) = viewer.get(VMS, {"pool": "kvm"}).json()["results"]
    assert (vm["uuid"], vm["state"], vm["power_state"], vm["tenant"]) == (
        guest,
        "present",
        "running",
        "acme",
    )
    # A template must exist in the pool: libvirt's default hypervisor has none.
    refused = create_vm(
        client, pool="kvm", template="tpl-debian", storage=None, networks=["default"]
    )
    assert "template" in fields(refused)


# VMs on the XAPI server -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_vm_lifecycle_on_the_xapi_server(xapi, synced_xapi_pool, roles):
    admin = Recorder(client_for(roles["vm-admin"]))

    created = create_vm(admin)

    assert created.status_code == 202, created.content
    vm, job = created.json()["vm"], created.json()["job"]
    assert (vm["hostname"], vm["state"], vm["tenant"], vm["pool"]) == (
        "web01",
        "creating",
        "acme",
        "xen",
    )
    assert (job["kind"], job["queue"]) == (services.CREATE_JOB_KIND, "virt")
    assert (vm["memory_bytes"], vm["disk_bytes"], vm["vcpus"]) == (2 * GIB, 10 * GIB, 2)
    portal_macs = [vif["mac"] for vif in vm["vifs"]]
    assert [vif["network"] for vif in vm["vifs"]] == [
        "Pool-wide network associated with eth0",
        "Storage network",
    ]
    assert len(set(portal_macs)) == 2

    run_burst_worker("virt")

    assert Job.objects.get(pk=job["id"]).status == "succeeded"
    record = xapi_vm(xapi, "web01")
    assert record is not None
    assert [mac.lower() for mac in xapi_macs(xapi, record)] == [mac.lower() for mac in portal_macs]
    assert (record["VCPUs_at_startup"], record["memory_static_max"]) == ("2", str(2 * GIB))
    assert record["power_state"] == "Running"
    detail = admin.get(vm_url(vm["id"])).json()
    assert (detail["state"], detail["power_state"], detail["uuid"]) == (
        "present",
        "running",
        record["uuid"],
    )
    assert Server.objects.get(pk=detail["server"]).kind == Server.Kind.VIRTUAL

    # vm-operator: power, nothing more.
    operator = Recorder(client_for(roles["vm-operator"]))
    shutdown = operator.post(vm_url(vm["id"], "power"), {"action": "shutdown"})
    assert shutdown.status_code == 202, shutdown.content
    assert shutdown.json()["job"]["kind"] == services.POWER_JOB_KIND
    run_burst_worker("virt")
    assert xapi_vm(xapi, "web01")["power_state"] == "Halted"
    assert operator.get(vm_url(vm["id"])).json()["power_state"] == "halted"
    assert operator.post(vm_url(vm["id"], "destroy"), {"confirm": "web01"}).status_code == 403
    assert operator.post(vm_url(vm["id"], "power"), {"action": "start"}).status_code == 202
    run_burst_worker("virt")
    assert xapi_vm(xapi, "web01")["power_state"] == "Running"

    # vm-admin may not migrate; vm-power-admin may.
    assert admin.post(vm_url(vm["id"], "migrate"), {"host": "xen2"}).status_code == 403
    mover = Recorder(client_for(roles["vm-power-admin"]))
    moved = mover.post(vm_url(vm["id"], "migrate"), {"host": "xen2"})
    assert moved.status_code == 202, moved.content
    assert moved.json()["job"]["kind"] == services.MIGRATE_JOB_KIND
    run_burst_worker("virt")
    assert Job.objects.get(pk=moved.json()["job"]["id"]).status == "succeeded"
    assert xapi_vm(xapi, "web01")["resident_on"] == xapi.host2
    assert "host" in fields(mover.post(vm_url(vm["id"], "migrate"), {"host": "xen9"}))

    # Destruction needs the host name repeated; a bare DELETE is not offered.
    assert admin.delete(vm_url(vm["id"])).status_code == 405
    assert "confirm" in fields(admin.post(vm_url(vm["id"], "destroy"), {"confirm": "web02"}))
    destroyed = admin.post(vm_url(vm["id"], "destroy"), {"confirm": "web01"})
    assert destroyed.status_code == 202, destroyed.content
    assert destroyed.json()["job"]["kind"] == services.DESTROY_JOB_KIND
    run_burst_worker("virt")
    assert Job.objects.get(pk=destroyed.json()["job"]["id"]).status == "succeeded"
    assert xapi_vm(xapi, "web01") is None
    assert not Server.objects.filter(hostname="web01").exists()
    assert admin.get(vm_url(vm["id"])).status_code == 404
    for client in (admin, operator, mover):
        client.assert_never_shown(SECRET)


@pytest.mark.django_db(transaction=True)
def test_install_switches_the_guest_to_network_boot(xapi, synced_xapi_pool, roles):
    make_profile("rocky9")
    client = client_for(roles["vm-admin"])
    created = create_vm(client, name="build01", start=False)
    assert created.status_code == 202, created.content
    run_burst_worker("virt")
    vm_id = created.json()["vm"]["id"]

    response = client.post(vm_url(vm_id, "install"), {"profile": "rocky9"}, format="json")

    assert response.status_code == 202, response.content
    assert response.json()["job"]["kind"] == services.INSTALL_JOB_KIND
    run_burst_worker("virt")
    assert Job.objects.get(pk=response.json()["job"]["id"]).status == "succeeded"
    record = xapi_vm(xapi, "build01")
    assert (record["HVM_boot_policy"], record["HVM_boot_params"]) == ("BIOS order", {"order": "n"})
    detail = client.get(vm_url(vm_id)).json()
    assert (detail["state"], detail["install_profile"]) == ("installing", "rocky9")
    assert "profile" in fields(
        client.post(vm_url(vm_id, "install"), {"profile": "nope"}, format="json")
    )


# Input errors ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_vm_errors_name_the_field(roles, tenants):
    xen = make_pool("xen", tenants[0], networks=("lan", "dmz"))
    other = make_pool("other", tenants[0], networks=("backup",))
    client = client_for(roles["vm-admin"])
    base = {"name": "web01", "pool": "xen", "tenant": "acme", "template": "debian12"}
    base |= {"vcpus": 1, "memory": "1G"}

    def post(**overrides):
        return client.post(VMS, base | overrides, format="json")

    assert "pool" in fields(post(pool="nowhere"))
    assert "template" in fields(post(template="windows"))
    assert "storage" in fields(post(storage="san"))
    # A network of another pool is not one of this pool's.
    refused = fields(post(networks=["lan", "backup", other.networks.get().uuid]))
    assert list(refused) == ["networks"]
    assert "backup" in refused["networks"][0]
    assert "memory" in fields(post(memory="lots"))
    assert "memory" in fields(post(memory=-1))
    assert "disk" in fields(post(disk="12 parsecs"))
    # The services' own checks come back under the API's names too.
    assert "memory" in fields(post(memory="1K"))
    assert "disk" in fields(post(storage="local", disk="1T"))
    assert "vcpus" in fields(post(vcpus=0))
    assert "install_profile" in fields(post(install_profile="nope"))
    assert "tenant" in fields(post(tenant="globex"))
    several = fields(post(template="windows", storage="san", networks=["wan"]))
    assert {"template", "storage", "networks"} <= set(several)
    # Hypervisors allow a name twice: then the UUID says which.
    twin = VmTemplate.objects.create(pool=xen, uuid=str(uuid.uuid4()), name="debian12")
    assert "UUID" in fields(post())["template"][0]
    assert post(template=twin.uuid, name="twin01").status_code == 202
    missing = fields(client.post(VMS, {}, format="json"))
    assert {"name", "pool", "template", "vcpus", "memory"} <= set(missing)
    assert list(Vm.objects.values_list("template", flat=True)) == [twin.pk]


@pytest.mark.django_db
def test_create_vm_takes_uuids_and_size_text(roles, tenants):
    pool = make_pool("xen", tenants[0], networks=("lan", "dmz"))
    dmz = Network.objects.get(pool=pool, name="dmz")
    client = client_for(roles["vm-admin"])

    response = client.post(
        VMS,
        {
            "name": "db01",
            "pool": str(pool.pk),
            "tenant": "acme",
            "template": pool.templates.get().uuid,
            "vcpus": 4,
            "memory": "512M",
            "disk": "20GiB",
            "storage": pool.storage.get().uuid,
            "networks": [dmz.uuid, "lan"],
            "start": False,
        },
        format="json",
    )

    assert response.status_code == 202, response.content
    vm = Vm.objects.get()
    assert (vm.memory_bytes, vm.disk_bytes, vm.vcpus) == (512 * 1024**2, 20 * GIB, 4)
    assert [vif["network"] for vif in response.json()["vm"]["vifs"]] == ["dmz", "lan"]
    assert response.json()["job"]["id"] == vm.job_id
    assert vm.job.kind == services.CREATE_JOB_KIND


# Permissions and scope ------------------------------------------------------------------------

# Who may do what: (vm-operator, vm-admin, vm-power-admin, operator, read-only) -> status.
MATRIX = {
    "list": (200, 200, 200, 200, 200),
    "power": (202, 202, 202, 202, 403),
    "create": (403, 202, 202, 202, 403),
    "install": (403, 202, 202, 202, 403),
    "destroy": (403, 202, 202, 202, 403),
    "migrate": (403, 403, 202, 202, 403),
    "list_pools": (200, 200, 200, 200, 200),
    "create_pool": (403, 403, 403, 201, 403),
    "sync_pool": (403, 403, 403, 202, 403),
}
ROLES = ("vm-operator", "vm-admin", "vm-power-admin", "operator", "read-only")


def _attempt(client, operation, vm, pool):
    if operation == "list":
        return client.get(VMS)
    if operation == "list_pools":
        return client.get(POOLS)
    body = {
        "power": {"action": "reboot"},
        "install": {"profile": "rocky9"},
        "destroy": {"confirm": vm.server.hostname},
        "migrate": {"host": "xen2"},
    }
    if operation in body:
        return client.post(vm_url(vm.pk, operation), body[operation], format="json")
    if operation == "create":
        body = {"name": "new01", "pool": "xen", "tenant": "acme", "template": "debian12"}
        return client.post(VMS, body | {"vcpus": 1, "memory": GIB}, format="json")
    if operation == "create_pool":
        body = {"name": "xen-b", "url": "https://xen-b.example.net/", "tenant": "acme"}
        return client.post(POOLS, body, format="json")
    return client.post(f"{POOLS}{pool.pk}/sync/")


@pytest.mark.django_db
@pytest.mark.parametrize("operation", list(MATRIX))
@pytest.mark.parametrize("role", ROLES)
def test_permission_matrix(operation, role, roles, operator, tenants):
    users = {**roles, "operator": operator}
    pool = make_pool("xen", tenants[0])
    (vm,) = make_vms(pool, tenants[0], 1)
    make_profile("rocky9")

    response = _attempt(client_for(users[role]), operation, vm, pool)

    assert response.status_code == MATRIX[operation][ROLES.index(role)], response.content


@pytest.mark.django_db
def test_read_only_token_cannot_operate(roles, tenants):
    pool = make_pool("xen", tenants[0])
    (vm,) = make_vms(pool, tenants[0], 1)
    client = client_for(roles["vm-power-admin"], write=False)

    assert client.get(vm_url(vm.pk)).status_code == 200
    response = client.post(vm_url(vm.pk, "power"), {"action": "start"}, format="json")
    assert response.status_code == 403
    assert not Job.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["delete", "put", "patch"])
def test_a_vm_is_never_changed_or_removed_without_its_operations(method, roles, operator, tenants):
    pool = make_pool("xen", tenants[0])
    (vm,) = make_vms(pool, tenants[0], 1)
    for user in (roles["vm-operator"], roles["vm-admin"], operator):
        response = getattr(client_for(user), method)(vm_url(vm.pk), {}, format="json")
        assert response.status_code == 405, (user, response.content)
    assert Vm.objects.filter(pk=vm.pk).exists()
    assert APIClient().delete(vm_url(vm.pk)).status_code == 401


@pytest.mark.django_db
def test_another_tenants_vms_and_pools_are_not_found(roles, operator, tenants):
    acme, globex = tenants
    theirs_pool = make_pool("gx-xen", globex)
    (theirs,) = make_vms(theirs_pool, globex, 1, prefix="gx")
    shared = make_pool("shared", None)
    (mine,) = make_vms(shared, acme, 1, prefix="ac")
    make_vms(shared, globex, 1, prefix="gy")  # on the shared pool, but globex's
    client = client_for(roles["vm-power-admin"])

    listed = client.get(VMS).json()["results"]
    assert [row["hostname"] for row in listed] == [mine.server.hostname]
    assert client.get(vm_url(theirs.pk)).status_code == 404
    for action, body in (("power", {"action": "start"}), ("migrate", {"host": "xen2"})):
        assert client.post(vm_url(theirs.pk, action), body, format="json").status_code == 404
    assert names(client, POOLS) == ["shared"]
    assert client.get(f"{POOLS}{theirs_pool.pk}/").status_code == 404
    assert {row["pool"] for row in client.get("/api/virt/hosts/").json()["results"]} == {"shared"}
    assert not Job.objects.exists()

    # A shared pool is seen by a tenant's operator, and changed only by an admin.
    op = client_for(operator)
    assert op.get(f"{POOLS}{shared.pk}/").json()["tenant"] is None
    assert op.patch(f"{POOLS}{shared.pk}/", {"description": "x"}, format="json").status_code == 403
    assert Pool.objects.get(pk=shared.pk).description == ""
    empty = make_pool("shared-empty", None)
    assert op.delete(f"{POOLS}{empty.pk}/").status_code == 403
    assert op.post(f"{POOLS}{empty.pk}/sync/").status_code == 403
    assert Pool.objects.filter(pk=empty.pk).exists()
    # Creating a VM of acme on the shared pool is fine; on globex's pool there is no such pool.
    body = {"name": "ac-new", "pool": "shared", "tenant": "acme", "template": "debian12"}
    body |= {"vcpus": 1, "memory": "1G"}
    assert op.post(VMS, body, format="json").status_code == 202
    assert "pool" in fields(op.post(VMS, body | {"pool": "gx-xen"}, format="json"))


# Lists ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_vm_filters_and_unknown_filters(roles, tenants):
    acme, _ = tenants
    xen = make_pool("xen", acme)
    kvm = make_pool("kvm", acme)
    on_xen = make_vms(xen, acme, 2, prefix="x")
    (on_kvm,) = make_vms(kvm, acme, 1, prefix="k")
    Vm.objects.filter(pk=on_xen[1].pk).update(
        power_state=Vm.PowerState.HALTED, host=xen.hosts.get(name="xen2")
    )
    client = client_for(roles["read-only"])

    def hostnames(**params):
        response = client.get(VMS, params)
        assert response.status_code == 200, response.content
        return sorted(row["hostname"] for row in response.json()["results"])

    xen_names = sorted(vm.server.hostname for vm in on_xen)
    assert hostnames(pool="xen") == xen_names
    assert hostnames(pool=str(kvm.pk)) == [on_kvm.server.hostname]
    assert hostnames(power_state="halted") == [on_xen[1].server.hostname]
    assert hostnames(host="xen2", pool="xen") == [on_xen[1].server.hostname]
    assert hostnames(host=xen.hosts.get(name="xen2").uuid) == [on_xen[1].server.hostname]
    assert hostnames(state="present", tenant="acme") == sorted([*xen_names, on_kvm.server.hostname])
    assert hostnames(tenant="globex") == []
    assert hostnames(hostname=on_kvm.server.hostname) == [on_kvm.server.hostname]

    unknown = client.get(VMS, {"colour": "red"})
    assert "colour" in fields(unknown)
    assert "state" in fields(client.get(VMS, {"state": "exploded"}))
    assert "colour" in fields(client.get("/api/virt/hosts/", {"colour": "red"}))


@pytest.mark.django_db
def test_vm_list_costs_the_same_queries_for_3_and_30_vms(roles, tenants):
    pool = make_pool("xen", tenants[0])
    client = client_for(roles["read-only"])

    def queries():
        client.get(VMS)  # warm-up: the token's once-a-minute last_used write is not a list cost
        with CaptureQueriesContext(connection) as captured:
            response = client.get(VMS, {"page_size": 100})
        assert response.status_code == 200
        return len(captured), len(response.json()["results"])

    make_vms(pool, tenants[0], 3)
    few, rows = queries()
    assert rows == 3
    make_vms(pool, tenants[0], 27)
    many, rows = queries()
    assert rows == 30
    assert many == few
    # Each row carries its VIFs (MAC and network) without a query of its own.
    row = client.get(VMS).json()["results"][0]
    assert [(vif["device"], vif["network"]) for vif in row["vifs"]] == [(0, "lan"), (1, "lan")]


# Schema ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_schema_documents_virt_and_hides_the_password(tmp_path):
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    paths = schema["paths"]
    for path in ("/api/virt/pools/{id}/sync/", "/api/virt/vms/", "/api/virt/vms/{id}/destroy/"):
        assert "202" in paths[path]["post"]["responses"], path
    assert "delete" not in paths["/api/virt/vms/{id}/"]
    for path in ("/api/virt/hosts/", "/api/virt/templates/", "/api/virt/storage/"):
        assert set(paths[path]) == {"get"}
    components = schema["components"]["schemas"]
    assert "password" in components["PoolRequest"]["properties"]
    assert "password" not in components["Pool"]["properties"]
    assert "has_password" in components["Pool"]["properties"]

"""virt.services against the project's XAPI server, through the real XenAPI client and real
RQ workers: sync, VM creation with the portal's MACs, the PXE install of a PV guest and its
return to PV boot on `done`, power through inventory's actions, limits per pool, permissions."""

import threading
import time

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connections, transaction
from django.test import Client

from dcportal import jobs
from dcportal.models import AuditEvent, Job
from deploy import services as deploy_services
from deploy import tokens
from deploy.models import ServerDeploy
from inventory import power_services
from inventory.models import Interface, Server
from tests.fakes.xapi_server import XapiServer
from tests.integration.deploy.build_helpers import make_profile
from tests.peers.sims import make_test_ca
from tests.workers import run_burst_worker
from virt import allocation, services
from virt.drivers import xenapi
from virt.drivers.base import PoolTarget, VmSpec, get_driver
from virt.models import Host, Network, Pool, StorageRepository, Vm, VmTemplate

GIB = 1024**3
# Workers and threads have their own database connections: every test commits for real.
pytestmark = pytest.mark.django_db(transaction=True)


class Beside(threading.Thread):
    """Runs `target` beside the test (an RQ worker needs the main thread for its signals)."""

    def __init__(self, target):
        super().__init__(daemon=True)
        self.target, self.error = target, None

    def run(self):
        try:
            self.target()
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc
        finally:
            connections.close_all()


def wait_for(condition, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def xapi():
    with XapiServer() as running:
        yield running
    xenapi.close_all()


@pytest.fixture
def pool(xapi, tenants):
    return Pool.objects.create(
        name="pool0",
        driver="xenapi",
        url=xapi.url,
        username="root",
        password="xapi-secret",
        tenant=tenants[0],
    )


@pytest.fixture
def synced(pool, admin_user):
    run_sync(pool, admin_user)
    return pool


@pytest.fixture
def vm_admin(make_user, tenants):
    return make_user("vmadmin", roles=["vm-admin"], tenants=[tenants[0]])


def run_sync(pool, user):
    with transaction.atomic():
        job = services.enqueue_sync(user=user, pool=pool)
    run_burst_worker("virt")
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    return job


def run_job(job):
    run_burst_worker("virt")
    job.refresh_from_db()
    return job


def new_vm(pool, user, tenant, name="web01", **extra):
    values = {
        "template": VmTemplate.objects.get(pool=pool),
        "vcpus": 2,
        "memory_bytes": 2 * GIB,
        "disk_bytes": 10 * GIB,
        "storage": StorageRepository.objects.get(pool=pool, name="Local storage"),
        "networks": list(Network.objects.filter(pool=pool).order_by("name")),
    } | extra
    with transaction.atomic():
        return services.create_vm(user=user, pool=pool, name=name, tenant=tenant, **values)


def xapi_vm(xapi, uuid):
    return xapi.record("VM", uuid)


def test_sync_reads_the_pool(xapi, synced):
    assert sorted(Host.objects.filter(pool=synced).values_list("name", flat=True)) == [
        "xen1",
        "xen2",
    ]
    assert list(VmTemplate.objects.filter(pool=synced).values_list("name", flat=True)) == [
        "Debian Bookworm 12"
    ]
    srs = {sr.name: sr for sr in StorageRepository.objects.filter(pool=synced)}
    assert srs["Small storage"].free_bytes == 4 * GIB
    assert Network.objects.filter(pool=synced).count() == 2
    synced.refresh_from_db()
    assert synced.last_sync is not None and synced.last_sync_error == ""
    # Sessions were logged out when the job gave its slot back.
    assert xapi.live_sessions == 0 and xapi.logins == xapi.logouts >= 1


def test_sync_adopts_guests_and_marks_the_missing(xapi, synced, admin_user, tenants):
    # A guest made outside the portal, with a MAC the inventory does not know yet.
    driver = get_driver("xenapi", services.pool_target(synced))
    network = Network.objects.filter(pool=synced).first()
    uuid = driver.create_vm(
        VmSpec(
            name="Legacy DB",
            template=VmTemplate.objects.get(pool=synced).uuid,
            vcpus=1,
            memory_bytes=GIB,
            networks=[(network.uuid, "aa:00:00:00:00:01")],
        )
    )
    driver.start(uuid)
    driver.close()
    job = run_sync(synced, admin_user)
    assert job.result["vms"]["added"] == 1
    vm = Vm.objects.select_related("server").get(uuid=uuid)
    assert (vm.server.hostname, vm.server.kind, str(vm.server.uuid)) == (
        "legacy-db",
        "virtual",
        uuid,
    )
    assert vm.server.tenant == tenants[0]
    assert (vm.power_state, vm.host.name) == ("running", "xen1")
    assert list(vm.server.interfaces.values_list("mac", flat=True)) == ["aa:00:00:00:00:01"]

    # Gone from the hypervisor: missing in the portal, not deleted (someone should look).
    driver = get_driver("xenapi", services.pool_target(synced))
    driver.shutdown(uuid, "hard")
    driver.destroy(uuid)
    driver.close()
    job = run_sync(synced, admin_user)
    assert job.result["vms"]["missing"] == 1
    vm.refresh_from_db()
    assert (vm.state, vm.power_state) == ("missing", "unknown")


def test_create_vm_with_the_portals_macs(xapi, synced, vm_admin, tenants):
    taken = Interface.objects.count()
    vm = new_vm(synced, vm_admin, tenants[0])
    assert vm.state == "creating" and vm.job.kind == "virt.create"
    macs = list(
        Interface.objects.filter(server=vm.server).order_by("name").values_list("mac", flat=True)
    )
    assert len(macs) == 2 and all(mac.startswith("02:dc:00:") for mac in macs)
    assert Interface.objects.count() == taken + 2

    job = run_job(vm.job)
    assert job.status == Job.Status.SUCCEEDED, job.error
    vm.refresh_from_db()
    record = xapi_vm(xapi, vm.uuid)
    assert record["name_label"] == "web01" and record["power_state"] == "Running"
    assert [xapi.record("VIF", vif)["MAC"] for vif in record["VIFs"]] == macs
    assert record["VCPUs_at_startup"] == "2" and record["memory_static_max"] == str(2 * GIB)
    server = Server.objects.get(pk=vm.server_id)
    assert (server.kind, str(server.uuid)) == ("virtual", vm.uuid)
    assert (vm.state, vm.power_state, vm.host.name) == ("present", "running", "xen1")
    assert AuditEvent.objects.filter(verb="vm-created", object_id=str(vm.pk)).exists()


def test_mac_allocator_never_reuses_an_inventory_mac(settings, synced, tenants, admin_user):
    # A prefix with room for 256 MACs, 255 of them taken: the allocator finds the last one.
    settings.VIRT_MAC_PREFIX = "0a:dc:00:00:00"
    server = Server.objects.create(hostname="filler", tenant=tenants[0])
    Interface.objects.bulk_create(
        Interface(server=server, name=f"eth{n}", mac=f"0a:dc:00:00:00:{n:02x}") for n in range(255)
    )
    vm = new_vm(synced, admin_user, tenants[0], networks=[Network.objects.first()])
    assert vm.server.interfaces.get().mac == "0a:dc:00:00:00:ff"
    with pytest.raises(ValidationError, match="No free MAC"):
        new_vm(synced, admin_user, tenants[0], name="web02", networks=[Network.objects.first()])
    assert not Server.objects.filter(hostname="web02").exists()  # nothing half-written


@pytest.mark.parametrize("prefix", ["01:00:00", "00:dc:00", "zz:00", ""])
def test_mac_prefix_must_be_locally_administered_unicast(prefix):
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured):
        allocation.mac_prefix(prefix)


def test_bad_requests_name_the_field(synced, vm_admin, tenants, xapi):
    other = Pool.objects.create(name="other", url="https://x.invalid/", tenant=tenants[0])
    foreign = Network.objects.create(pool=other, uuid="n1", name="elsewhere")
    cases = [
        ({"vcpus": 0}, "vcpus"),
        ({"memory_bytes": 1024}, "memory_bytes"),
        ({"disk_bytes": 200 * GIB}, "disk_bytes"),  # more than the SR has free
        ({"networks": [foreign]}, "networks"),
        ({"name": "Not A Hostname!"}, "name"),
    ]
    for extra, field in cases:
        with pytest.raises(ValidationError) as error:
            new_vm(synced, vm_admin, tenants[0], **extra)
        assert field in error.value.message_dict, (extra, error.value)
    with pytest.raises(PermissionDenied):
        new_vm(synced, vm_admin, tenants[1])  # not the user's tenant
    assert not Vm.objects.exists() and xapi.calls["VM.clone"] == 0


def test_pv_guest_pxe_install_returns_to_pv_boot(xapi, synced, vm_admin, tenants, client):
    profile = make_profile("bookworm", family="debian")
    vm = new_vm(synced, vm_admin, tenants[0], install_profile=profile)
    job = run_job(vm.job)
    assert job.status == Job.Status.SUCCEEDED, job.error
    vm.refresh_from_db()
    record = xapi_vm(xapi, vm.uuid)
    # HVM BIOS order with the network first, running: the guest network-boots the installer.
    assert record["HVM_boot_policy"] == "BIOS order"
    assert record["HVM_boot_params"] == {"order": "n"}
    assert record["power_state"] == "Running"
    assert (vm.state, vm.boot) == ("installing", "network")
    deploy = ServerDeploy.objects.get(server=vm.server)
    assert (deploy.state, deploy.next_boot, deploy.profile) == ("building", "install", profile)

    # The installer reports through the boot endpoint with its build token.
    token = tokens.token_for(deploy.token_nonce)
    response = client.post(f"/boot/build/{token}/done", {"message": "d-i finished"})
    assert response.status_code == 200
    vm.refresh_from_db()
    finish = vm.job
    assert finish.kind == "virt.finish-install" and finish.user == vm_admin
    finish = run_job(finish)
    assert finish.status == Job.Status.SUCCEEDED, finish.error

    record = xapi_vm(xapi, vm.uuid)
    assert record["HVM_boot_policy"] == "" and record["PV_bootloader"] == "pygrub"
    assert record["power_state"] == "Running"
    disks = [xapi.record("VBD", vbd) for vbd in record["VBDs"]]
    assert [d["bootable"] for d in disks if d["userdevice"] == "0"] == [True]
    # It went down before the switch (XAPI refuses nothing here, the order is ours to keep).
    assert xapi.calls["VM.clean_shutdown"] == 1
    vm.refresh_from_db()
    assert (vm.state, vm.boot, vm.install_profile) == ("present", "pv", None)
    deploy.refresh_from_db()
    assert (deploy.state, deploy.next_boot) == ("deployed", "localboot")


def test_failed_install_leaves_the_vm_for_inspection(xapi, synced, vm_admin, tenants, client):
    vm = new_vm(synced, vm_admin, tenants[0], install_profile=make_profile("bookworm"))
    run_job(vm.job)
    token = tokens.token_for(ServerDeploy.objects.get(server=vm.server).token_nonce)
    client.post(f"/boot/build/{token}/failed", {"message": "no disk found"})
    vm.refresh_from_db()
    assert (vm.state, vm.last_error) == ("failed", "no disk found")
    assert vm.job.kind == "virt.create"  # nothing else was queued
    assert xapi_vm(xapi, vm.uuid)["power_state"] == "Running"


def test_vm_actions_destroy_and_migrate(xapi, synced, make_user, tenants, admin_user):
    operator = make_user("vmop", roles=["vm-operator"], tenants=[tenants[0]])
    vm_admin = make_user("vmadm", roles=["vm-admin"], tenants=[tenants[0]])
    power_admin = make_user("vmpower", roles=["vm-power-admin"], tenants=[tenants[0]])
    vm = new_vm(synced, vm_admin, tenants[0])
    run_job(vm.job)
    vm.refresh_from_db()

    with transaction.atomic():
        job = services.vm_action(user=operator, vm=vm, action="shutdown")
    assert run_job(job).status == Job.Status.SUCCEEDED
    assert xapi_vm(xapi, vm.uuid)["power_state"] == "Halted"
    with transaction.atomic():
        job = services.vm_action(user=operator, vm=vm, action="shutdown")
    job = run_job(job)  # XAPI refuses a clean shutdown of a halted VM
    assert job.status == Job.Status.FAILED and "VM_BAD_POWER_STATE" in job.error
    with transaction.atomic():
        job = services.vm_action(user=operator, vm=vm, action="start")
    run_job(job)
    vm.refresh_from_db()
    assert vm.power_state == "running"

    with pytest.raises(PermissionDenied):
        services.migrate_vm(user=vm_admin, vm=vm, host=Host.objects.get(name="xen2"))
    with transaction.atomic():
        job = services.migrate_vm(user=power_admin, vm=vm, host=Host.objects.get(name="xen2"))
    assert run_job(job).status == Job.Status.SUCCEEDED
    vm.refresh_from_db()
    assert vm.host.name == "xen2"
    assert xapi_vm(xapi, vm.uuid)["resident_on"] == xapi.host2

    with pytest.raises(PermissionDenied):
        services.destroy_vm(user=operator, vm=vm, confirm="web01")
    with pytest.raises(ValidationError) as error:
        services.destroy_vm(user=vm_admin, vm=vm, confirm="web1")
    assert "confirm" in error.value.message_dict
    with transaction.atomic():
        job = services.destroy_vm(user=vm_admin, vm=vm, confirm="web01")
    assert run_job(job).status == Job.Status.SUCCEEDED
    with pytest.raises(KeyError):  # gone from the hypervisor
        xapi_vm(xapi, vm.uuid)
    assert not Server.objects.filter(hostname="web01").exists()
    assert not Interface.objects.filter(mac__startswith="02:dc:00").exists()


def test_another_tenants_vm_is_out_of_reach(synced, make_user, tenants, admin_user):
    vm = new_vm(synced, admin_user, tenants[0])
    stranger = make_user("stranger", roles=["vm-admin"], tenants=[tenants[1]])
    with pytest.raises(PermissionDenied):
        services.vm_action(user=stranger, vm=vm, action="start")
    with pytest.raises(PermissionDenied):
        services.destroy_vm(user=stranger, vm=vm, confirm="web01")
    # The pool is acme's: a globex user cannot place VMs in it either.
    with pytest.raises(ValidationError) as error:
        new_vm(synced, stranger, tenants[1], name="intruder")
    assert "pool" in error.value.message_dict


def test_power_actions_of_a_vm_go_to_the_hypervisor(xapi, synced, tenants, admin_user, operator):
    vm = new_vm(synced, admin_user, tenants[0], start=False)
    run_job(vm.job)
    vm.refresh_from_db()
    server = vm.server
    result = power_services.run_power_action(user=operator, server=server, action="status")
    assert (result["ok"], result["state"]) == (True, "off")
    result = power_services.run_power_action(user=operator, server=server, action="on")
    assert result["ok"], result
    assert xapi_vm(xapi, vm.uuid)["power_state"] == "Running"
    result = power_services.run_power_action(user=operator, server=server, action="bootdev-pxe")
    assert result["ok"], result
    assert xapi_vm(xapi, vm.uuid)["HVM_boot_params"] == {"order": "n"}
    result = power_services.run_power_action(user=operator, server=server, action="off")
    assert result["ok"] and xapi_vm(xapi, vm.uuid)["power_state"] == "Halted"
    vm.refresh_from_db()
    assert vm.power_state == "halted"
    event = AuditEvent.objects.filter(verb="power-off").latest("pk")
    assert "pool0" in event.changes["driver"]
    # The bulk path accepts a VM without a BMC.
    with transaction.atomic():
        started = power_services.enqueue_power(user=operator, servers=[server], action="on")
    assert len(started) == 1


def test_rinstall_of_a_vm_returns_it_to_pv_boot(xapi, synced, tenants, admin_user, settings):
    """deploy's rinstall on a VM: one-time network boot and power on through the hypervisor,
    the installer's `done`, then the virt job puts the guest back on PV boot."""
    settings.RINSTALL_POLL_SECONDS = 0.1
    vm = new_vm(synced, admin_user, tenants[0], start=False)
    run_job(vm.job)
    vm.refresh_from_db()
    with transaction.atomic():
        deploy_services.rinstall(
            user=admin_user, servers=[vm.server], profile=make_profile("bookworm"), timeout=60
        )

    def installer():
        wait_for(lambda: Vm.objects.get(pk=vm.pk).state == "installing", "network boot")
        token = tokens.token_for(ServerDeploy.objects.get(server=vm.server).token_nonce)
        assert Client().post(f"/boot/build/{token}/done").status_code == 200

    machine = Beside(installer)
    machine.start()
    run_burst_worker("deploy")
    machine.join(60)
    assert machine.error is None, machine.error
    rinstall = Job.objects.get(kind="deploy.rinstall")
    assert rinstall.status == Job.Status.SUCCEEDED, rinstall.error
    finish = run_job(Vm.objects.get(pk=vm.pk).job)
    assert finish.kind == "virt.finish-install"
    assert finish.status == Job.Status.SUCCEEDED, finish.error
    record = xapi_vm(xapi, vm.uuid)
    assert (record["HVM_boot_policy"], record["PV_bootloader"], record["power_state"]) == (
        "",
        "pygrub",
        "Running",
    )


def test_a_pool_never_sees_more_sessions_than_its_limit(tenants, admin_user):
    with XapiServer(delay=0.02) as xapi:
        pool = Pool.objects.create(
            name="busy", url=xapi.url, username="root", password="xapi-secret", max_sessions=2,
            tenant=tenants[0],
        )  # fmt: skip
        run_sync(pool, admin_user)
        created = [
            new_vm(pool, admin_user, tenants[0], name=f"vm{n:02d}", disk_bytes=0) for n in range(12)
        ]
        pending = [vm.job.pk for vm in created]
        lock = threading.Lock()

        def work():
            # Job bodies run in parallel, as in four workers (RQ's own needs the main thread).
            while True:
                with lock:
                    if not pending:
                        return
                    job_id = pending.pop()
                jobs.execute(job_id)

        workers = [Beside(work) for _ in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(120)
            assert worker.error is None, worker.error
        failed = Job.objects.filter(kind="virt.create").exclude(status=Job.Status.SUCCEEDED)
        assert list(failed.values_list("error", flat=True)) == []
        assert sum(r["name_label"].startswith("vm") for r in xapi.objects["VM"].values()) == 12
        assert xapi.max_sessions <= 2 and xapi.max_active_calls <= 2
        assert xapi.max_active_calls == 2  # the limit is used, not only respected
        assert xapi.live_sessions == 0
        assert all(Vm.objects.get(pk=vm.pk).state == "present" for vm in created)
    xenapi.close_all()


def test_pool_password_stays_with_its_url(synced, admin_user, tenants):
    with pytest.raises(ValidationError) as error:
        services.update_pool(synced, user=admin_user, url="https://attacker.example/")
    assert "password" in error.value.message_dict
    services.update_pool(synced, user=admin_user, url="https://xen.example/", password="n3w-pw")
    synced.refresh_from_db()
    assert synced.password.reveal() == "n3w-pw"
    assert "n3w-pw" not in str(list(AuditEvent.objects.values("changes")))
    new_vm(synced, admin_user, tenants[0])
    with pytest.raises(ValidationError, match="still has 1 VM"):
        services.delete_pool(synced, user=admin_user)


def test_pool_target_carries_the_limit_and_the_pem(synced):
    synced.ca_bundle = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    target = services.pool_target(synced)
    assert isinstance(target, PoolTarget)
    assert target.options["max_sessions"] == synced.max_sessions
    assert "xapi-secret" not in repr(target)


def test_due_syncs_are_queued_once(synced, admin_user):
    Pool.objects.filter(pk=synced.pk).update(last_sync=None)
    with transaction.atomic():
        first = services.enqueue_due_syncs()
        second = services.enqueue_due_syncs()
    assert [job.kind for job in first] == ["virt.sync"] and second == []
    assert jobs.queue_for("virt").count >= 1


def test_a_create_cancelled_in_the_queue_settles_as_failed(xapi, synced, admin_user, tenants):
    vm = new_vm(synced, admin_user, tenants[0])
    with transaction.atomic():
        jobs.cancel(vm.job, user=admin_user)
    lines = services.settle_stale_vms()
    vm.refresh_from_db()
    assert vm.state == "failed" and "cancelled" in vm.last_error
    assert lines == [f"web01: creating -> failed ({vm.last_error})"]
    run_burst_worker("virt")
    assert xapi.calls["VM.clone"] == 0 and services.settle_stale_vms() == []


def test_tls_is_verified_against_the_pools_ca_bundle(tmp_path, tenants, admin_user):
    ca, certificate, key = make_test_ca(tmp_path)
    with XapiServer(tls=(str(certificate), str(key))) as xapi:
        assert xapi.url.startswith("https://")
        pool = Pool.objects.create(
            name="tls", url=xapi.url, username="root", password="xapi-secret", tenant=tenants[0]
        )
        # Verification is on by default and the test CA is not the system's: refused.
        with transaction.atomic():
            job = services.enqueue_sync(user=admin_user, pool=pool)
        job = run_job(job)
        assert job.status == Job.Status.FAILED and "TLS verification" in job.error
        pool.refresh_from_db()
        assert "unable to get local issuer certificate" in pool.last_sync_error
        assert xapi.logins == 0  # the password never left
        xenapi.close_all()
        # With the CA's PEM pasted into the pool, the same pool syncs.
        services.update_pool(pool, user=admin_user, ca_bundle=ca.read_text())
        run_sync(Pool.objects.get(pk=pool.pk), admin_user)
        assert Host.objects.filter(pool=pool).count() == 2
    xenapi.close_all()


def test_a_guest_without_pv_drivers_is_forced_off_after_its_install(
    xapi, synced, vm_admin, tenants, client
):
    vm = new_vm(synced, vm_admin, tenants[0], install_profile=make_profile("bookworm"))
    run_job(vm.job)
    vm.refresh_from_db()
    xapi.without_pv_drivers.add(vm.uuid)
    token = tokens.token_for(ServerDeploy.objects.get(server=vm.server).token_nonce)
    assert client.post(f"/boot/build/{token}/done").status_code == 200
    finish = run_job(Vm.objects.get(pk=vm.pk).job)
    assert finish.status == Job.Status.SUCCEEDED, finish.error
    assert xapi.calls["VM.hard_shutdown"] == 1
    assert "VM_LACKS_FEATURE" in " ".join(finish.log.values_list("message", flat=True))
    record = xapi_vm(xapi, vm.uuid)
    assert (record["PV_bootloader"], record["power_state"]) == ("pygrub", "Running")

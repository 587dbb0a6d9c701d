"""mkvm, rmvm, lsvm and vmsync through call_command against the project's XAPI server, with a
real RQ worker running the jobs: what the hypervisor ends up holding, what each tenant sees and
may remove, and the errors a mistyped command line gets.

transaction=True: jobs reach Redis when their transaction commits, and --wait commands run in a
thread with a database connection of its own."""

import json
import re
import threading
import time
from io import StringIO

import django_rq
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.test import Client

from dcportal.models import Job
from deploy import tokens
from deploy.models import ServerDeploy
from inventory.models import Interface, Server
from tests.fakes.xapi_server import XapiServer
from tests.integration.deploy.build_helpers import make_profile
from tests.workers import BurstWorker, run_burst_worker
from virt import services
from virt.drivers import xenapi
from virt.management.commands.vmsync import counts_text
from virt.models import Host, Vm

GIB = 1024**3
WAIT_SECONDS = 60
TEMPLATE = "Debian Bookworm 12"
NETWORK = "Pool-wide network associated with eth0"


def command(name, *args, user):
    out = StringIO()
    call_command(name, *args, "--user", user, stdout=out, stderr=StringIO())
    return out.getvalue()


def mkvm(name, *args, user="alice"):
    return command("mkvm", name, "--pool", "pool0", "--template", TEMPLATE, *args, user=user)


def wait_for(predicate, what):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Beside(threading.Thread):
    """Runs a command beside the worker (which needs the main thread for its signals)."""

    def __init__(self, target):
        super().__init__(daemon=True)
        self.target, self.result, self.error = target, None, None

    def run(self):
        try:
            self.result = self.target()
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc
        finally:
            connections.close_all()


def run_waiting(target, jobs=1):
    """Run a --wait command in a thread while a registered worker listens on "virt" and a
    burst worker in this thread runs the jobs it queues; returns the finished thread."""
    queue = django_rq.get_queue("virt")
    listener = BurstWorker([queue], connection=queue.connection)
    listener.register_birth()
    try:
        thread = Beside(target)
        thread.start()
        wait_for(lambda: queue.count >= jobs or not thread.is_alive(), "the jobs to be queued")
        run_burst_worker("virt")
        thread.join(WAIT_SECONDS)
    finally:
        listener.register_death()
    assert not thread.is_alive()
    return thread


def xapi_macs(xapi, uuid):
    record = xapi.record("VM", uuid)
    return sorted(xapi.record("VIF", ref)["MAC"] for ref in record["VIFs"])


def guests(xapi):
    """Names of the guests on the XAPI server (neither templates nor control domains)."""
    with xapi.lock:
        records = list(xapi.objects["VM"].values())
    return sorted(
        r["name_label"] for r in records if not r["is_a_template"] and not r["is_control_domain"]
    )


def inventory_macs(vm):
    return sorted(Interface.objects.filter(vif__vm=vm).values_list("mac", flat=True))


@pytest.fixture
def xapi():
    with XapiServer() as server:
        yield server
    xenapi.close_all()


@pytest.fixture
def users(make_user, tenants):
    acme, globex = tenants
    return (
        make_user("alice", roles=["vm-admin"], tenants=[acme]),
        make_user("bob", roles=["vm-admin"], tenants=[globex]),
    )


@pytest.fixture
def pool(xapi, admin_user, users):
    """A shared pool on the XAPI server, synced."""
    pool = services.create_pool(
        user=admin_user,
        name="pool0",
        driver="xenapi",
        url=xapi.url,
        username="root",
        password="xapi-secret",
    )
    services.enqueue_sync(user=admin_user, pool=pool)
    run_burst_worker("virt")
    pool.refresh_from_db()
    assert pool.last_sync is not None, pool.last_sync_error
    return pool


def made(*hostnames, user="alice"):
    """VMs created through mkvm and the worker, each with one VIF on the pool network."""
    for hostname in hostnames:
        mkvm(hostname, "--network", NETWORK, user=user)
    run_burst_worker("virt")
    vms = list(Vm.objects.filter(server__hostname__in=hostnames).order_by("server__hostname"))
    assert [vm.state for vm in vms] == [Vm.State.PRESENT] * len(hostnames)
    return vms


# mkvm -----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_mkvm_creates_the_vm_on_the_hypervisor(xapi, pool, tenants):
    network2 = xapi.record("network", xapi.network2)["uuid"]
    output = mkvm(
        "web01",
        "--network",
        NETWORK,
        "--network",
        network2,
        "--memory",
        "2G",
        "--disk",
        "20G",
        "--sr",
        "Local storage",
    )
    vm = Vm.objects.get(server__hostname="web01")
    macs = inventory_macs(vm)
    assert len(macs) == 2
    assert re.fullmatch(
        rf"web01: VM on pool0, 1 vCPU, 2G memory, MACs [0-9a-f:, ]+; job {vm.job_id} queued\n",
        output,
    ), output
    assert vm.job.kind == services.CREATE_JOB_KIND

    run_burst_worker("virt")

    vm.refresh_from_db()
    assert vm.state == Vm.State.PRESENT, vm.last_error
    assert Job.objects.get(pk=vm.job_id).status == Job.Status.SUCCEEDED
    assert (vm.server.tenant, vm.server.kind) == (tenants[0], Server.Kind.VIRTUAL)
    record = xapi.record("VM", vm.uuid)
    # vCPUs from the template, memory as asked, started (no --no-start).
    assert (record["name_label"], record["VCPUs_max"], record["memory_static_max"]) == (
        "web01",
        "1",
        str(2 * GIB),
    )
    assert record["power_state"] == "Running"
    assert xapi_macs(xapi, vm.uuid) == macs
    networks = {xapi.record("VIF", ref)["network"] for ref in record["VIFs"]}
    assert networks == {xapi.network, xapi.network2}
    disks = [xapi.record("VBD", ref)["VDI"] for ref in record["VBDs"]]
    assert [xapi.record("VDI", vdi)["virtual_size"] for vdi in disks] == [str(20 * GIB)]


@pytest.mark.django_db(transaction=True)
def test_mkvm_wait_follows_the_job_to_the_end(xapi, pool):
    thread = run_waiting(
        lambda: mkvm("web01", "--network", NETWORK, "--no-start", "--wait", "--interval", "0.1")
    )

    assert thread.error is None, thread.error
    vm = Vm.objects.get(server__hostname="web01")
    lines = thread.result.splitlines()
    assert lines[0].endswith(f"job {vm.job_id} queued")
    assert any(
        line.startswith(f"web01 virt.create job {vm.job_id}: [100%] succeeded") for line in lines
    ), lines
    assert lines[-1].startswith("web01: present, power halted")
    assert xapi.record("VM", vm.uuid)["power_state"] == "Halted"
    assert xapi_macs(xapi, vm.uuid) == inventory_macs(vm)


@pytest.mark.django_db(transaction=True)
def test_mkvm_install_wait_follows_create_build_and_return_to_disk(xapi, pool):
    make_profile("bookworm", family="debian")
    queue = django_rq.get_queue("virt")
    listener = BurstWorker([queue], connection=queue.connection)
    listener.register_birth()
    try:
        thread = Beside(
            lambda: mkvm(
                "web01",
                "--network",
                NETWORK,
                "--install",
                "bookworm",
                "--wait",
                "--interval",
                "0.1",
            )
        )
        thread.start()
        wait_for(lambda: queue.count == 1 or not thread.is_alive(), "the create job")
        run_burst_worker("virt")
        vm = Vm.objects.get(server__hostname="web01")
        assert (vm.state, vm.boot) == (Vm.State.INSTALLING, "network")
        # The VM is building: the command keeps following it.
        assert thread.is_alive()
        deploy = ServerDeploy.objects.get(server=vm.server)
        token = tokens.token_for(deploy.token_nonce)
        assert Client().post(f"/boot/build/{token}/done").status_code == 200
        run_burst_worker("virt")
        thread.join(WAIT_SECONDS)
    finally:
        listener.register_death()

    assert not thread.is_alive()
    assert thread.error is None, thread.error
    vm.refresh_from_db()
    vm_jobs = Job.objects.filter(content_type__model="vm", object_id=str(vm.pk)).order_by("pk")
    create, finish = vm_jobs
    assert create.kind == services.CREATE_JOB_KIND
    assert finish.kind == services.FINISH_INSTALL_JOB_KIND
    lines = thread.result.splitlines()
    for job in (create, finish):
        assert any(
            line.startswith(f"web01 {job.kind} job {job.pk}: [100%] succeeded") for line in lines
        ), lines
    assert lines[-1] == "web01: present, power running, boot pv"
    record = xapi.record("VM", vm.uuid)
    assert (record["HVM_boot_policy"], record["PV_bootloader"]) == ("", "pygrub")
    assert record["power_state"] == "Running"
    assert xapi_macs(xapi, vm.uuid) == inventory_macs(vm)


@pytest.mark.django_db(transaction=True)
def test_mkvm_wait_exits_non_zero_when_the_job_fails(xapi, pool):
    # The pool's default SR (100 GiB) cannot hold a 200 GiB disk: the hypervisor refuses.
    thread = run_waiting(lambda: mkvm("web01", "--disk", "200G", "--wait", "--interval", "0.1"))

    assert isinstance(thread.error, CommandError)
    assert thread.error.returncode == 1
    assert str(thread.error).startswith("web01: virt.create job ")
    assert Vm.objects.get(server__hostname="web01").state == Vm.State.FAILED
    assert "web01" not in guests(xapi)


@pytest.mark.django_db(transaction=True)
def test_mkvm_errors_name_the_option_and_create_nothing(xapi, pool):
    cases = [
        (("--pool", "nope"), "no pool 'nope'"),
        (("--network", "Nowhere"), "no network 'Nowhere' in pool pool0"),
        (("--sr", "Nothing"), "no storage repository 'Nothing' in pool pool0"),
        (("--memory", "lots"), "--memory: "),
        (("--disk", "huge"), "--disk: 'huge' is not a size"),
        (("--sr", "Small storage", "--disk", "20G"), "--disk: Small storage has "),
        (("--vcpus", "0"), "--vcpus: "),
        (("--no-start", "--install", "nope"), "--install: No profile named 'nope'."),
        (("--tenant", "globex"), "--tenant: No tenant 'globex'."),
    ]
    for args, message in cases:
        with pytest.raises(CommandError, match=f"^{re.escape(message)}"):
            mkvm("web01", *args)
    with pytest.raises(CommandError, match="^no VM template 'Nope' in pool pool0$"):
        command("mkvm", "web01", "--pool", "pool0", "--template", "Nope", user="alice")
    # An admin of no tenant must say which tenant a VM of a shared pool is for.
    with pytest.raises(CommandError, match=r"^name the VM's tenant with --tenant SLUG$"):
        mkvm("web01", user="root")
    with pytest.raises(CommandError, match="no worker is listening on queue 'virt'"):
        mkvm("web01", "--wait")

    assert not Vm.objects.exists()
    assert not Server.objects.exists()
    run_burst_worker("virt")
    assert guests(xapi) == []


# lsvm -----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_lsvm_lists_the_users_vms_only(xapi, pool):
    web01, web02 = made("web01", "web02", user="alice")
    (db01,) = made("db01", user="bob")

    table = command("lsvm", user="alice").splitlines()
    assert table[0].split() == [
        "HOSTNAME",
        "POOL",
        "STATE",
        "POWER",
        "VCPUS",
        "MEMORY",
        "HOST",
        "MACS",
    ]
    assert [line.split()[0] for line in table[1:]] == ["web01", "web02"]
    first = table[1].split()
    assert first[1:6] == ["pool0", "present", "running", "1", "1G"]
    assert first[-1] == ",".join(inventory_macs(web01))
    assert xapi_macs(xapi, web01.uuid) == inventory_macs(web01)

    listed = json.loads(command("lsvm", "--json", user="bob"))
    assert [row["hostname"] for row in listed] == ["db01"]
    assert listed[0]["macs"] == inventory_macs(db01) == xapi_macs(xapi, db01.uuid)
    assert listed[0]["memory_bytes"] == GIB

    assert command("lsvm", "web02", user="alice").splitlines()[1].startswith("web02 ")
    assert len(command("lsvm", "--tenant", "globex", user="alice").splitlines()) == 1
    assert len(command("lsvm", "--state", "failed", user="alice").splitlines()) == 1
    assert len(command("lsvm", "--pool", "pool0", user="alice").splitlines()) == 3
    # Another tenant's VM reads exactly like one that does not exist.
    with pytest.raises(CommandError, match=r"No server or tag matches: web01\."):
        command("lsvm", "web01", user="bob")
    with pytest.raises(CommandError, match=r"No server or tag matches: nothing01\."):
        command("lsvm", "nothing01", user="bob")
    all_of_them = command("lsvm", user="root").splitlines()[1:]
    assert [line.split()[0] for line in all_of_them] == ["db01", "web01", "web02"]


# rmvm -----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_rmvm_without_yes_names_the_vms_and_removes_nothing(xapi, pool):
    made("web01", "web02")

    with pytest.raises(CommandError) as refused:
        command("rmvm", "web[01-02]", user="alice")

    assert str(refused.value) == "would destroy 2 VMs: web01, web02; add --yes to destroy them"
    assert not Job.objects.filter(kind=services.DESTROY_JOB_KIND).exists()
    assert Vm.objects.count() == 2
    assert guests(xapi) == ["web01", "web02"]


@pytest.mark.django_db(transaction=True)
def test_rmvm_removes_from_the_hypervisor_and_the_inventory(xapi, pool):
    web01, web02 = made("web01", "web02")
    uuids = [web01.uuid, web02.uuid]

    output = command("rmvm", "web[01-02]", "--yes", user="alice")
    jobs = list(Job.objects.filter(kind=services.DESTROY_JOB_KIND).order_by("object_repr"))
    assert output.splitlines() == [f"{job.object_repr}: job {job.pk} queued" for job in jobs]
    assert [job.object_repr for job in jobs] == ["web01", "web02"]
    run_burst_worker("virt")

    assert [Job.objects.get(pk=job.pk).status for job in jobs] == [Job.Status.SUCCEEDED] * 2
    assert guests(xapi) == []
    for uuid in uuids:
        with pytest.raises(KeyError):
            xapi.ref("VM", uuid)
    assert not Vm.objects.exists()
    assert not Server.objects.filter(hostname__in=["web01", "web02"]).exists()


@pytest.mark.django_db(transaction=True)
def test_rmvm_wait_follows_the_jobs(xapi, pool):
    made("web01")

    thread = run_waiting(
        lambda: command("rmvm", "web01", "--yes", "--wait", "--interval", "0.1", user="alice")
    )

    assert thread.error is None, thread.error
    lines = thread.result.splitlines()
    assert any(line.startswith("web01: [100%] succeeded") for line in lines), lines
    assert lines[-1] == "1 VM: 1 destroyed, 0 failed"
    assert guests(xapi) == []


@pytest.mark.django_db(transaction=True)
def test_another_tenant_cannot_remove_a_vm(xapi, pool, make_user, tenants):
    (web01,) = made("web01", user="alice")
    make_user("watcher", roles=["vm-operator"], tenants=[tenants[0]])

    with pytest.raises(CommandError, match=r"^No server or tag matches: web01\.$"):
        command("rmvm", "web01", "--yes", user="bob")
    # Seeing a VM is not enough to destroy it.
    with pytest.raises(CommandError, match=r"^permission denied: .*virt\.delete_vm"):
        command("rmvm", "web01", "--yes", user="watcher")

    run_burst_worker("virt")
    assert not Job.objects.filter(kind=services.DESTROY_JOB_KIND).exists()
    assert Vm.objects.get(pk=web01.pk).state == Vm.State.PRESENT
    assert guests(xapi) == ["web01"]


# vmsync ---------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_vmsync_wait_prints_what_the_sync_found(xapi, pool, admin_user):
    xapi.add_host("xen3", "192.0.2.13")

    thread = run_waiting(
        lambda: command("vmsync", "pool0", "--wait", "--interval", "0.1", user="root")
    )

    assert thread.error is None, thread.error
    job = Job.objects.filter(kind=services.SYNC_JOB_KIND).latest("pk")
    assert job.status == Job.Status.SUCCEEDED
    lines = thread.result.splitlines()
    assert lines[0] == f"pool0: job {job.pk} queued"
    assert f"pool0: {counts_text(job.result)}" in lines
    assert lines[-1] == "1 pool: 1 synced, 0 failed"
    assert sorted(Host.objects.filter(pool=pool).values_list("name", flat=True)) == [
        "xen1",
        "xen2",
        "xen3",
    ]


@pytest.mark.django_db(transaction=True)
def test_vmsync_rules(xapi, pool):
    with pytest.raises(CommandError, match="^no pool 'nope'$"):
        command("vmsync", "nope", user="root")
    with pytest.raises(CommandError, match=r"^permission denied"):
        command("vmsync", "pool0", user="alice")
    with pytest.raises(CommandError, match="no worker is listening on queue 'virt'"):
        command("vmsync", "pool0", "--wait", user="root")
    assert Job.objects.filter(kind=services.SYNC_JOB_KIND).count() == 1  # the fixture's

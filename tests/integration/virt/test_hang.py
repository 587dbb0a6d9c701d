"""A pool master that accepts the connection and never answers: the virt job fails with a clear
timeout after DCPORTAL_VIRT_TIMEOUT (1 s here) instead of holding its worker, gives its pool
slot back, and the next job of the same pool runs. Real XenAPI client, real RQ worker, the
project's XAPI server with its `hangs` option. About 5 s."""

import pytest
from django.db import transaction

from dcportal.models import Job
from tests.fakes.xapi_server import XapiServer
from tests.workers import run_burst_worker
from virt import services
from virt.drivers import xenapi
from virt.models import Network, Pool, StorageRepository, VmTemplate

pytestmark = pytest.mark.django_db(transaction=True)  # the worker commits for real
GIB = 1024**3


@pytest.fixture
def xapi():
    with XapiServer() as running:
        yield running
    xenapi.close_all()


def run_job(job):
    run_burst_worker("virt")
    job.refresh_from_db()
    return job


def test_a_hanging_master_times_out_and_the_next_job_of_the_pool_runs(
    xapi, settings, admin_user, tenants
):
    settings.VIRT_TIMEOUT = 1
    # A slot kept by the hung job would make the next job give up after this, not run.
    settings.VIRT_SLOT_WAIT = 3
    pool = Pool.objects.create(
        name="pool0",
        driver="xenapi",
        url=xapi.url,
        username="root",
        password="xapi-secret",
        tenant=tenants[0],
        max_sessions=1,
    )
    with transaction.atomic():
        sync = services.enqueue_sync(user=admin_user, pool=pool)
    assert run_job(sync).status == Job.Status.SUCCEEDED, sync.error
    with transaction.atomic():
        vm = services.create_vm(
            user=admin_user,
            pool=pool,
            name="web01",
            tenant=tenants[0],
            template=VmTemplate.objects.get(pool=pool),
            vcpus=1,
            memory_bytes=GIB,
            storage=StorageRepository.objects.get(pool=pool, name="Local storage"),
            networks=list(Network.objects.filter(pool=pool).order_by("name")[:1]),
            start=False,
        )
    assert run_job(vm.job).status == Job.Status.SUCCEEDED
    vm.refresh_from_db()

    logouts = xapi.logouts
    xapi.hangs = {"VM.start"}
    with transaction.atomic():
        start = services.vm_action(user=admin_user, vm=vm, action="start")
        after = services.enqueue_sync(user=admin_user, pool=pool)
    run_burst_worker("virt")
    start.refresh_from_db()
    after.refresh_from_db()

    assert xapi.hung == 1
    assert start.status == Job.Status.FAILED
    assert f"TIMEOUT: {xapi.url} did not answer within 1 s (VM.start)." in start.error
    assert after.status == Job.Status.SUCCEEDED, after.error
    assert services.current_slots(pool) == 0
    vm.refresh_from_db()
    assert vm.power_state == "halted"
    assert "did not answer within 1 s" in vm.last_error
    # Only the sync's session was logged out: the hung one is left to expire on the master,
    # since a master that did not answer the call would not answer its logout either.
    assert xapi.logouts == logouts + 1
    assert xapi.live_sessions == 1

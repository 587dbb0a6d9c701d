"""VM creation at scale against one pool, with its session limit under load. Run: make bench-virt.

Starts the project's XAPI server (tests/fakes/xapi_server.py) with BENCH_XAPI_DELAY (0.01 s)
per call, adds it as a pool with max_sessions BENCH_MAX_SESSIONS (4) and syncs it, queues
BENCH_VMS (500) VM creations through virt.services.create_vm, then lets BENCH_WORKERS (8) RQ
worker processes (`manage.py rqworker virt --burst`) run them. Prints the wall time, VMs per
second, the most sessions and operations the XAPI server saw at once, logins and logouts, and
the failures. The exit status is 1 if a creation failed or the pool saw more sessions than its
limit; timings are only printed.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dcportal.settings")
django.setup()

import django_rq  # noqa: E402
from django.db import transaction  # noqa: E402
from rq import SimpleWorker  # noqa: E402

from dcportal.models import Job, Tenant, User  # noqa: E402
from tests.fakes.xapi_server import XapiServer  # noqa: E402
from virt import services  # noqa: E402
from virt.drivers import xenapi  # noqa: E402
from virt.models import Network, Vm, VmTemplate  # noqa: E402

VMS = int(os.environ.get("BENCH_VMS", "500"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "8"))
MAX_SESSIONS = int(os.environ.get("BENCH_MAX_SESSIONS", "4"))
DELAY = float(os.environ.get("BENCH_XAPI_DELAY", "0.01"))
MANAGE = [sys.executable, str(Path(__file__).resolve().parent.parent / "manage.py")]
QUEUE = "virt"
GIB = 1024**3
WORKER_LOG = Path(__file__).resolve().parent.parent / "var" / "bench-virt-workers.log"


def figure(name, value, unit=""):
    print(f"  {name:46} {value:>12} {unit}", flush=True)


def room_for(xapi, count):
    """A default SR large enough for every VM's copy of the template's disk."""
    sr = xapi.add_sr("Bench storage", count * 16 * GIB)
    with xapi.lock:
        xapi.objects["pool"][xapi.pool]["default_SR"] = sr


def synced_pool(xapi, user):
    pool = services.create_pool(
        user=user,
        name="bench-pool",
        driver="xenapi",
        url=xapi.url,
        username=xapi.username,
        password=xapi.password,
        max_sessions=MAX_SESSIONS,
    )
    with transaction.atomic():
        job = services.enqueue_sync(user=user, pool=pool)
    queue = django_rq.get_queue(QUEUE)
    SimpleWorker([queue], connection=queue.connection).work(burst=True, logging_level="WARNING")
    job.refresh_from_db()
    if job.status != Job.Status.SUCCEEDED:
        raise SystemExit(f"the sync of the pool failed: {job.error}")
    xenapi.close_all()
    return pool


def queue_creations(user, pool, tenant):
    template = VmTemplate.objects.get(pool=pool)
    network = Network.objects.filter(pool=pool).order_by("name").first()
    with transaction.atomic():
        return [
            services.create_vm(
                user=user,
                pool=pool,
                name=f"vm{n:05d}",
                tenant=tenant,
                template=template,
                vcpus=1,
                memory_bytes=template.memory_bytes,
                networks=[network],
            )
            for n in range(VMS)
        ]


def reset_counters(xapi):
    """Count from here on: the sync's session is not part of the figures."""
    with xapi.lock:
        xapi.logins = xapi.logouts = 0
        xapi.max_sessions = len(xapi.objects["session"])
        xapi.max_active_calls = xapi.active_calls


def run_workers(count):
    """Start `count` burst workers and wait until the queue is drained and they have left."""
    WORKER_LOG.parent.mkdir(parents=True, exist_ok=True)
    with WORKER_LOG.open("w") as log:
        workers = [
            subprocess.Popen(
                [*MANAGE, "rqworker", QUEUE, "--burst"], stdout=log, stderr=subprocess.STDOUT
            )
            for _ in range(count)
        ]
        return [worker.wait() for worker in workers]


def main():
    print(f"dcportal virt benchmark: {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}")
    django_rq.get_queue(QUEUE).empty()
    user = User.objects.create_user("bench-admin", password=None, is_superuser=True)
    tenant = Tenant.objects.create(name="Bench", slug="bench")
    with XapiServer(delay=DELAY) as xapi:
        room_for(xapi, VMS)
        pool = synced_pool(xapi, user)

        started = time.perf_counter()
        vms = queue_creations(user, pool, tenant)
        queue_seconds = time.perf_counter() - started

        reset_counters(xapi)
        started = time.perf_counter()
        exits = run_workers(WORKERS)
        wall = time.perf_counter() - started

        ids = [vm.pk for vm in vms]
        present = Vm.objects.filter(pk__in=ids, state=Vm.State.PRESENT).count()
        failed = Job.objects.filter(
            kind=services.CREATE_JOB_KIND, object_id__in=[str(pk) for pk in ids]
        ).exclude(status=Job.Status.SUCCEEDED)
        with xapi.lock:
            peak_sessions, peak_calls = xapi.max_sessions, xapi.max_active_calls
            logins, logouts, alive = xapi.logins, xapi.logouts, len(xapi.objects["session"])

    print(
        f"{VMS} VMs from a template, {WORKERS} worker processes, pool max_sessions "
        f"{MAX_SESSIONS}, {DELAY * 1000:g} ms per XAPI call"
    )
    figure("queue (create_vm, one transaction)", f"{VMS / queue_seconds:.1f}", "VMs/s")
    figure("wall time, workers start to last exit", f"{wall:.2f}", "s")
    figure("created", f"{VMS / wall:.1f}", "VMs/s")
    figure("most sessions at once on the XAPI server", peak_sessions, f"(limit {MAX_SESSIONS})")
    figure("most operations at once on the XAPI server", peak_calls)
    figure("logins / logouts", f"{logins} / {logouts}")
    figure("sessions still open", alive)
    figure("VMs present", f"{present} / {VMS}")
    figure("failed create jobs", failed.count())
    for job in failed.order_by("pk")[:5]:
        print(f"    {job.object_repr}: {job.status} {job.error}")
    if any(exits):
        print(f"  worker exit statuses: {exits} (their output: {WORKER_LOG})")
    return 1 if failed.exists() or peak_sessions > MAX_SESSIONS or any(exits) else 0


if __name__ == "__main__":
    sys.exit(main())

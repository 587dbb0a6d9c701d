"""A job whose worker dies is marked failed, never left "running"; a job Redis lost is queued
again. The first test kills a real `manage.py rqworker` process."""

import os
import signal
import subprocess
import sys
import time
import urllib.parse
from datetime import timedelta
from io import StringIO
from pathlib import Path

import django_rq
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone
from redis.exceptions import ConnectionError as RedisConnectionError
from rq import worker_registration
from rq.job import Job as RQJob
from rq.worker import Worker

from dcportal import jobs
from dcportal.management.commands import housekeeping
from dcportal.models import Job, JobLog

pytestmark = pytest.mark.slow

PROJECT_ROOT = Path(__file__).resolve().parents[3]
WAIT_SECONDS = 30


def test_database_url():
    """A URL for the test database this session uses, so a subprocess sees the same rows."""
    sd = connection.settings_dict
    user = urllib.parse.quote(sd["USER"] or "", safe="")
    password = urllib.parse.quote(sd["PASSWORD"] or "", safe="")
    credentials = f"{user}:{password}@" if password else f"{user}@" if user else ""
    # HOST may be a unix socket directory: percent-encoded, it fits in the host part.
    host = urllib.parse.quote(sd["HOST"] or "", safe="")
    port = f":{sd['PORT']}" if sd["PORT"] else ""
    return f"postgres://{credentials}{host}{port}/{sd['NAME']}"


test_database_url.__test__ = False  # a helper, despite its name


def wait_for(predicate, what, timeout=WAIT_SECONDS, process=None, output=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        if process is not None and process.poll() is not None:
            log = output.read_text() if output else ""
            pytest.fail(f"worker exited ({process.returncode}) before {what}:\n{log[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def forget_worker(queue, pid):
    """Drop a SIGKILLed worker's registration from Redis: it never got to do that itself."""
    for worker in Worker.all(queue=queue):
        if worker.pid == pid:
            worker_registration.unregister(worker)
            queue.connection.delete(worker.key)


@pytest.mark.django_db(transaction=True)
def test_job_of_a_killed_worker_is_marked_failed(admin_user, tmp_path):
    with transaction.atomic():
        job = jobs.enqueue("dcportal.ping", user=admin_user, params={"seconds": 30, "steps": 5})
    queue = django_rq.get_queue("default")
    output = tmp_path / "worker.log"
    env = {**os.environ, "DATABASE_URL": test_database_url()}
    with output.open("wb") as sink:
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "rqworker", "default"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def running():
            job.refresh_from_db()
            return job.status == Job.Status.RUNNING and job.worker_pid

        wait_for(running, "the job to start", process=worker, output=output)
        assert job.worker_host
        assert job.worker_name

        # The worker's group, and the work horse running the job: RQ forks it into a session
        # of its own, so the worker's group alone would leave the job running to completion.
        horse_group = os.getpgid(job.worker_pid)
        os.killpg(worker.pid, signal.SIGKILL)
        os.killpg(horse_group, signal.SIGKILL)
        worker.wait(timeout=WAIT_SECONDS)

        out = StringIO()

        def reaped():
            call_command("housekeeping", stdout=out)
            job.refresh_from_db()
            return job.status != Job.Status.RUNNING

        wait_for(reaped, "housekeeping to notice the dead worker")
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=WAIT_SECONDS)
        forget_worker(queue, worker.pid)

    assert job.status == Job.Status.FAILED
    assert "worker running this job died" in job.error
    assert f"pid {job.worker_pid}" in job.error
    assert job.finished is not None
    assert f"job {job.pk}: worker died, marked failed" in out.getvalue()
    assert JobLog.objects.filter(job=job, level="error", message__contains="Worker died").exists()
    assert not Job.objects.filter(status=Job.Status.RUNNING).exists()
    # Reaping again (any number of housekeepers may run) changes nothing.
    assert jobs.reap() == ([], [])
    assert JobLog.objects.filter(job=job, level="error").count() == 1


@pytest.mark.django_db(transaction=True)
def test_running_job_with_a_dead_pid_on_this_host_is_failed(admin_user):
    with transaction.atomic():
        job = jobs.enqueue("dcportal.ping", user=admin_user)
    dead_pid = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_pid.wait()  # reaped by us: its pid is now unused
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.RUNNING,
        worker_host=jobs.HOSTNAME,
        worker_pid=dead_pid.pid,
        started=timezone.now(),
    )

    failed, requeued = jobs.reap()

    assert (failed, requeued) == ([job.pk], [])
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert f"pid {dead_pid.pid}" in job.error


@pytest.mark.django_db(transaction=True)
def test_running_job_whose_worker_is_a_zombie_is_failed(admin_user):
    # A killed work horse nobody has reaped yet still answers kill(pid, 0).
    with transaction.atomic():
        job = jobs.enqueue("dcportal.ping", user=admin_user)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        stat = Path(f"/proc/{child.pid}/stat")
        wait_for(lambda: stat.read_text().rpartition(")")[2].split()[0] == "Z", "the child to exit")
        Job.objects.filter(pk=job.pk).update(
            status=Job.Status.RUNNING,
            worker_host=jobs.HOSTNAME,
            worker_pid=child.pid,
            started=timezone.now(),
        )

        failed, _ = jobs.reap()
    finally:
        child.wait()

    assert failed == [job.pk]


@pytest.mark.django_db(transaction=True)
def test_running_job_with_a_live_worker_is_left_alone(admin_user):
    with transaction.atomic():
        job = jobs.enqueue("dcportal.ping", user=admin_user)
    # This very process stands in for the worker: alive, on this host, its RQ entry present.
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.RUNNING,
        worker_host=jobs.HOSTNAME,
        worker_pid=os.getpid(),
        started=timezone.now(),
    )

    assert jobs.reap() == ([], [])
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING


@pytest.mark.django_db(transaction=True)
def test_running_job_on_another_host_whose_worker_expired_is_failed(admin_user):
    with transaction.atomic():
        job = jobs.enqueue("dcportal.ping", user=admin_user)
    # No heartbeat key for that worker name in Redis: it died elsewhere.
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.RUNNING,
        worker_host="elsewhere",
        worker_pid=1234,
        worker_name="gone-worker",
        started=timezone.now(),
    )

    failed, _ = jobs.reap()

    assert failed == [job.pk]
    job.refresh_from_db()
    assert "gone-worker on elsewhere" in job.error


@pytest.mark.django_db(transaction=True)
def test_job_lost_by_redis_is_requeued(admin_user):
    with transaction.atomic():
        job = jobs.enqueue("dcportal.ping", user=admin_user)
    queue = django_rq.get_queue("default")
    assert queue.job_ids == [job.rq_id]
    # Redis restarted without persistence: the entry is gone, the row still says queued.
    RQJob.fetch(job.rq_id, connection=queue.connection).delete()
    assert queue.count == 0
    past = timezone.now() - timedelta(seconds=settings.JOB_REQUEUE_AFTER + 5)
    Job.objects.filter(pk=job.pk).update(created=past)

    failed, requeued = jobs.reap()

    assert (failed, requeued) == ([], [job.pk])
    assert queue.job_ids == [job.rq_id]
    assert RQJob.fetch(job.rq_id, connection=queue.connection).args == (job.pk,)
    assert JobLog.objects.filter(job=job, level="warning", message__contains="re-enqueued").exists()
    # Once it is back in the queue, a second pass leaves it be.
    assert jobs.reap() == ([], [])
    assert queue.count == 1


@pytest.mark.django_db(transaction=True)
def test_recent_queued_job_is_not_requeued(admin_user):
    # A fresh row may simply not have been pushed yet (its transaction commits right now).
    with transaction.atomic():
        job = jobs.enqueue("dcportal.ping", user=admin_user)
    django_rq.get_queue("default").empty()

    assert jobs.reap() == ([], [])
    assert Job.objects.get(pk=job.pk).status == Job.Status.QUEUED


@pytest.mark.django_db(transaction=True)
def test_housekeeping_reports_requeued_jobs(admin_user):
    with transaction.atomic():
        job = jobs.enqueue("dcportal.ping", user=admin_user)
    django_rq.get_queue("default").empty()
    past = timezone.now() - timedelta(seconds=settings.JOB_REQUEUE_AFTER + 5)
    Job.objects.filter(pk=job.pk).update(created=past)
    out = StringIO()

    call_command("housekeeping", stdout=out)

    assert f"job {job.pk}: lost by the queue, re-enqueued" in out.getvalue()
    assert django_rq.get_queue("default").job_ids == [job.rq_id]


@pytest.mark.django_db(transaction=True)
def test_repeating_housekeeping_survives_an_outage(admin_user, monkeypatch):
    with transaction.atomic():
        job = jobs.enqueue("dcportal.ping", user=admin_user)
    django_rq.get_queue("default").empty()
    Job.objects.filter(pk=job.pk).update(
        created=timezone.now() - timedelta(seconds=settings.JOB_REQUEUE_AFTER + 5)
    )
    real_reap, passes = jobs.reap, []

    def reap_after_an_outage():
        passes.append(len(passes))
        if len(passes) == 1:
            raise RedisConnectionError("Redis is restarting")
        return real_reap()

    def sleep(seconds):
        if len(passes) >= 2:
            raise KeyboardInterrupt  # how an operator stops `housekeeping --every`

    monkeypatch.setattr(jobs, "reap", reap_after_an_outage)
    monkeypatch.setattr(housekeeping.time, "sleep", sleep)
    out, err = StringIO(), StringIO()

    call_command("housekeeping", "--every", "30", stdout=out, stderr=err)

    assert "ConnectionError: Redis is restarting; trying again" in err.getvalue()
    assert f"job {job.pk}: lost by the queue, re-enqueued" in out.getvalue()


@pytest.mark.django_db
def test_single_housekeeping_run_reports_an_outage(monkeypatch):
    def reap():
        raise RedisConnectionError("Redis is down")

    monkeypatch.setattr(jobs, "reap", reap)

    # Run once (cron): the failure must show in the exit status, not be swallowed.
    with pytest.raises(RedisConnectionError):
        call_command("housekeeping")

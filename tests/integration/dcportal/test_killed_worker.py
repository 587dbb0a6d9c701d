"""A job whose worker dies is marked failed, never left "running"; a job Redis lost is queued
again. The first two tests kill a real `manage.py rqworker` process (about 10 s each) and run
the real `manage.py housekeeping`; the rest plant the states such a death leaves."""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path

import django_rq
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import OperationalError, transaction
from django.utils import timezone
from redis.exceptions import ConnectionError as RedisConnectionError
from rq import worker_registration
from rq.job import Job as RQJob
from rq.worker import Worker

from dcportal import jobs
from dcportal.management.commands import housekeeping
from dcportal.models import Job, JobLog
from tests.integration.dcportal.fault_helpers import test_database_url
from tests.workers import run_burst_worker

pytestmark = pytest.mark.slow

PROJECT_ROOT = Path(__file__).resolve().parents[3]
WAIT_SECONDS = 30


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


def start_worker(output, *args):
    """`manage.py rqworker default ARGS` on the session's Redis and test database."""
    env = {**os.environ, "DATABASE_URL": test_database_url()}
    with output.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "manage.py", "rqworker", "default", *args],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def run_housekeeping():
    """A real `manage.py housekeeping` run, as cron or `make run` starts it; its output."""
    env = {**os.environ, "DATABASE_URL": test_database_url()}
    result = subprocess.run(
        [sys.executable, "manage.py", "housekeeping"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def started_ids(queue):
    return [job_id for job_id, _ in queue.started_job_registry.get_job_and_execution_ids()]


@pytest.mark.django_db(transaction=True)
def test_job_of_a_killed_worker_is_marked_failed(admin_user, tmp_path):
    """The whole worker dies mid-job (OOM killer, `kill -9` of its group, a lost machine)."""
    with transaction.atomic():
        job = jobs.enqueue("dcportal.ping", user=admin_user, params={"seconds": 30, "steps": 5})
        behind = jobs.enqueue("dcportal.ping", user=admin_user, params={"steps": 1})
    queue = django_rq.get_queue("default")
    output = tmp_path / "worker.log"
    worker = start_worker(output)
    try:

        def running():
            job.refresh_from_db()
            return job.status == Job.Status.RUNNING and job.worker_pid

        wait_for(running, "the job to start", process=worker, output=output)
        assert job.worker_host
        assert job.worker_name
        assert started_ids(queue) == [job.rq_id]

        # The worker's group, and the work horse running the job: RQ forks it into a session
        # of its own, so the worker's group alone would leave the job running to completion.
        horse_group = os.getpgid(job.worker_pid)
        os.killpg(worker.pid, signal.SIGKILL)
        os.killpg(horse_group, signal.SIGKILL)
        worker.wait(timeout=WAIT_SECONDS)

        out = StringIO()

        def reaped():
            out.write(run_housekeeping())
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
    # RQ agrees at once, not only after its own cleanup an hour later (the job timeout).
    assert job.rq_id not in started_ids(queue)
    assert job.rq_id in queue.failed_job_registry.get_job_ids()
    assert RQJob.fetch(job.rq_id, connection=queue.connection).get_status() == "failed"
    # Reaping again (any number of housekeepers may run) changes nothing.
    assert jobs.reap() == ([], [])
    assert JobLog.objects.filter(job=job, level="error").count() == 1

    # The job queued behind it was never taken: the next worker runs it.
    assert queue.job_ids == [behind.rq_id]
    worker = start_worker(output, "--burst")
    assert worker.wait(timeout=WAIT_SECONDS) == 0, output.read_text()[-3000:]
    behind.refresh_from_db()
    assert behind.status == Job.Status.SUCCEEDED, behind.error
    assert behind.attempts == 1
    assert started_ids(queue) == []
    assert not Job.objects.filter(status=Job.Status.RUNNING).exists()


@pytest.mark.django_db(transaction=True)
def test_job_outlives_a_killed_worker_main_process(admin_user, tmp_path):
    """Only the worker's main process dies (`kill -9 <pid>`): its work horse, a session of its
    own, finishes the job and records it; the job queued behind waits for the next worker."""
    with transaction.atomic():
        job = jobs.enqueue("dcportal.ping", user=admin_user, params={"seconds": 3, "steps": 3})
        behind = jobs.enqueue("dcportal.ping", user=admin_user, params={"steps": 1})
    queue = django_rq.get_queue("default")
    output = tmp_path / "worker.log"
    worker = start_worker(output)
    try:

        def running():
            job.refresh_from_db()
            return job.status == Job.Status.RUNNING and job.worker_pid

        wait_for(running, "the job to start", process=worker, output=output)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=WAIT_SECONDS)

        def finished():
            job.refresh_from_db()
            return job.status in Job.FINISHED

        wait_for(finished, "the work horse to finish the job")
        # Nothing for housekeeping to fail: the job did not die with the worker.
        assert "worker died" not in run_housekeeping()
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=WAIT_SECONDS)
        forget_worker(queue, worker.pid)

    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.progress == 100
    assert started_ids(queue) == []
    assert queue.job_ids == [behind.rq_id]
    worker = start_worker(output, "--burst")
    assert worker.wait(timeout=WAIT_SECONDS) == 0, output.read_text()[-3000:]
    behind.refresh_from_db()
    assert behind.status == Job.Status.SUCCEEDED, behind.error
    assert not Job.objects.filter(status=Job.Status.RUNNING).exists()


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
def test_job_a_worker_took_while_the_database_was_away_is_requeued(admin_user, monkeypatch):
    with transaction.atomic():
        job = jobs.enqueue("dcportal.ping", user=admin_user, params={"steps": 1})
    queue = django_rq.get_queue("default")

    def database_away():
        raise OperationalError("connection to server on socket failed: No such file")

    # The worker takes the job and fails in execute() before the row says "running".
    with monkeypatch.context() as patch:
        patch.setattr(jobs, "close_old_connections", database_away)
        run_burst_worker("default")
    assert job.rq_id in queue.failed_job_registry.get_job_ids()
    job.refresh_from_db()
    assert (job.status, job.attempts) == (Job.Status.QUEUED, 0)
    Job.objects.filter(pk=job.pk).update(
        created=timezone.now() - timedelta(seconds=settings.JOB_REQUEUE_AFTER + 5)
    )

    assert jobs.reap() == ([], [job.pk])
    assert job.rq_id not in queue.failed_job_registry.get_job_ids()
    run_burst_worker("default")

    job.refresh_from_db()
    assert (job.status, job.attempts) == (Job.Status.SUCCEEDED, 1)
    assert jobs.reap() == ([], [])


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

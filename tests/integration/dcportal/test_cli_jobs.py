"""`manage.py jobs`: list, follow, cancel and the worker self-test, as the acting portal user."""

import json
import threading
import time
from io import StringIO

import django_rq
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections, transaction

from dcportal import jobs, services
from dcportal.models import AuditEvent, Job
from tests.workers import BurstWorker, run_burst_worker

WAIT_SECONDS = 30


def jobs_command(*args, user="root"):
    out = StringIO()
    call_command("jobs", *args, "--user", user, stdout=out)
    return out.getvalue()


def enqueue_committed(**kwargs):
    with transaction.atomic():
        return jobs.enqueue("dcportal.ping", **kwargs)


class CommandThread(threading.Thread):
    """Runs `manage.py jobs ...` beside the test, the way an operator's terminal would."""

    def __init__(self, *args):
        super().__init__(daemon=True)
        self.args, self.output, self.error = args, "", None

    def run(self):
        try:
            self.output = jobs_command(*self.args)
        except CommandError as exc:
            self.error = exc
        finally:
            connections.close_all()  # this thread's own database connection


def wait_for(predicate, what):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


# Listing --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_list_shows_visible_jobs(admin_user):
    first = jobs.enqueue("dcportal.ping", user=admin_user)
    second = jobs.enqueue("dcportal.ping", user=admin_user)
    Job.objects.filter(pk=first.pk).update(status=Job.Status.FAILED)

    lines = jobs_command().splitlines()

    assert lines[0].split() == ["ID", "STATUS", "PROG", "QUEUE", "KIND", "OBJECT", "CREATED"]
    rows = [line.split()[:5] for line in lines[1:]]
    assert rows == [
        [str(second.pk), "queued", "0%", "default", "dcportal.ping"],
        [str(first.pk), "failed", "0%", "default", "dcportal.ping"],
    ]


@pytest.mark.django_db
def test_list_filters_and_json(admin_user):
    queued = jobs.enqueue("dcportal.ping", user=admin_user)
    failed = jobs.enqueue("dcportal.ping", user=admin_user)
    Job.objects.filter(pk=failed.pk).update(status=Job.Status.FAILED, error="boom")

    listed = json.loads(jobs_command("--status", "failed", "--json"))
    limited = json.loads(jobs_command("--limit", "1", "--json"))
    other_kind = json.loads(jobs_command("--kind", "other.kind", "--json"))

    assert [(row["id"], row["status"], row["error"]) for row in listed] == [
        (failed.pk, "failed", "boom")
    ]
    assert [row["id"] for row in limited] == [failed.pk]
    assert other_kind == []
    assert queued.pk not in [row["id"] for row in listed]


@pytest.mark.django_db
def test_list_is_scoped_to_the_acting_user(admin_user, make_user, tenants):
    cred = services.create_credential(user=admin_user, tenant=tenants[1], name="c", secret="x")
    make_user("viewer", roles=["read-only"], tenants=[tenants[0]])
    hidden = jobs.enqueue("dcportal.ping", user=admin_user, obj=cred)

    listed = json.loads(jobs_command("--json", user="viewer"))

    assert listed == []
    with pytest.raises(CommandError, match=f"no job {hidden.pk}"):
        jobs_command("--follow", str(hidden.pk), user="viewer")


@pytest.mark.django_db
def test_unknown_user_is_a_command_error():
    with pytest.raises(CommandError, match="no active portal user 'ghost'"):
        jobs_command(user="ghost")


@pytest.mark.django_db
@pytest.mark.parametrize("option", ["--follow", "--cancel"])
def test_missing_job_is_a_command_error(admin_user, option):
    with pytest.raises(CommandError, match="no job 999999"):
        jobs_command(option, "999999")


# Following ------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_follow_prints_progress_until_the_job_is_done(admin_user):
    job = enqueue_committed(user=admin_user, params={"steps": 3, "seconds": 0.6})
    follower = CommandThread("--follow", str(job.pk))
    follower.start()

    run_burst_worker()
    follower.join(WAIT_SECONDS)

    assert not follower.is_alive()
    assert follower.error is None
    lines = follower.output.splitlines()
    log_lines = [line for line in lines if "step " in line and " of 3 on " in line]
    assert [line.split(" info    ")[1].split(" on ")[0] for line in log_lines] == [
        "step 1 of 3",
        "step 2 of 3",
        "step 3 of 3",
    ]
    progress = [line for line in lines if line.startswith("[")]
    assert progress[-1].startswith("[####################] 100% succeeded")
    percents = [int(line[22:26].strip().rstrip("%")) for line in progress]
    assert percents == sorted(percents)
    assert lines[-1].startswith("result: ")
    assert json.loads(lines[-1].removeprefix("result: "))["steps"] == 3


@pytest.mark.django_db(transaction=True)
def test_follow_of_a_failed_job_is_a_command_error(admin_user):
    job = enqueue_committed(user=admin_user)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.FAILED, error="RuntimeError: boom")

    with pytest.raises(CommandError, match=f"job {job.pk} failed: RuntimeError: boom"):
        jobs_command("--follow", str(job.pk))


@pytest.mark.django_db(transaction=True)
def test_follow_of_a_cancelled_job_is_a_command_error(admin_user):
    job = enqueue_committed(user=admin_user)
    jobs.cancel(job, user=admin_user)

    with pytest.raises(CommandError, match="was cancelled"):
        jobs_command("--follow", str(job.pk))


@pytest.mark.django_db
def test_follow_gives_up_after_its_timeout(admin_user):
    # Nobody runs this job: following it must not hang the terminal for ever.
    job = jobs.enqueue("dcportal.ping", user=admin_user)

    with pytest.raises(CommandError, match=f"job {job.pk} is still queued after 0.5 s"):
        jobs_command("--follow", str(job.pk), "--timeout", "0.5")

    assert Job.objects.get(pk=job.pk).status == Job.Status.QUEUED


# Cancelling -----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_cancel_queued_job(admin_user):
    job = enqueue_committed(user=admin_user)

    output = jobs_command("--cancel", str(job.pk))

    assert output.strip() == f"job {job.pk}: cancelled"
    assert Job.objects.get(pk=job.pk).status == Job.Status.CANCELLED
    assert django_rq.get_queue("default").count == 0
    event = AuditEvent.objects.get(object_id=str(job.pk), verb="cancel")
    # Done from a terminal: the audit trail says so.
    assert event.via == "cli"
    assert event.source.startswith("cli:")
    assert event.request_id


@pytest.mark.django_db
def test_cancel_running_job_only_requests_it(admin_user):
    job = jobs.enqueue("dcportal.ping", user=admin_user)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING)

    output = jobs_command("--cancel", str(job.pk))

    assert output.strip() == f"job {job.pk}: running (cancel requested)"
    job.refresh_from_db()
    assert (job.status, job.cancel_requested) == (Job.Status.RUNNING, True)


@pytest.mark.django_db
def test_cancel_of_another_users_job_needs_the_right(admin_user, make_user, tenants):
    cred = services.create_credential(user=admin_user, tenant=tenants[0], name="c", secret="x")
    make_user("viewer", roles=["read-only"], tenants=[tenants[0]])
    job = jobs.enqueue("dcportal.ping", user=admin_user, obj=cred)

    with pytest.raises(CommandError, match="permission denied"):
        jobs_command("--cancel", str(job.pk), user="viewer")

    job.refresh_from_db()
    assert (job.status, job.cancel_requested) == (Job.Status.QUEUED, False)
    assert not AuditEvent.objects.filter(object_id=str(job.pk), verb="cancel").exists()


# The worker self-test ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_ping_without_a_worker_fails_clearly(admin_user):
    with pytest.raises(CommandError, match="no worker is listening on queue 'power'") as caught:
        jobs_command("--ping", "--queue", "power")

    assert "rqworker power" in str(caught.value)
    assert not Job.objects.exists()  # no job left behind for nobody to run


@pytest.mark.django_db
def test_ping_on_an_unknown_queue_is_refused(admin_user):
    with pytest.raises(CommandError, match="invalid choice: 'nope'"):
        jobs_command("--ping", "--queue", "nope")

    assert not Job.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_ping_with_a_worker_runs_and_reports(admin_user):
    q = django_rq.get_queue("default")
    # A registered worker makes the command go ahead; the burst worker below does the work.
    listener = BurstWorker([q], connection=q.connection)
    listener.register_birth()
    try:
        pinger = CommandThread("--ping", "--seconds", "0.2")
        pinger.start()
        wait_for(lambda: q.count == 1, "the ping job to be queued")
        run_burst_worker()
        pinger.join(WAIT_SECONDS)
    finally:
        listener.register_death()

    assert not pinger.is_alive()
    assert pinger.error is None
    job = Job.objects.get(kind="dcportal.ping")
    assert job.status == Job.Status.SUCCEEDED
    assert job.user == admin_user
    assert pinger.output.startswith(f"job {job.pk} queued on default\n")
    assert "100% succeeded" in pinger.output

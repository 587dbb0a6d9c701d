"""Tracked background jobs.

A Job row is written in the caller's transaction and handed to RQ with `transaction.on_commit`,
so a rolled-back request never leaves a job behind and a worker never sees a job before its row.
RQ only ever runs `execute(job_id)`; the function registered for the job's kind receives a
JobContext (progress, log, cancellation) and the job's JSON params, which hold ids, not objects.
"""

import contextlib
import logging
import os
import socket
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import django_rq
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import close_old_connections, transaction
from django.utils import timezone
from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from rq.job import JobStatus
from rq.worker import Worker

from dcportal import audit, rbac, requestcontext
from dcportal.models import Job, JobLog

logger = logging.getLogger(__name__)
HOSTNAME = socket.gethostname()


@dataclass(frozen=True)
class JobKind:
    name: str
    function: object
    queue: str
    title: str


_KINDS = {}


def job_kind(name, *, queue="default", title=""):
    """Register a function as the body of jobs of kind `name`: fn(ctx, **params)."""
    if queue not in settings.JOB_QUEUES:
        raise ValueError(f"unknown queue {queue!r}; queues are {settings.JOB_QUEUES}")

    def register(function):
        _KINDS[name] = JobKind(name, function, queue, title or name)
        return function

    return register


def kinds():
    return dict(_KINDS)


class JobCancelled(Exception):
    pass


class JobContext:
    """What a job function gets to report with. Each call writes straight to the Job row."""

    def __init__(self, job):
        self.job = job

    @property
    def user(self):
        return self.job.user

    def progress(self, percent, message=None):
        """Set progress (0-100) and the current step; raises JobCancelled if cancel was asked."""
        percent = max(0, min(100, int(percent)))
        fields = {"progress": percent}
        if message is not None:
            fields["message"] = message[:300]
        Job.objects.filter(pk=self.job.pk).update(**fields)
        self.check_cancelled()

    def log(self, message, level="info"):
        JobLog.objects.create(job_id=self.job.pk, level=level, message=str(message))

    def check_cancelled(self):
        if Job.objects.filter(pk=self.job.pk, cancel_requested=True).exists():
            raise JobCancelled()


def workers(queue_name):
    """The live RQ workers listening on a queue (a dead one drops out when its key expires)."""
    return Worker.all(queue=queue_for(queue_name))


def queue_for(name):
    # This module decides when a job reaches Redis (on_commit in enqueue); django_rq's own
    # default ("on_db_commit") would defer a push made inside any atomic block once more.
    return django_rq.get_queue(name, commit_mode="auto")


def enqueue(kind, *, user=None, obj=None, params=None, queue=None, title=""):
    """Create the Job row now and hand it to RQ when the surrounding transaction commits."""
    try:
        spec = _KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown job kind {kind!r}") from None
    queue = queue or spec.queue
    if queue not in settings.JOB_QUEUES:
        # Checked now: after commit the push would fail where no caller sees it.
        raise ValueError(f"unknown queue {queue!r}; queues are {settings.JOB_QUEUES}")
    ctx = requestcontext.current()
    job = Job.objects.create(
        kind=kind,
        queue=queue,
        params=params or {},
        user=user if user is not None and user.is_authenticated else None,
        content_type=ContentType.objects.get_for_model(obj) if obj is not None else None,
        object_id=str(obj.pk) if obj is not None else "",
        object_repr=str(obj)[:200] if obj is not None else "",
        tenant_id=audit.tenant_id_of(obj) if obj is not None else None,
        request_id=ctx.request_id,
        message=title or spec.title,
    )
    transaction.on_commit(lambda: _push(job.pk, job.queue))
    return job


def _push(job_id, queue_name):
    """Hand a committed Job row to RQ; True once Redis has it.

    Redis being away must not turn the request that committed the row into an error (the row
    is already there, the caller would retry and create a second one): the job stays queued,
    says why on its log, and reap() pushes it once Redis answers again."""
    try:
        queue_for(queue_name).enqueue(
            execute, job_id, job_id=f"dcportal-job-{job_id}", result_ttl=3600, failure_ttl=86400
        )
    except RedisError as exc:
        logger.warning("job %s: queue %s unavailable (%s)", job_id, queue_name, exc)
        JobLog.objects.create(
            job_id=job_id,
            level="warning",
            message=f"Queue unavailable ({type(exc).__name__}); will be re-enqueued.",
        )
        return False
    return True


def _rq_worker_name():
    from rq import get_current_job

    current = get_current_job()
    return (getattr(current, "worker_name", None) or "") if current else ""


def execute(job_id):
    """The RQ entry point. Idempotent: only a queued job starts; anything else is left alone."""
    close_old_connections()
    with transaction.atomic():
        job = (
            Job.objects.select_for_update(of=("self",))
            .select_related("user")
            .filter(pk=job_id)
            .first()
        )
        if job is None or job.status != Job.Status.QUEUED:
            return None
        if job.cancel_requested:
            _finish(job, Job.Status.CANCELLED, message="Cancelled before it started")
            return None
        job.status = Job.Status.RUNNING
        job.started = timezone.now()
        job.attempts += 1
        job.worker_host = HOSTNAME
        job.worker_pid = os.getpid()
        job.worker_name = _rq_worker_name()
        job.save(
            update_fields=[
                "status",
                "started",
                "attempts",
                "worker_host",
                "worker_pid",
                "worker_name",
            ]
        )
    spec = _KINDS.get(job.kind)
    ctx = JobContext(job)
    with requestcontext.bound(
        request_id=job.request_id or requestcontext.new_request_id(),
        source=f"job:{job.pk}",
        via="job",
    ):
        try:
            if spec is None:
                raise LookupError(f"no function is registered for job kind {job.kind!r}")
            result = spec.function(ctx, **job.params)
        except JobCancelled:
            _finish(job, Job.Status.CANCELLED, message="Cancelled")
        except Exception as exc:
            logger.exception("job %s (%s) failed", job.pk, job.kind)
            _finish(
                job,
                Job.Status.FAILED,
                error=f"{type(exc).__name__}: {exc}",
                traceback=traceback.format_exc(),
            )
        else:
            try:
                _finish(job, Job.Status.SUCCEEDED, result=result, progress=100)
            except (TypeError, ValueError) as exc:
                # A result the JSON column cannot hold must not escape to RQ: the row would
                # stay "running" until the reaper took it for a dead worker.
                logger.exception("job %s (%s) returned an unstorable result", job.pk, job.kind)
                _finish(
                    job,
                    Job.Status.FAILED,
                    error=f"The job's result could not be stored: {exc}",
                    traceback=traceback.format_exc(),
                )
    close_old_connections()
    return job.pk


def _finish(job, status, **fields):
    fields.setdefault("message", "")
    if not fields["message"]:
        fields.pop("message")
    Job.objects.filter(pk=job.pk).update(status=status, finished=timezone.now(), **fields)


@transaction.atomic
def cancel(job, *, user):
    """Cancel a queued job at once; ask a running one to stop at its next progress report.

    Anyone may cancel their own jobs; another user's takes the cancel_job action. (The caller
    has already scoped `job` to what the user may see.)"""
    if job.user_id != user.pk:
        rbac.require(user, "dcportal.cancel_job")
    job = Job.objects.select_for_update().get(pk=job.pk)
    if job.status in Job.FINISHED:
        return job
    with audit.Tracker(user, job, verb="cancel"):
        job.cancel_requested = True
        if job.status == Job.Status.QUEUED:
            job.status = Job.Status.CANCELLED
            job.finished = timezone.now()
            job.message = f"Cancelled by {user.get_username()}"
        job.save()
    if job.status == Job.Status.CANCELLED:
        transaction.on_commit(lambda: _drop_from_queue(job))
    return job


def _drop_from_queue(job):
    queue = queue_for(job.queue)
    with contextlib.suppress(NoSuchJobError):
        RQJob.fetch(job.rq_id, connection=queue.connection).cancel()


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed work horse is orphaned (RQ forks it into its own session) and stays a zombie
    # until init reaps it, which a container's init may never do: a zombie is dead.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _worker_gone(job, connection):
    """True when the process running `job` is known to be dead."""
    if job.worker_host == HOSTNAME and job.worker_pid and not _pid_alive(job.worker_pid):
        return True
    if job.worker_name:
        # RQ keeps a worker's key alive by heartbeat; it expires when the worker died elsewhere.
        key = Worker.redis_worker_namespace_prefix + job.worker_name
        if not connection.exists(key):
            return True
    try:
        status = RQJob.fetch(job.rq_id, connection=connection).get_status(refresh=True)
    except NoSuchJobError:
        return True
    return status in ("failed", "stopped", "canceled")


def reap(now=None):
    """Fail running jobs whose worker died; re-enqueue queued jobs that Redis lost.

    Returns (failed_ids, requeued_ids). Safe to run from any number of processes at once.
    """
    now = now or timezone.now()
    failed, requeued = [], []
    for job in Job.objects.filter(status=Job.Status.RUNNING):
        connection = queue_for(job.queue).connection
        if not _worker_gone(job, connection):
            continue
        updated = Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(
            status=Job.Status.FAILED,
            finished=now,
            error=(
                f"The worker running this job died ({job.worker_name or 'unknown worker'} "
                f"on {job.worker_host or 'unknown host'}, pid {job.worker_pid})."
            ),
        )
        if updated:
            JobLog.objects.create(job=job, level="error", message="Worker died; job marked failed.")
            _fail_in_rq(job, queue_for(job.queue), "The worker running this job died.")
            failed.append(job.pk)
    cutoff = now - timezone.timedelta(seconds=settings.JOB_REQUEUE_AFTER)
    for job in Job.objects.filter(status=Job.Status.QUEUED, created__lt=cutoff):
        queue = queue_for(job.queue)
        if _waiting_in_rq(job, queue.connection):
            continue
        queue.failed_job_registry.remove(job.rq_id)  # if it was there: it is queued again
        if _push(job.pk, job.queue):
            JobLog.objects.create(
                job=job, level="warning", message="Lost by the queue; re-enqueued."
            )
            requeued.append(job.pk)
    return failed, requeued


def _waiting_in_rq(job, connection):
    """False when RQ lost the job (Redis restarted empty) or ended it without it ever running:
    a worker that took it while the database was away failed in execute() before the row
    said "running", so the row is still queued and nobody else will run it."""
    try:
        status = RQJob.fetch(job.rq_id, connection=connection).get_status(refresh=False)
    except NoSuchJobError:
        return False
    return status not in ("failed", "stopped", "canceled")


def _fail_in_rq(job, queue, reason):
    """Move a dead worker's job from RQ's started registry to its failed one, as RQ's own
    cleanup would only after the job timeout: nothing looks "started" in RQ that is not."""
    registry = queue.started_job_registry
    entries = [
        f"{job_id}:{execution_id}"
        for job_id, execution_id in registry.get_job_and_execution_ids(cleanup=False)
        if job_id == job.rq_id
    ]
    try:
        rq_job = RQJob.fetch(job.rq_id, connection=queue.connection)
    except NoSuchJobError:
        rq_job = None
    with queue.connection.pipeline() as pipeline:
        if entries:
            pipeline.zrem(registry.key, *entries)
        if rq_job is not None:
            rq_job.set_status(JobStatus.FAILED, pipeline=pipeline)
            queue.failed_job_registry.add(rq_job, ttl=86400, exc_string=reason, pipeline=pipeline)
        pipeline.execute()


@job_kind("dcportal.ping", title="Worker self-test")
def ping(ctx, seconds=0, steps=5):
    """Checks that a worker takes jobs from a queue and reports progress."""
    seconds, steps = float(seconds), max(1, int(steps))
    for step in range(steps):
        ctx.progress(step * 100 // steps, f"step {step + 1} of {steps}")
        ctx.log(f"step {step + 1} of {steps} on {HOSTNAME} pid {os.getpid()}")
        time.sleep(seconds / steps)
    return {"host": HOSTNAME, "pid": os.getpid(), "steps": steps}

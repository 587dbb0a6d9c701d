import json
import time

from django.conf import settings
from django.core.management.base import CommandError
from django.db import transaction

from dcportal import jobs, selectors
from dcportal.management.base import PortalCommand
from dcportal.models import Job

FINISHED = set(Job.FINISHED)


class Command(PortalCommand):
    help = (
        "List jobs, follow one until it ends, cancel one, or start the worker self-test: "
        "jobs [--status S] [--limit N] | --follow ID | --cancel ID | --ping [--queue Q]"
    )

    def add_arguments(self, parser):
        parser.add_argument("--status", choices=[s.value for s in Job.Status])
        parser.add_argument("--kind")
        parser.add_argument("--limit", type=int, default=20)
        parser.add_argument(
            "--follow",
            type=int,
            metavar="ID",
            help="Show progress and log of job ID until it finishes",
        )
        parser.add_argument("--cancel", type=int, metavar="ID")
        parser.add_argument(
            "--ping",
            action="store_true",
            help="Enqueue a worker self-test job and follow it",
        )
        parser.add_argument("--queue", default="default", choices=settings.JOB_QUEUES)
        parser.add_argument("--seconds", type=float, default=2.0, help="Length of --ping")
        parser.add_argument(
            "--timeout",
            type=float,
            default=0,
            help="Stop following after N seconds (the job goes on); --ping: its length + 60",
        )
        parser.add_argument("--json", action="store_true", help="Machine-readable list")

    def handle(self, *args, **options):
        user = self.acting_user(options)
        visible = selectors.jobs_for(user)
        if options["cancel"]:
            job = self.find(visible, options["cancel"])
            job = jobs.cancel(job, user=user)
            self.stdout.write(
                f"job {job.pk}: {job.status}"
                f"{' (cancel requested)' if job.status == 'running' else ''}"
            )
            return
        timeout = options["timeout"]
        if options["ping"]:
            # Without a worker the self-test would wait forever for a job nobody takes.
            if not jobs.workers(options["queue"]):
                raise CommandError(
                    f"no worker is listening on queue {options['queue']!r}: start one with "
                    f"`manage.py rqworker {options['queue']}` (`make run` starts one)"
                )
            with transaction.atomic():
                job = jobs.enqueue(
                    "dcportal.ping",
                    user=user,
                    queue=options["queue"],
                    params={"seconds": options["seconds"]},
                )
            self.stdout.write(f"job {job.pk} queued on {options['queue']}")
            options["follow"] = job.pk
            timeout = timeout or options["seconds"] + 60
        if options["follow"]:
            return self.follow(visible, options["follow"], timeout=timeout)
        listing = visible
        if options["status"]:
            listing = listing.filter(status=options["status"])
        if options["kind"]:
            listing = listing.filter(kind=options["kind"])
        rows = list(listing[: options["limit"]])
        if options["json"]:
            self.stdout.write(json.dumps([self.as_dict(j) for j in rows], indent=2))
            return
        self.stdout.write(
            f"{'ID':>6}  {'STATUS':9} {'PROG':>4}  {'QUEUE':8} {'KIND':24} {'OBJECT':24} CREATED"
        )
        for job in rows:
            self.stdout.write(
                f"{job.pk:>6}  {job.status:9} {job.progress:>3}%  {job.queue:8} {job.kind:24} "
                f"{job.object_repr[:24]:24} {job.created:%Y-%m-%d %H:%M:%S}"
            )

    def find(self, visible, job_id):
        try:
            return visible.get(pk=job_id)
        except Job.DoesNotExist:
            raise CommandError(f"no job {job_id}") from None

    def follow(self, visible, job_id, interval=0.5, timeout=0):
        job = self.find(visible, job_id)
        deadline = time.monotonic() + timeout if timeout else None
        last_line, last_state = 0, None
        while True:
            for line in job.log.filter(pk__gt=last_line):
                self.stdout.write(f"  {line.time:%H:%M:%S} {line.level:7} {line.message}")
                last_line = line.pk
            state = (job.status, job.progress, job.message)
            if state != last_state:
                bar = "#" * (job.progress // 5)
                self.stdout.write(f"[{bar:20}] {job.progress:3}% {job.status:9} {job.message}")
                last_state = state
            if job.status in FINISHED:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise CommandError(
                    f"job {job.pk} is still {job.status} after {timeout:g} s; it goes on "
                    f"(`jobs --follow {job.pk}` to watch it again)"
                )
            time.sleep(interval)
            job.refresh_from_db()
        if job.status == Job.Status.FAILED:
            raise CommandError(f"job {job.pk} failed: {job.error}")
        if job.status == Job.Status.CANCELLED:
            raise CommandError(f"job {job.pk} was cancelled")
        if job.result is not None:
            self.stdout.write(f"result: {json.dumps(job.result)}")

    def as_dict(self, job):
        return {
            "id": job.pk,
            "kind": job.kind,
            "queue": job.queue,
            "status": job.status,
            "progress": job.progress,
            "message": job.message,
            "object": job.object_repr,
            "created": job.created.isoformat(),
            "error": job.error,
        }

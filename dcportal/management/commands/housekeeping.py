import time

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import DatabaseError, close_old_connections
from redis.exceptions import RedisError

from dcportal import jobs


def app_upkeep():
    """Each app's own periodic upkeep: an AppConfig may define housekeeping() -> report lines
    (the CA queues its CRL refresh there)."""
    for config in apps.get_app_configs():
        hook = getattr(config, "housekeeping", None)
        if hook is not None:
            yield from hook()


class Command(BaseCommand):
    help = "Periodic upkeep: fail jobs whose worker died, re-enqueue jobs Redis lost."

    def add_arguments(self, parser):
        parser.add_argument(
            "--every",
            type=float,
            default=0,
            help="Repeat every N seconds until stopped (default: once)",
        )

    def handle(self, *args, every, **options):
        while True:
            try:
                failed, requeued = jobs.reap()
                notes = list(app_upkeep())
            except (DatabaseError, RedisError) as exc:
                if not every:
                    raise
                # Ride out a database or Redis outage: under `make run` the launcher stops the
                # whole portal as soon as any of its processes exits.
                self.stderr.write(f"housekeeping: {type(exc).__name__}: {exc}; trying again")
                failed, requeued, notes = [], [], []
            for job_id in failed:
                self.stdout.write(f"job {job_id}: worker died, marked failed")
            for job_id in requeued:
                self.stdout.write(f"job {job_id}: lost by the queue, re-enqueued")
            for note in notes:
                self.stdout.write(note)
            if not every:
                return
            close_old_connections()
            try:
                time.sleep(every)
            except KeyboardInterrupt:
                return

"""`manage.py rinstall NODERANGE [--profile P] [--timeout S] [--wait]`, as xCAT's rinstall:
nodeset install, a one-time network boot and a power cycle, as one tracked job per node on the
"deploy" queue. --wait follows the jobs until they end (the exit status says whether all
succeeded); without it the command returns once they are queued."""

import time

from django.conf import settings
from django.core.management.base import CommandError
from django.db import transaction

from dcportal import jobs, rbac
from dcportal.management.base import PortalCommand
from dcportal.models import Job
from deploy import services
from inventory import selectors

FINISHED = set(Job.FINISHED)


class Command(PortalCommand):
    help = "Reinstall servers: nodeset install, one-time network boot, power cycle, follow."

    def add_arguments(self, parser):
        parser.add_argument("noderange", help="Node range, e.g. node[01-20],db1 or a tag.")
        parser.add_argument(
            "--profile", help="Deploy profile (default: each server's own, set before)."
        )
        parser.add_argument(
            "--timeout",
            type=float,
            help="Seconds each job gives the install to report `done`, power cycle included "
            f"(default {settings.RINSTALL_TIMEOUT:g}).",
        )
        parser.add_argument(
            "--wait", action="store_true", help="Follow the jobs and their progress to the end."
        )
        parser.add_argument(
            "--interval", type=float, default=2.0, help="--wait: seconds between looks."
        )

    def handle(self, *args, noderange, profile, timeout, wait, interval, **options):
        user = self.acting_user(options)
        for permission in services.RINSTALL_PERMISSIONS:
            rbac.require(user, permission)
        servers = selectors.resolve_noderange(
            noderange, user=user, action=services.NODESET_PERMISSION
        )
        if wait and not jobs.workers("deploy"):
            raise CommandError(
                "no worker is listening on queue 'deploy': start one with "
                "`manage.py rqworker deploy` (`make run` starts one)"
            )
        with transaction.atomic():
            started = services.rinstall(
                user=user, servers=servers, profile=profile, timeout=timeout
            )
        for job in started:
            self.stdout.write(f"{job.object_repr}: job {job.pk} queued")
        if wait:
            self.follow(started, interval=max(0.1, interval))

    def follow(self, started, *, interval):
        """One line per change of a job (progress or step), then one line per job and a
        summary; the exit status is 1 if any job did not succeed."""
        ids = [job.pk for job in started]
        shown = {}
        while True:
            rows = list(
                Job.objects.filter(pk__in=ids)
                .order_by("object_repr")
                .values("pk", "object_repr", "status", "progress", "message", "error")
            )
            for row in rows:
                state = (row["status"], row["progress"], row["message"])
                if shown.get(row["pk"]) != state:
                    shown[row["pk"]] = state
                    self.stdout.write(
                        f"{row['object_repr']}: [{row['progress']:3}%] {row['status']:9} "
                        f"{row['message']}".rstrip()
                    )
            self.stdout.flush()
            if all(row["status"] in FINISHED for row in rows):
                break
            time.sleep(interval)
        failed = [row for row in rows if row["status"] != Job.Status.SUCCEEDED]
        for row in failed:
            self.stdout.write(f"{row['object_repr']}: Error: {row['error'] or row['status']}")
        total = len(rows)
        self.stdout.write(
            f"{total} node{'s' if total != 1 else ''}: {total - len(failed)} installed, "
            f"{len(failed)} failed"
        )
        if failed:
            raise CommandError(
                f"{len(failed)} of {total} node{'s' if total != 1 else ''} failed", returncode=1
            )

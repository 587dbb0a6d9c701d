"""`manage.py vmsync POOL [--wait]`: read a pool's hosts, VMs, templates, networks and storage
into the portal, as a tracked job on the "virt" queue; --wait follows it and prints what it
found."""

from django.db import transaction

from dcportal.models import Job
from virt import services
from virt.management import VirtCommand, pool_named

# A JSONB column does not keep the order the job wrote its counts in; this is the one shown.
ORDER = ("hosts", "vms", "templates", "networks", "storage")


def shown_first(item):
    key = item[0]
    return (ORDER.index(key) if key in ORDER else len(ORDER), key)


def counts_text(result):
    """The job's counts on one line, e.g. `hosts: 2 added, 0 changed, 0 removed; vms: …`."""
    parts = []
    for key, value in sorted(result.items(), key=shown_first):
        if isinstance(value, dict):
            parts.append(f"{key}: {', '.join(f'{n} {what}' for what, n in value.items())}")
        elif not isinstance(value, list):
            parts.append(f"{key}: {value}")
    return "; ".join(parts)


def notes_of(result):
    """The job's remarks (guests it could not place, and why), one per line."""
    return [str(note) for value in result.values() if isinstance(value, list) for note in value]


class Command(VirtCommand):
    help = "Sync a pool from its hypervisor: hosts, VMs, templates, networks, storage."

    def add_arguments(self, parser):
        parser.add_argument("pool", help="The pool's name.")
        self.add_wait_arguments(parser, "the sync job")

    def handle(self, *args, pool, wait, interval, **options):
        user = self.acting_user(options)
        pool = pool_named(user, pool)
        if wait:
            self.require_worker()
        with transaction.atomic():
            job = services.enqueue_sync(user=user, pool=pool)
        self.stdout.write(f"{pool.name}: job {job.pk} queued")
        if not wait:
            return
        rows = self.follow_jobs([job.pk], interval=max(0.1, interval))
        (row,) = rows
        if row["status"] == Job.Status.SUCCEEDED and isinstance(row["result"], dict):
            self.stdout.write(f"{pool.name}: {counts_text(row['result'])}")
            for note in notes_of(row["result"]):
                self.stdout.write(f"{pool.name}: {note}")
        self.report_failures(rows, done="synced", noun="pool")

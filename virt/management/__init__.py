"""What the virt commands share: pools, pool objects and VMs found by name within the acting
user's scope, sizes as people write them, and following VM jobs to their end."""

import time

from django.core.management.base import CommandError
from django.db.models import Q

from dcportal import jobs
from dcportal.management.base import PortalCommand
from dcportal.models import Job
from inventory import selectors as inventory_selectors
from inventory.models import Server
from virt import selectors

QUEUE = "virt"
FINISHED = set(Job.FINISHED)
UNITS = (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024))


def size_text(value):
    """2147483648 -> 2G, 1610612736 -> 1.5G: the largest unit that keeps the number short."""
    value = int(value or 0)
    for suffix, unit in UNITS:
        if value >= unit:
            whole, rest = divmod(value, unit)
            return f"{whole}{suffix}" if not rest else f"{value / unit:.1f}{suffix}"
    return str(value)


def plural(count, word):
    return f"{count} {word}{'' if count == 1 else 's'}"


def pool_named(user, name, action="view"):
    """The pool called `name` among those the user may take `action` on; another tenant's
    pool reads as unknown."""
    pool = selectors.pools_for(user, action).filter(name=name).first()
    if pool is None:
        raise CommandError(f"no pool {name!r}")
    return pool


def pool_object(model, user, pool, text):
    """A template, network or storage repository of `pool` by its name or its UUID."""
    label = model._meta.verbose_name
    found = list(
        selectors.pool_objects(model, user).filter(pool=pool).filter(Q(uuid=text) | Q(name=text))
    )
    by_uuid = [obj for obj in found if obj.uuid == text]
    if by_uuid:
        return by_uuid[0]
    if not found:
        raise CommandError(f"no {label} {text!r} in pool {pool.name}")
    if len(found) > 1:
        uuids = ", ".join(obj.uuid for obj in found)
        raise CommandError(
            f"{len(found)} {label}s named {text!r} in pool {pool.name}: use a UUID ({uuids})"
        )
    return found[0]


def vms_in_range(user, noderange, action="view"):
    """The VMs a node range names (host names, node[01-20], tags), among those the user may take
    `action` on. A name that is no VM of the user's is an error, as for every node range."""
    vms = selectors.vms_for(user, action)
    scope = Server.objects.filter(vm__in=vms.values("pk"))
    servers = inventory_selectors.resolve_noderange(noderange, user=user, queryset=scope)
    return vms.filter(server__in=servers.values("pk")).order_by("server__hostname")


class VirtCommand(PortalCommand):
    """A PortalCommand whose jobs run on the "virt" queue and that can follow them (--wait)."""

    def add_wait_arguments(self, parser, what):
        parser.add_argument("--wait", action="store_true", help=f"Follow {what} to the end.")
        parser.add_argument(
            "--interval", type=float, default=2.0, help="--wait: seconds between looks."
        )

    def require_worker(self):
        # Without a worker, --wait would wait for jobs that nobody takes.
        if not jobs.workers(QUEUE):
            raise CommandError(
                f"no worker is listening on queue {QUEUE!r}: start one with "
                f"`manage.py rqworker {QUEUE}` (`make run` starts one)"
            )

    def job_line(self, label, row):
        return f"{label}: [{row['progress']:3}%] {row['status']:9} {row['message']}".rstrip()

    def follow_jobs(self, job_ids, *, interval):
        """One line per change of a job (progress or step) until all have ended; returns the
        final rows, ordered by what they act on."""
        shown = {}
        while True:
            rows = list(
                Job.objects.filter(pk__in=job_ids)
                .order_by("object_repr", "pk")
                .values("pk", "object_repr", "status", "progress", "message", "error", "result")
            )
            for row in rows:
                state = (row["status"], row["progress"], row["message"])
                if shown.get(row["pk"]) != state:
                    shown[row["pk"]] = state
                    self.stdout.write(self.job_line(row["object_repr"], row))
            self.stdout.flush()
            if all(row["status"] in FINISHED for row in rows):
                return rows
            time.sleep(interval)

    def report_failures(self, rows, *, done, noun="VM"):
        """The summary after following: a line per failed job, counts, exit status 1 on any
        failure."""
        failed = [row for row in rows if row["status"] != Job.Status.SUCCEEDED]
        for row in failed:
            self.stdout.write(f"{row['object_repr']}: Error: {row['error'] or row['status']}")
        total = len(rows)
        self.stdout.write(
            f"{plural(total, noun)}: {total - len(failed)} {done}, {len(failed)} failed"
        )
        if failed:
            raise CommandError(f"{len(failed)} of {plural(total, noun)} failed", returncode=1)

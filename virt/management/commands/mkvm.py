"""`manage.py mkvm NAME --pool POOL --template T [--tenant SLUG] [--vcpus N] [--memory 2G]
[--disk 20G] [--sr SR] [--network NET ...] [--install PROFILE] [--no-start] [--wait]`: create a
VM from one of the pool's templates, with an inventory server of its own and portal-allocated
MACs, as a tracked job on the "virt" queue. --install PXE-installs it with a deploy profile
afterwards; --wait follows the VM until it is created (and installed, booting its disk)."""

import time

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db import transaction

from dcportal.models import Job
from deploy import services as deploy_services
from inventory.imports import default_tenant
from virt import services
from virt.management import (
    FINISHED,
    VirtCommand,
    plural,
    pool_named,
    pool_object,
    size_text,
)
from virt.models import Network, StorageRepository, Vm, VmTemplate

# create_vm's fields as this command's options, so an error names what the user typed.
OPTIONS = {
    "name": "NAME",
    "pool": "--pool",
    "tenant": "--tenant",
    "template": "--template",
    "storage": "--sr",
    "networks": "--network",
    "vcpus": "--vcpus",
    "memory_bytes": "--memory",
    "disk_bytes": "--disk",
    "install_profile": "--install",
    "profile": "--install",
}
# While the VM is in one of these states, a job of its own is still to come or running.
UNSETTLED = {Vm.State.CREATING, Vm.State.INSTALLING, Vm.State.DESTROYING}


def cli_errors(exc):
    """A service's ValidationError with its field keys spelled as this command's options."""
    if not hasattr(exc, "error_dict"):
        return " ".join(exc.messages)
    return "; ".join(
        f"{OPTIONS.get(field, field)}: {' '.join(messages)}"
        for field, messages in exc.message_dict.items()
    )


def size_option(option, text):
    if text is None:
        return None
    try:
        return services.parse_size(text)
    except ValidationError as exc:
        raise CommandError(f"{option}: {' '.join(exc.messages)}") from None


class Command(VirtCommand):
    help = "Create a VM from a pool's template, optionally PXE-install it, and follow it."

    def add_arguments(self, parser):
        parser.add_argument("name", help="Host name of the VM (its inventory server).")
        parser.add_argument("--pool", required=True, help="The pool's name.")
        parser.add_argument("--template", required=True, help="The pool's template: name or UUID.")
        parser.add_argument(
            "--tenant",
            help="Tenant (slug) of the VM (default: the pool's, else your only tenant).",
        )
        parser.add_argument("--vcpus", type=int, help="Virtual CPUs (default: the template's).")
        parser.add_argument(
            "--memory", help="Memory, e.g. 2G, 512M, 4GiB (default: the template's)."
        )
        parser.add_argument(
            "--disk", help="Grow the system disk to this size, e.g. 20G (default: the template's)."
        )
        parser.add_argument(
            "--sr", help="Storage repository for the disks: name or UUID (default: the pool's)."
        )
        parser.add_argument(
            "--network",
            action="append",
            default=[],
            help="Network by name or UUID, one VIF each with a MAC from the portal; repeat.",
        )
        parser.add_argument(
            "--install", metavar="PROFILE", help="PXE-install the VM with this deploy profile."
        )
        parser.add_argument(
            "--no-start",
            dest="start",
            action="store_false",
            help="Leave the VM halted after creating it.",
        )
        self.add_wait_arguments(parser, "the VM's jobs (create, install)")

    def handle(self, *args, name, pool, wait, interval, **options):
        user = self.acting_user(options)
        pool = pool_named(user, pool)
        if wait:
            self.require_worker()
        try:
            fields = self.vm_fields(user, pool, options)
            with transaction.atomic():
                vm = services.create_vm(user=user, pool=pool, name=name, **fields)
        except ValidationError as exc:
            raise CommandError(cli_errors(exc)) from None
        self.stdout.write(self.summary(vm))
        if wait:
            self.follow_vm(vm, interval=max(0.1, interval))

    def vm_fields(self, user, pool, options):
        """create_vm's arguments from the options: objects looked up within the pool, sizes
        parsed, and what the options leave out taken from the template."""
        template = pool_object(VmTemplate, user, pool, options["template"])
        vcpus = options["vcpus"]
        memory = size_option("--memory", options["memory"])
        disk = size_option("--disk", options["disk"])
        return {
            "tenant": self.tenant(user, pool, options["tenant"]),
            "template": template,
            "vcpus": vcpus if vcpus is not None else template.vcpus or 1,
            "memory_bytes": memory if memory is not None else template.memory_bytes,
            "disk_bytes": disk or 0,
            "storage": (
                pool_object(StorageRepository, user, pool, options["sr"]) if options["sr"] else None
            ),
            "networks": [pool_object(Network, user, pool, net) for net in options["network"]],
            "install_profile": self.profile(user, options["install"]),
            "start": options["start"],
        }

    def tenant(self, user, pool, slug):
        if slug:
            return default_tenant(user, slug)
        if pool.tenant_id is not None:
            return pool.tenant
        tenant = default_tenant(user)
        if tenant is None:
            raise CommandError("name the VM's tenant with --tenant SLUG")
        return tenant

    def profile(self, user, name):
        return deploy_services.usable_profile(user, name) if name else None

    def summary(self, vm):
        macs = ", ".join(vif.interface.mac for vif in vm.vifs.select_related("interface"))
        return (
            f"{vm.server.hostname}: VM on {vm.pool.name}, {plural(vm.vcpus, 'vCPU')}, "
            f"{size_text(vm.memory_bytes)} memory"
            f"{f', MACs {macs}' if macs else ''}; job {vm.job_id} queued"
        )

    def follow_vm(self, vm, *, interval):
        """Follow the VM's current job, and the next one it is given (the install after the
        create, the return to disk boot after the install), until the VM settles; exit status
        1 if a job failed or the VM did."""
        hostname, followed, shown = vm.server.hostname, [], {}
        while True:
            try:
                vm.refresh_from_db(fields=["state", "power_state", "boot", "last_error", "job"])
            except Vm.DoesNotExist:
                raise CommandError(f"{hostname}: the VM was removed meanwhile") from None
            if vm.job_id is not None and vm.job_id not in followed:
                followed.append(vm.job_id)
            # The jobs seen before too: a job replaced between two looks still shows its end.
            rows = list(
                Job.objects.filter(pk__in=followed)
                .order_by("pk")
                .values("pk", "kind", "status", "progress", "message", "error")
            )
            self.show_changes(hostname, rows, shown)
            for row in rows:
                self.fail_if_failed(hostname, vm, row)
            job_ended = not rows or rows[-1]["status"] in FINISHED
            if vm.state == Vm.State.FAILED and job_ended:
                raise CommandError(f"{hostname}: failed: {vm.last_error}", returncode=1)
            if job_ended and vm.state not in UNSETTLED:
                break
            time.sleep(interval)
        boot = f", boot {vm.boot}" if vm.boot else ""
        self.stdout.write(f"{hostname}: {vm.state}, power {vm.power_state}{boot}")

    def show_changes(self, hostname, rows, shown):
        for row in rows:
            state = (row["status"], row["progress"], row["message"])
            if shown.get(row["pk"]) != state:
                shown[row["pk"]] = state
                self.stdout.write(self.job_line(f"{hostname} {row['kind']} job {row['pk']}", row))
        self.stdout.flush()

    def fail_if_failed(self, hostname, vm, row):
        if row["status"] in (Job.Status.FAILED, Job.Status.CANCELLED):
            reason = row["error"] or vm.last_error or row["message"] or "no reason given"
            raise CommandError(
                f"{hostname}: {row['kind']} job {row['pk']} {row['status']}: {reason}",
                returncode=1,
            )

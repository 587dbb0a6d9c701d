"""`manage.py rmvm NODERANGE --yes [--wait]`: destroy VMs on their hypervisor and remove their
servers from the inventory, one tracked job per VM on the "virt" queue. Without --yes nothing
happens: the command names the VMs it would destroy."""

from django.core.management.base import CommandError
from django.db import transaction

from dcportal import rbac
from virt import services
from virt.management import VirtCommand, plural, vms_in_range

MAX_NAMED = 20


def names_text(vms):
    names = [vm.server.hostname for vm in vms]
    shown = ", ".join(names[:MAX_NAMED])
    more = len(names) - MAX_NAMED
    return shown + (f" and {more} more" if more > 0 else "")


class Command(VirtCommand):
    help = "Destroy VMs (disks included) and remove their servers from the inventory."

    def add_arguments(self, parser):
        parser.add_argument("noderange", help="VM host names, e.g. web[01-20],db1 or a tag.")
        parser.add_argument(
            "--yes", action="store_true", help="Really destroy them; without it nothing is done."
        )
        self.add_wait_arguments(parser, "the destroy jobs")

    def handle(self, *args, noderange, yes, wait, interval, **options):
        user = self.acting_user(options)
        # The action first: a user without it hears "permission denied", not "no such VM".
        rbac.require(user, "virt.delete_vm")
        vms = list(vms_in_range(user, noderange, action="delete"))
        if not yes:
            raise CommandError(
                f"would destroy {plural(len(vms), 'VM')}: {names_text(vms)}; "
                "add --yes to destroy them"
            )
        if wait:
            self.require_worker()
        with transaction.atomic():
            started = [
                services.destroy_vm(user=user, vm=vm, confirm=vm.server.hostname) for vm in vms
            ]
        for vm, job in zip(vms, started, strict=True):
            self.stdout.write(f"{vm.server.hostname}: job {job.pk} queued")
        if wait:
            rows = self.follow_jobs([job.pk for job in started], interval=max(0.1, interval))
            self.report_failures(rows, done="destroyed")

"""`manage.py lsvm [NODERANGE] [--pool P] [--state S] [--tenant T] [--json]`: the VMs the acting
user may see, one line each."""

import json

from virt import selectors
from virt.management import VirtCommand, pool_named, size_text, vms_in_range
from virt.models import Vm

COLUMNS = ("hostname", "pool", "state", "power", "vcpus", "memory", "host", "macs")


def vm_row(vm):
    return {
        "hostname": vm.server.hostname,
        "pool": vm.pool.name,
        "state": vm.state,
        "power": vm.power_state,
        "vcpus": vm.vcpus,
        "memory_bytes": vm.memory_bytes,
        "host": vm.host.name if vm.host else "",
        "macs": [vif.interface.mac for vif in vm.vifs.all()],
    }


def cell_text(row, column):
    if column == "memory":
        return size_text(row["memory_bytes"])
    if column == "macs":
        return ",".join(row["macs"])
    return str(row[column])


class Command(VirtCommand):
    help = (
        "List VMs: lsvm [NODERANGE] [--pool P] [--state S] [--tenant T] [--json]. A node range "
        "takes host names, node[01-20], comma lists and tags."
    )

    def add_arguments(self, parser):
        parser.add_argument("noderange", nargs="?", help="e.g. web[01-20],db1")
        parser.add_argument("--pool", help="Only the VMs of this pool (its name).")
        parser.add_argument(
            "--state", action="append", choices=Vm.State.values, help="Repeat for any of."
        )
        parser.add_argument("--tenant", help="Only this tenant's VMs (its slug).")
        parser.add_argument(
            "--json", dest="as_json", action="store_true", help="Machine-readable list."
        )

    def handle(self, *args, noderange, pool, state, tenant, as_json, **options):
        user = self.acting_user(options)
        if noderange:
            vms = vms_in_range(user, noderange)
        else:
            vms = selectors.vms_for(user).order_by("server__hostname")
        if pool:
            vms = vms.filter(pool=pool_named(user, pool))
        if state:
            vms = vms.filter(state__in=state)
        if tenant:
            vms = vms.filter(server__tenant__slug=tenant.strip().lower())
        rows = [vm_row(vm) for vm in vms]
        if as_json:
            self.write_json(rows)
        else:
            self.write_table(rows)

    def write_json(self, rows):
        self.stdout.write(json.dumps(rows, indent=2))

    def write_table(self, rows):
        cells = [[cell_text(row, column) for column in COLUMNS] for row in rows]
        widths = [
            max([len(name), *(len(cell[i]) for cell in cells)]) for i, name in enumerate(COLUMNS)
        ]
        for cell in [[name.upper() for name in COLUMNS], *cells]:
            self.stdout.write(
                "  ".join(text.ljust(w) for text, w in zip(cell, widths, strict=True)).rstrip()
            )

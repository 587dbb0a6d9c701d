"""`manage.py rsetboot NODERANGE net|hd [--persistent]`, as xCAT's rsetboot: the boot device for
the next boot (or every boot with --persistent), every node in parallel within the limits."""

from inventory.management.power import PowerCommand

DEVICES = {"net": "bootdev-pxe", "hd": "bootdev-disk"}
WORDS = {"pxe": "net", "disk": "hd"}


class Command(PowerCommand):
    help = "Set the boot device of servers: net (PXE) or hd, for the next boot or persistently."

    def add_arguments(self, parser):
        self.add_noderange_argument(parser)
        parser.add_argument("device", choices=list(DEVICES), help="net (PXE) or hd (disk).")
        parser.add_argument(
            "--persistent", action="store_true", help="For every boot, not just the next one."
        )

    def handle(self, *args, noderange, device, persistent, **options):
        self.run_range(options, noderange, DEVICES[device], persistent=persistent)

    def format_result(self, result):
        if result["status"] != "ok":
            return super().format_result(result)
        when = "persistent" if result.get("persistent") else "next boot only"
        return [f"{result['hostname']}: {WORDS.get(result.get('device'), '?')} ({when})"]

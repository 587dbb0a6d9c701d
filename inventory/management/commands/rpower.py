"""`manage.py rpower NODERANGE on|off|stat|state|cycle|reset|softoff`, as xCAT's rpower: every
node in parallel (within the power limits), one line per node, a summary, and a non-zero exit
status if any node failed."""

from inventory.management.power import PowerCommand

ACTIONS = {
    "on": "on",
    "off": "off",
    "stat": "status",
    "state": "status",
    "status": "status",
    "cycle": "cycle",
    "reset": "reset",
    "softoff": "softoff",
}


class Command(PowerCommand):
    help = "Switch servers on or off, cycle or reset them, or show their power state."

    def add_arguments(self, parser):
        self.add_noderange_argument(parser)
        parser.add_argument("action", choices=list(ACTIONS), help="What to do.")

    def handle(self, *args, noderange, action, **options):
        self.run_range(options, noderange, ACTIONS[action])

"""`manage.py rinv NODERANGE [--json]`: everything the inventory knows about servers: identity,
place, tags, every fact, interfaces with their addresses, open conflicts."""

import json

from dcportal.management.base import PortalCommand
from inventory import attrquery, selectors
from inventory.api.servers import ServerSerializer


class Command(PortalCommand):
    help = "Show all facts of a server (or of every server of a node range)."

    def add_arguments(self, parser):
        parser.add_argument("noderange", help="A host name (or its first label), or a node range.")
        parser.add_argument("--json", action="store_true", help="A JSON list, one object each.")

    def handle(self, *args, noderange, json: bool, **options):
        user = self.acting_user(options)
        servers = selectors.resolve_noderange(noderange, user=user).order_by("hostname")
        reports = []
        for server in servers:
            data = dict(ServerSerializer(server).data)
            data["conflicts"] = [
                {
                    "id": conflict.pk,
                    "kind": conflict.kind,
                    "detail": conflict.detail,
                    "created": conflict.created.isoformat(),
                }
                for conflict in selectors.conflicts_of(server, user=user).filter(
                    resolved__isnull=True
                )
            ]
            reports.append(data)
        if json:
            self.stdout.write(_dumps(reports))
            return
        for index, data in enumerate(reports):
            if index:
                self.stdout.write("")
            self.write_text(data)

    def write_text(self, data):
        out = self.stdout.write
        out(data["hostname"])
        place = " / ".join(
            str(part) for part in (data["site"], data["rack"] and f"rack {data['rack']}") if part
        )
        if data["position"] is not None:
            place += f" U{data['position']}"
        facts = [
            ("id", data["id"]),
            ("tenant", data["tenant"]),
            ("status", data["status"]),
            ("kind", data["kind"]),
            ("uuid", data["uuid"]),
            ("serial", data["serial"]),
            ("vendor", data["vendor"]),
            ("model", data["model"]),
            ("place", place),
            ("tags", ", ".join(data["tags"])),
            ("created", data["created"]),
            ("updated", data["updated"]),
            ("last inventory", data["last_inventory"]),
        ]
        for label, value in facts:
            out(f"  {label + ':':16}{'' if value in (None, '') else value}")
        leaves = list(attrquery.flatten(data["attributes"]))
        out("  facts:" if leaves else "  facts: (none)")
        width = max((len(path) for path, _ in leaves), default=0)
        for path, value in leaves:
            shown = value if isinstance(value, str) else _dumps(value)
            out(f"    {path.ljust(width)}  {shown}")
        out("  interfaces:" if data["interfaces"] else "  interfaces: (none)")
        for iface in data["interfaces"]:
            boot = "boot" if iface["boot"] else ""
            addresses = ", ".join(iface["addresses"])
            out(f"    {iface['name']:10} {iface['mac']}  {boot:4}  {addresses}".rstrip())
        for conflict in data["conflicts"]:
            out(f"  conflict #{conflict['id']} ({conflict['kind']}): {conflict['detail']}")


def _dumps(value):
    return json.dumps(value, indent=2, sort_keys=False, default=str)

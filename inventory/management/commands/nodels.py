"""`manage.py nodels [NODERANGE] [--attr EXPR …] [--status S] [--tag T] [-o table|json|csv]
[--fields F,…]`: list servers, as xCAT's nodels does, within the acting user's scope."""

import csv
import json

from django.core.management.base import CommandError

from dcportal.management.base import PortalCommand
from inventory import attrquery, selectors
from inventory.filtersets import filter_servers

DEFAULT_FIELDS = ("hostname", "status", "kind", "tenant", "vendor", "model", "serial")
FIELDS = (
    "id",
    "hostname",
    "uuid",
    "serial",
    "vendor",
    "model",
    "kind",
    "status",
    "tenant",
    "site",
    "rack",
    "position",
    "tags",
    "attributes",
    "interfaces",
    "boot_mac",
    "created",
    "updated",
    "last_inventory",
)


def field_value(server, name):
    """The value of one output column: plain JSON-able data (lists and dicts for json)."""
    if name.startswith("attr."):
        value = server.attributes
        for key in name[len("attr.") :].split("."):
            if isinstance(value, dict):
                value = value.get(key)
            elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
                value = value[int(key)]
            else:
                return None
        return value
    if name == "tenant":
        return server.tenant.slug
    if name == "site":
        return server.rack.site.slug if server.rack else None
    if name == "rack":
        return server.rack.name if server.rack else None
    if name == "interfaces":
        # The import format: eth0=aa:…;*eth1=… (the boot interface starred).
        return ";".join(
            f"{'*' if iface.boot else ''}{iface.name}={iface.mac}"
            for iface in server.interfaces.all()
        )
    if name == "boot_mac":
        return next((iface.mac for iface in server.interfaces.all() if iface.boot), None)
    value = getattr(server, name)
    if value is None or isinstance(value, int | float | str | bool | list | dict):
        return value
    return str(value)  # UUIDs and datetimes


def as_text(value, list_separator=";"):
    if value is None:
        return ""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list_separator.join(value)
    if isinstance(value, dict | list | bool):
        return json.dumps(value, sort_keys=True)
    return str(value)


class Command(PortalCommand):
    help = (
        "List servers: nodels [NODERANGE] [--attr EXPR] [--status S] [--tag T] "
        "[-o table|json|csv] [--fields F,…]. A node range takes names, node[01-20], comma "
        "lists and tags; --attr takes expressions such as cpu.cores__gte=8 (repeat to AND)."
    )

    def add_arguments(self, parser):
        parser.add_argument("noderange", nargs="?", help="e.g. node[01-20],db1,compute")
        parser.add_argument(
            "--attr",
            action="append",
            default=[],
            metavar="EXPR",
            help="Attribute filter, e.g. cpu.cores__gte=8; repeat to AND. Lookups: "
            + " ".join(attrquery.LOOKUPS),
        )
        parser.add_argument("--status", action="append", default=[], help="Repeat for any of.")
        parser.add_argument("--tag")
        parser.add_argument("-o", "--output", choices=["table", "json", "csv"], default="table")
        parser.add_argument(
            "--fields",
            help=f"Comma list of {', '.join(FIELDS)} or attr.<path> "
            f"(default: {','.join(DEFAULT_FIELDS)}).",
        )

    def handle(self, *args, noderange, attr, status, tag, output, fields, **options):
        user = self.acting_user(options)
        columns = self.columns(fields)
        if noderange:
            servers = selectors.resolve_noderange(noderange, user=user)
        else:
            servers = selectors.servers_for(user)
        params = {"attr": attr, "status": status, "tag": tag}
        servers = filter_servers(servers, {k: v for k, v in params.items() if v})
        rows = [
            [field_value(server, name) for name in columns]
            for server in servers.order_by("hostname").iterator(chunk_size=2000)
        ]
        getattr(self, f"write_{output}")(columns, rows)

    def columns(self, fields):
        if not fields:
            return list(DEFAULT_FIELDS)
        columns = [name.strip() for name in fields.split(",") if name.strip()]
        for name in columns:
            if name.startswith("attr."):
                attrquery.parse_path(name[len("attr.") :], expression=name)
            elif name not in FIELDS:
                raise CommandError(
                    f"unknown field {name!r}; known: {', '.join(FIELDS)}, attr.<path>"
                )
        return columns

    def write_table(self, columns, rows):
        text_rows = [[as_text(value, ",") for value in row] for row in rows]
        widths = [
            max([len(name), *(len(row[i]) for row in text_rows)]) for i, name in enumerate(columns)
        ]
        for row in [[name.upper() for name in columns], *text_rows]:
            self.stdout.write(
                "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            )

    def write_json(self, columns, rows):
        self.stdout.write(
            json.dumps([dict(zip(columns, row, strict=True)) for row in rows], indent=2)
        )

    def write_csv(self, columns, rows):
        writer = csv.writer(self.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([as_text(value) for value in row] for row in rows)

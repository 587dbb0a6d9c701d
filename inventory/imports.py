"""Import servers (and their interfaces) from CSV or JSON: `manage.py import_inventory FILE`.

Columns (CSV header / JSON keys), all optional but a hostname or uuid:

    hostname uuid serial vendor model kind status tenant
    tags          "web;edge" (CSV) or a list (JSON): replaces the server's tags
    attributes    a JSON object, merged into the server's attributes
    attr.<path>   one fact, e.g. attr.cpu.cores = 16 (JSON when it parses, else text)
    interfaces    "eth0=aa:bb:cc:dd:ee:01;*eth1=aa:bb:cc:dd:ee:02" or a JSON list of
                  {"name", "mac", "boot"}; the `*`-marked one is the boot interface, else the first

A row updates the server with the same UUID, else the same host name, else creates one (in the
row's tenant or the default). An empty cell (JSON null) leaves a field as it is, so running the
same file twice changes nothing the second time. Interfaces are added or updated by name, then
MAC; interfaces the file does not mention are left alone.

All or nothing: every row is checked (each in its own savepoint, so one bad row does not hide
the next one's errors) and if any failed, ImportFailed lists them by CSV line or JSON item
index (from 0) and nothing is written. A dry run does the same work and rolls it back, so it
finds every error a real run would.
"""

import copy
import csv
import io
import json
from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from dcportal import rbac
from dcportal.models import Tenant
from inventory import attrquery, services
from inventory.fields import normalise_mac
from inventory.models import Server, normalise_uuid

PLAIN = ("hostname", "uuid", "serial", "vendor", "model", "kind", "status")
COLUMNS = (*PLAIN, "tenant", "tags", "attributes", "interfaces")
ATTR_PREFIX = "attr."


class ImportFailed(ValidationError):
    """The file cannot be imported; nothing was written. `problems` is [(where, message)]."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__([f"{where}: {message}" for where, message in self.problems])


class RowError(Exception):
    pass


@dataclass
class Row:
    where: str  # "line 3" or "item 2"
    values: dict = field(default_factory=dict)  # PLAIN fields given
    tenant: str | None = None
    tags: list | None = None
    attributes: dict | None = None
    attr_paths: list = field(default_factory=list)  # [(path tuple, value)]
    interfaces: list | None = None


@dataclass
class Outcome:
    where: str
    action: str  # create, update or unchanged
    hostname: str
    changes: list = field(default_factory=list)

    def __str__(self):
        detail = f": {'; '.join(self.changes)}" if self.changes else ""
        return f"{self.where}: {self.action} {self.hostname}{detail}"


@dataclass
class ImportReport:
    outcomes: list
    dry_run: bool

    @property
    def counts(self):
        counts = {"create": 0, "update": 0, "unchanged": 0}
        for outcome in self.outcomes:
            counts[outcome.action] += 1
        return counts

    def summary(self):
        counts = self.counts
        if self.dry_run:
            done = f"{counts['create']} to create, {counts['update']} to update"
        else:
            done = f"{counts['create']} created, {counts['update']} updated"
        text = f"{len(self.outcomes)} servers: {done}, {counts['unchanged']} unchanged"
        return text + (" (dry run: nothing written)" if self.dry_run else "")


# Reading --------------------------------------------------------------------------------------


def detect_format(name, text):
    lower = (name or "").lower()
    if lower.endswith(".json"):
        return "json"
    if lower.endswith(".csv"):
        return "csv"
    return "json" if text.lstrip()[:1] in ("[", "{") else "csv"


def read_csv(text):
    """(rows, problems) of a CSV file. A header that cannot be understood raises ImportFailed
    at once; a row that cannot be parsed is a problem, and the other rows are still read."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFailed([("line 1", "the file is empty")]) from None
    except csv.Error as exc:
        raise ImportFailed([("line 1", str(exc))]) from None
    columns = [name.strip() for name in header]
    columns = [name if name.startswith(ATTR_PREFIX) else name.lower() for name in columns]
    problems = _check_columns(columns, "line 1")
    if problems:
        raise ImportFailed(problems)
    rows, line = [], reader.line_num
    while True:
        start = line + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append((f"line {start}", f"not valid CSV: {exc}"))
            break
        line = reader.line_num
        if not any(cell.strip() for cell in record):
            continue
        where = f"line {start}"
        if len(record) > len(columns):
            problems.append((where, f"{len(record)} cells but the header has {len(columns)}"))
            continue
        cells = {name: cell.strip() for name, cell in zip(columns, record, strict=False)}
        try:
            rows.append(_row(where, {k: v for k, v in cells.items() if v != ""}, text_cells=True))
        except RowError as exc:
            problems.append((where, str(exc)))
    return rows, problems


def read_json(text):
    """(rows, problems) of a JSON file, like read_csv()."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFailed([(f"line {exc.lineno}", f"not valid JSON: {exc.msg}")]) from None
    if isinstance(data, dict) and isinstance(data.get("servers"), list):
        data = data["servers"]
    if not isinstance(data, list):
        raise ImportFailed([("file", 'expected a list of servers (or {"servers": [...]})')])
    rows, problems = [], []
    for index, item in enumerate(data):
        where = f"item {index}"
        if not isinstance(item, dict):
            problems.append((where, "expected an object"))
            continue
        unknown = _check_columns(list(item), where, require_identity=False)
        if unknown:
            problems.extend(unknown)
            continue
        try:
            rows.append(_row(where, {k: v for k, v in item.items() if v is not None}))
        except RowError as exc:
            problems.append((where, str(exc)))
    return rows, problems


def _check_columns(columns, where, require_identity=True):
    problems = []
    for name in columns:
        if name.startswith(ATTR_PREFIX):
            try:
                attrquery.parse_path(name[len(ATTR_PREFIX) :])
            except ValidationError as exc:
                problems.append((where, f"column {name!r}: {exc.messages[0]}"))
        elif name not in COLUMNS:
            problems.append(
                (where, f"unknown column {name!r}; known: {', '.join(COLUMNS)}, attr.<path>")
            )
    duplicates = sorted({name for name in columns if columns.count(name) > 1})
    if duplicates:
        problems.append((where, f"repeated column(s): {', '.join(duplicates)}"))
    if require_identity and not {"hostname", "uuid"} & set(columns):
        problems.append((where, "a hostname or a uuid column is needed to find each server"))
    return problems


def _row(where, cells, text_cells=False):
    row = Row(where)
    for name, value in cells.items():
        if name in PLAIN:
            if isinstance(value, dict | list | bool):
                raise RowError(f"{name}: expected text")
            row.values[name] = str(value)
        elif name == "tenant":
            row.tenant = str(value).strip().lower()
        elif name == "tags":
            row.tags = _guard("tags", services.normalise_tags, value)
        elif name == "attributes":
            row.attributes = _attributes(value, text_cells)
        elif name == "interfaces":
            row.interfaces = _interfaces(value)
        else:
            path = tuple(name[len(ATTR_PREFIX) :].split("."))
            parsed = value
            if text_cells:
                parsed = _guard(name, attrquery.parse_value, value)
            row.attr_paths.append((path, parsed))
    if "hostname" in row.values:
        row.values["hostname"] = services.normalise_hostname(row.values["hostname"])
    if "uuid" in row.values:
        uuid = _guard("uuid", normalise_uuid, row.values["uuid"])
        if uuid is None:
            del row.values["uuid"]  # a placeholder identifies nothing: as if not given
        else:
            row.values["uuid"] = uuid
    if not row.values.get("hostname") and not row.values.get("uuid"):
        raise RowError("no hostname and no uuid")
    return row


def _guard(name, function, value):
    try:
        return function(value)
    except ValidationError as exc:
        raise RowError(f"{name}: {' '.join(_messages(exc))}") from None


def _attributes(value, text_cells):
    if text_cells:
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise RowError(f"attributes: not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise RowError("attributes: expected a JSON object")
    return value


def _interfaces(value):
    if isinstance(value, str):
        items = []
        for part in (p.strip() for p in value.split(";")):
            if not part:
                continue
            name, sep, mac = part.partition("=")
            if not sep:
                raise RowError(f"interfaces: {part!r} is not name=mac")
            boot = name.strip().startswith("*") or mac.strip().endswith("*")
            items.append(
                {
                    "name": name.strip().lstrip("*").strip(),
                    "mac": mac.strip().rstrip("*").strip(),
                    "boot": boot,
                }
            )
    elif isinstance(value, list):
        items = value
    else:
        raise RowError("interfaces: expected name=mac;… or a list of {name, mac, boot}")
    result = []
    for item in items:
        if not isinstance(item, dict) or not item.get("name") or not item.get("mac"):
            raise RowError(f"interfaces: each needs a name and a MAC ({item!r})")
        unknown = set(item) - {"name", "mac", "boot"}
        if unknown:
            raise RowError(f"interfaces: unknown key(s) {', '.join(sorted(unknown))}")
        mac = _guard(f"interfaces: {item['name']}", normalise_mac, item["mac"])
        result.append(
            {"name": str(item["name"]).strip(), "mac": mac, "boot": bool(item.get("boot"))}
        )
    boots = [item["name"] for item in result if item["boot"]]
    if len(boots) > 1:
        raise RowError(f"interfaces: more than one boot interface ({', '.join(boots)})")
    if result and not boots:
        result[0]["boot"] = True
    names = [item["name"] for item in result]
    if len(set(names)) != len(names):
        raise RowError("interfaces: the same name twice")
    return result


# Applying -------------------------------------------------------------------------------------


def import_inventory(*, user, text, fmt="csv", dry_run=False, tenant=None):
    """Import servers from `text` (CSV or JSON). `tenant` (a Tenant) is where servers go whose
    row names none. Returns an ImportReport; raises ImportFailed with every problem found."""
    rows, problems = read_json(text) if fmt == "json" else read_csv(text)
    importer = _Importer(user, tenant)
    with transaction.atomic():
        # Rows that parsed are still tried when others did not, so one run reports everything.
        outcomes = importer.run(rows)
        if problems or importer.problems or dry_run:
            transaction.set_rollback(True)
    if problems or importer.problems:
        raise ImportFailed(sorted(problems + importer.problems, key=_position))
    return ImportReport(outcomes, dry_run)


def _position(problem):
    where = problem[0]
    number = where.rpartition(" ")[2]
    return int(number) if number.isdigit() else -1


def default_tenant(user, slug=None):
    """The tenant named by `slug` among the user's, or the user's only tenant, or None."""
    tenants = rbac.restrict(Tenant.objects.all(), user, "view")
    if slug:
        try:
            return tenants.get(slug=slug.strip().lower())
        except Tenant.DoesNotExist:
            raise ValidationError({"tenant": f"No tenant {slug!r}."}) from None
    mine = list(Tenant.objects.filter(pk__in=rbac.tenant_ids(user))[:2])
    return mine[0] if len(mine) == 1 else None


class _Importer:
    def __init__(self, user, tenant):
        self.user = user
        self.default = tenant
        self.tenants = {t.slug: t for t in rbac.restrict(Tenant.objects.all(), user, "view")}
        self.servers = rbac.restrict(Server.objects.select_related("tenant"), user, "view")
        self.problems = []
        self.seen = {}

    def run(self, rows):
        outcomes = []
        for row in rows:
            try:
                self._check_duplicate(row)
                with transaction.atomic():
                    outcomes.append(self._apply(row))
            except RowError as exc:
                self.problems.append((row.where, str(exc)))
            except (ValidationError, PermissionDenied) as exc:
                self.problems.append((row.where, "; ".join(_messages(exc))))
        return outcomes

    def _check_duplicate(self, row):
        for key in ("uuid", "hostname"):
            value = row.values.get(key)
            if value and (key, value) in self.seen:
                raise RowError(f"{key} {value} already appears on {self.seen[key, value]}")
        for key in ("uuid", "hostname"):
            if row.values.get(key):
                self.seen[key, row.values[key]] = row.where

    def _match(self, row):
        by_uuid = by_name = None
        if row.values.get("uuid"):
            by_uuid = self.servers.filter(uuid=row.values["uuid"]).first()
        if row.values.get("hostname"):
            by_name = self.servers.filter(hostname=row.values["hostname"]).first()
        if by_uuid and by_name and by_uuid.pk != by_name.pk:
            raise RowError(
                f"the uuid is {by_uuid.hostname}'s but the host name is another server's"
            )
        return by_uuid or by_name

    def _tenant(self, row):
        if row.tenant is None:
            return None
        try:
            return self.tenants[row.tenant]
        except KeyError:
            raise RowError(f"tenant: no tenant {row.tenant!r}") from None

    def _apply(self, row):
        server = self._match(row)
        tenant = self._tenant(row)
        if server is None:
            return self._create(row, tenant or self.default)
        return self._update(server, row, tenant)

    def _create(self, row, tenant):
        if not row.values.get("hostname"):
            raise RowError("hostname: needed to create a server (no server has this uuid)")
        if tenant is None:
            raise RowError("tenant: name one in a tenant column or with --tenant")
        attributes = _merged({}, row)
        server = services.create_server(
            user=self.user,
            tenant=tenant,
            tags=row.tags or [],
            attributes=attributes,
            interfaces=row.interfaces or [],
            **row.values,
        )
        changes = [f"tenant {tenant.slug}"]
        changes += [f"{k} {v}" for k, v in row.values.items() if k != "hostname"]
        if row.tags:
            changes.append(f"tags {', '.join(server.tags)}")
        changes += [f"attr.{path} {_show(value)}" for path, value in attrquery.flatten(attributes)]
        changes += [
            f"interface {i['name']} {i['mac']}{' (boot)' if i['boot'] else ''}"
            for i in row.interfaces or []
        ]
        return Outcome(row.where, "create", server.hostname, changes)

    def _update(self, server, row, tenant):
        fields = {}
        for name, value in row.values.items():
            current = getattr(server, name)
            if (str(current) if current is not None else None) != value:
                fields[name] = value
        if tenant is not None and tenant.pk != server.tenant_id:
            fields["tenant"] = tenant
        if row.tags is not None and row.tags != sorted(server.tags):
            fields["tags"] = row.tags
        attributes = _merged(server.attributes, row)
        if attributes != server.attributes:
            fields["attributes"] = attributes
        changes = []
        for name, value in fields.items():
            if name == "attributes":
                changes += _attribute_changes(server.attributes, value)
            elif name == "tenant":
                changes.append(f"tenant {server.tenant.slug} → {value.slug}")
            elif name == "tags":
                changes.append(f"tags {_show(sorted(server.tags))} → {_show(value)}")
            else:
                changes.append(f"{name} {_show(getattr(server, name))} → {_show(value)}")
        if fields:
            services.update_server(server, user=self.user, **fields)
        if row.interfaces:
            changes += services.sync_interfaces(server, user=self.user, interfaces=row.interfaces)
        return Outcome(row.where, "update" if changes else "unchanged", server.hostname, changes)


def _merged(attributes, row):
    merged = copy.deepcopy(attributes or {})
    if row.attributes:
        _deep_merge(merged, row.attributes)
    for path, value in row.attr_paths:
        target = merged
        for depth, key in enumerate(path[:-1]):
            child = target.setdefault(key, {})
            if not isinstance(child, dict):
                where = ".".join(path[: depth + 1])
                raise RowError(f"attr.{'.'.join(path)}: attr.{where} is not an object")
            target = child
        target[path[-1]] = value
    return merged


def _deep_merge(into, new):
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def _attribute_changes(before, after):
    old, new = dict(attrquery.flatten(before)), dict(attrquery.flatten(after))
    changes = []
    for path in sorted(set(old) | set(new)):
        if path not in new:
            changes.append(f"attr.{path} {_show(old[path])} → (removed)")
        elif old.get(path, _MISSING) != new[path]:
            was = _show(old[path]) if path in old else "(none)"
            changes.append(f"attr.{path} {was} → {_show(new[path])}")
    return changes


_MISSING = object()


def _show(value):
    if value is None or value == "":
        return "(none)"
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _messages(exc):
    if isinstance(exc, PermissionDenied):
        return [f"permission denied: {exc}"]
    return list(services.flat_messages(services.error_fields(exc)))

"""Auto-inventory: what a booted machine reports becomes a server with its facts and interfaces.

`register()` is the one service behind POST /api/inventory/register/ (and anything else that
feeds reports in). A report is matched to a server by its SMBIOS UUID, then by serial + vendor
within the tenant; its facts are deep-merged into `attributes`, its interfaces added or updated
by MAC, and `last_inventory` set, all in one transaction. What cannot be merged silently is
stored as a Conflict for an operator to resolve (`resolve_conflict()`):

- serial: the serial + vendor belong to a server with another UUID (a new board? a twin?):
  nothing is changed, the report is held;
- mac: a reported MAC is on another server: that interface is not moved;
- hostname: the reported host name is taken: the server gets a generated one;
- placeholder: neither the UUID nor the serial identify the machine: nothing is created.

A repeated identical report changes nothing but `last_inventory` and records no second conflict.

Enrolment tokens let agents register machines into one tenant without a user: minted like API
tokens ("dce_<prefix>_<random>", only a hash stored), revocable, optionally expiring.
"""

import hashlib
import re
from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models.functions import Lower
from django.utils import timezone

from dcportal import audit, rbac, requestcontext, services
from dcportal.models import Tenant
from inventory.fields import normalise_mac
from inventory.models import (
    Conflict,
    EnrolmentToken,
    Interface,
    Server,
    is_placeholder_serial,
    normalise_uuid,
    validate_hostname,
)

ENROLMENT_PREFIX = "dce"  # noqa: S105 (a marker, distinct from API tokens' "dcp")

# Report keys that are not facts: identity, naming, interfaces (kept as rows) and control keys.
IDENTITY_KEYS = ("uuid", "serial", "vendor", "sys_vendor", "model", "product_name", "hostname")
CONTROL_KEYS = frozenset({*IDENTITY_KEYS, "tenant", "token"})
MAX_DEPTH = 16
MAX_TEXT = 100  # Server.serial, vendor and model
MAX_INTERFACE_NAME = 64
MAX_DETAIL = 300


class RegistrationRefused(Exception):
    """The report cannot be applied at all (HTTP 409): nothing was written."""


@dataclass(frozen=True)
class ReportedInterface:
    name: str
    mac: str
    boot: bool = False


@dataclass
class Report:
    """A validated report: identity fields normalised, facts ready to merge."""

    uuid: str | None  # normalised; None when absent or a placeholder
    raw_uuid: str
    serial: str
    vendor: str
    model: str
    hostname: str | None
    interfaces: list
    facts: dict
    data: dict  # the report as received (MACs normalised), kept on conflicts

    @property
    def has_serial(self):
        return not is_placeholder_serial(self.serial)

    @property
    def identified(self):
        return self.uuid is not None or self.has_serial

    @property
    def boot_mac(self):
        return next((i.mac for i in self.interfaces if i.boot), None)


@dataclass
class Result:
    """What register() did. `status`: created, updated, unchanged or held (nothing applied)."""

    status: str
    server: Server | None
    conflicts: list = field(default_factory=list)
    reason: str = ""  # why a held report was not applied

    @property
    def http_status(self):
        return {"created": 201, "held": 202}.get(self.status, 200)

    @property
    def message(self):
        if self.server is None:
            text = f"Held for review, nothing was applied: {self.reason}"
        else:
            text = f"Registered {self.server.hostname} ({self.status})"
        if self.conflicts:
            count = len(self.conflicts)
            text += f"; {count} conflict{'s' if count > 1 else ''} for an operator to resolve"
        return text + "."


# Validation -------------------------------------------------------------------------------------


def _depth(value, limit):
    """True if `value` nests deeper than `limit` (iteratively: no recursion on hostile input)."""
    stack = [(value, 1)]
    while stack:
        current, level = stack.pop()
        if level > limit:
            return True
        if isinstance(current, dict):
            stack.extend((v, level + 1) for v in current.values())
        elif isinstance(current, list):
            stack.extend((v, level + 1) for v in current)
    return False


def _without_nul(value):
    """Firmware pads strings with NUL, which PostgreSQL refuses in text and jsonb: dropped.
    (Called once the depth is checked: the recursion is bounded.)"""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value


def _text(data, errors, *names):
    """The first of `names` present in the report, as stripped text ('' when absent)."""
    for name in names:
        value = data.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            errors[name] = ["A string is required."]
            return ""
        value = value.strip()
        if len(value) > MAX_TEXT:
            errors[name] = [f"At most {MAX_TEXT} characters."]
            return ""
        if value:
            return value
    return ""


def _interfaces(value, errors):
    if value is None:
        return [], None
    if not isinstance(value, list):
        errors["interfaces"] = ["A list of {name, mac} objects is required."]
        return [], None
    problems, result, cleaned, macs, names = [], [], [], set(), set()
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            problems.append(f"Item {index}: an object with name and mac is required.")
            continue
        name, mac, boot = item.get("name"), item.get("mac"), item.get("boot", False)
        if not isinstance(name, str) or not name.strip():
            problems.append(f"Item {index}: a name is required.")
            continue
        name = name.strip()
        if len(name) > MAX_INTERFACE_NAME:
            problems.append(f"Item {index}: the name is longer than {MAX_INTERFACE_NAME}.")
            continue
        try:
            mac = normalise_mac(mac if isinstance(mac, str) else "")
        except ValidationError:
            problems.append(f"Item {index} ({name}): {mac!r} is not a MAC address.")
            continue
        if mac in ("00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff"):
            problems.append(f"Item {index} ({name}): {mac} identifies no interface.")
            continue
        if not isinstance(boot, bool):
            problems.append(f"Item {index} ({name}): boot must be true or false.")
            continue
        if mac in macs:
            problems.append(f"Item {index} ({name}): the MAC {mac} is reported twice.")
            continue
        if name in names:
            problems.append(f"Item {index}: the name {name} is reported twice.")
            continue
        macs.add(mac)
        names.add(name)
        result.append(ReportedInterface(name=name, mac=mac, boot=boot))
        cleaned.append({**item, "name": name, "mac": mac})
    if sum(1 for i in result if i.boot) > 1:
        problems.append("At most one interface can be the boot interface.")
    if problems:
        errors["interfaces"] = problems
    return result, cleaned


def parse_report(data):
    """Validate a report; returns a Report or raises ValidationError with field errors."""
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": ["The report must be a JSON object."]})
    if _depth(data, MAX_DEPTH):
        raise ValidationError({"non_field_errors": [f"Nested deeper than {MAX_DEPTH} levels."]})
    data = _without_nul(data)
    errors = {}
    raw_uuid = data.get("uuid")
    uuid = None
    if raw_uuid is not None and not isinstance(raw_uuid, str):
        errors["uuid"] = ["A string is required."]
        raw_uuid = ""
    else:
        raw_uuid = (raw_uuid or "").strip()
        try:
            uuid = normalise_uuid(raw_uuid)
        except ValidationError as exc:
            errors["uuid"] = exc.messages
    serial = _text(data, errors, "serial")
    vendor = _text(data, errors, "vendor", "sys_vendor")
    model = _text(data, errors, "model", "product_name")
    hostname = data.get("hostname")
    if hostname in (None, ""):
        hostname = None
    elif not isinstance(hostname, str):
        errors["hostname"] = ["A string is required."]
    else:
        hostname = hostname.strip().lower().rstrip(".")
        try:
            validate_hostname(hostname)
        except ValidationError as exc:
            errors["hostname"] = exc.messages
    interfaces, cleaned = _interfaces(data.get("interfaces"), errors)
    if errors:
        raise ValidationError(errors)
    facts = {k: v for k, v in data.items() if k not in CONTROL_KEYS and k != "interfaces"}
    received = {k: v for k, v in data.items() if k != "token"}
    if cleaned is not None:
        facts["interfaces"] = cleaned
        received["interfaces"] = cleaned
    return Report(
        uuid=uuid,
        raw_uuid=raw_uuid,
        serial=serial,
        vendor=vendor,
        model=model,
        hostname=hostname,
        interfaces=interfaces,
        facts=facts,
        data=received,
    )


def deep_merge(old, new):
    """`old` updated by `new`: nested objects merge key by key, anything else is replaced."""
    merged = dict(old)
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _label(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def base_hostname(report):
    """A host name for a machine that reports none: node-<boot or first MAC>, else its identity."""
    mac = report.boot_mac or (report.interfaces[0].mac if report.interfaces else None)
    if mac:
        return "node-" + mac.replace(":", "")
    if report.uuid:
        return "node-" + report.uuid.replace("-", "")[:12]
    return ("node-" + _label(report.serial))[:63].rstrip("-") or "node"


# Authorisation and tenants ----------------------------------------------------------------------


def resolve_tenant(user, slug=None):
    """The tenant a user acts in: the one named (among the user's), or the user's only one."""
    if slug:
        tenants = Tenant.objects.filter(slug=slug)
        if not rbac.is_global(user):
            tenants = tenants.filter(pk__in=rbac.tenant_ids(user))
        tenant = tenants.first()
        if tenant is None:
            raise ValidationError({"tenant": [f"No tenant {slug!r} that you belong to."]})
        return tenant
    own = list(Tenant.objects.filter(pk__in=rbac.tenant_ids(user))[:2])
    if len(own) != 1:
        raise ValidationError({"tenant": ["Name the tenant (you belong to none or several)."]})
    return own[0]


def _authorise(actor_user, token, tenant):
    if (actor_user is None) == (token is None):
        raise PermissionDenied("A registration needs a user or an enrolment token.")
    if token is not None:
        if not token.is_active:
            raise PermissionDenied("The enrolment token is expired or revoked.")
        if token.tenant_id != tenant.pk:
            raise PermissionDenied("The enrolment token belongs to another tenant.")
        return
    rbac.require(actor_user, "inventory.add_server")
    rbac.require(actor_user, "inventory.change_server")
    rbac.check_tenant(actor_user, tenant)


def _agent_context(token):
    """Audit events written under an enrolment token show it as the actor's source."""
    if token is None:
        return requestcontext.bound()
    source = requestcontext.current().source
    label = f"enrolment token {token.name} ({token.prefix}) of {token.tenant.slug}"
    return requestcontext.bound(via="agent", source=f"{source} {label}".strip(), token_id=None)


# Registration -----------------------------------------------------------------------------------


def register(*, report, tenant, actor_user=None, token=None):
    """Create or update the server a machine reports; see the module docstring. Returns Result.

    Raises ValidationError (bad report: 400), PermissionDenied, or RegistrationRefused (409:
    the identity belongs to another tenant's server).
    """
    _authorise(actor_user, token, tenant)
    parsed = parse_report(report)
    with _agent_context(token):
        for attempt in (1, 2):
            try:
                with transaction.atomic():
                    _lock(parsed)
                    return _register(parsed, tenant, actor_user)
            except IntegrityError:
                # Another registration won a race on a unique MAC, UUID or host name: the
                # second pass sees its result and merges into it (or records the conflict).
                if attempt == 2:
                    raise RegistrationRefused(
                        "A concurrent change got in the way; send the report again."
                    ) from None
    raise AssertionError("unreachable")


def _lock(parsed):
    """Serialise registrations of the same machine (transaction-scoped advisory locks)."""
    keys = set()
    if parsed.uuid:
        keys.add(f"uuid:{parsed.uuid}")
    if parsed.has_serial:
        keys.add(f"serial:{parsed.vendor.lower()}:{parsed.serial}")
    for iface in parsed.interfaces:
        keys.add(f"mac:{iface.mac}")
    with connection.cursor() as cursor:
        for key in sorted(keys):  # one order everywhere: no deadlocks between two reports
            digest = hashlib.sha256(f"dcportal-register:{key}".encode()).digest()
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s)", [int.from_bytes(digest[:8], "big", signed=True)]
            )


def _match(parsed, tenant):
    """(server or None, serial-conflict server or None) for a report."""
    if parsed.uuid:
        server = Server.objects.select_for_update().filter(uuid=parsed.uuid).first()
        if server is not None:
            if server.tenant_id != tenant.pk:
                raise RegistrationRefused(
                    "A server with this UUID belongs to another tenant; ask an administrator."
                )
            return server, None
    if parsed.has_serial:
        candidates = list(
            Server.objects.select_for_update()
            .alias(vendor_lower=Lower("vendor"))
            .filter(tenant=tenant, serial=parsed.serial, vendor_lower=parsed.vendor.lower())
            .order_by("pk")
        )
        for server in candidates:
            if server.uuid is None or parsed.uuid is None:
                return server, None
        if candidates:
            return None, candidates[0]
    return None, None


def _register(parsed, tenant, user):
    server, twin = _match(parsed, tenant)
    conflicts = []
    if twin is not None:
        conflicts.append(
            _conflict(
                user,
                tenant,
                Conflict.Kind.SERIAL,
                key=f"UUID {parsed.uuid}",
                detail=(
                    f"reported with serial {parsed.serial} ({parsed.vendor or 'no vendor'}), "
                    f"which {twin.hostname} has with UUID {twin.uuid}."
                ),
                report=parsed.data,
                server=twin,
            )
        )
        return Result("held", None, conflicts, "the serial belongs to a server with another UUID")
    if server is None and not parsed.identified:
        owner = _mac_owner(parsed, tenant)
        first = parsed.boot_mac or (parsed.interfaces[0].mac if parsed.interfaces else None)
        conflicts.append(
            _conflict(
                user,
                tenant,
                Conflict.Kind.PLACEHOLDER,
                key=f"No identity (MAC {first or 'none'})",
                detail=(
                    f"UUID {parsed.raw_uuid or 'none'} and serial "
                    f"{parsed.serial or 'none'} are placeholders; nothing was created."
                ),
                report=parsed.data,
                server=owner,
            )
        )
        return Result("held", None, conflicts, "no identity (placeholder UUID and serial)")

    if server is None:
        server = _create_server(parsed, tenant, user, conflicts)
        status = "created"
    else:
        changed = _update_server(server, parsed, user, conflicts, replace_uuid=False)
        status = "updated" if changed else "unchanged"
    if _sync_interfaces(server, parsed, user, conflicts) and status == "unchanged":
        status = "updated"
    now = timezone.now()
    Server.objects.filter(pk=server.pk).update(last_inventory=now)
    server.last_inventory = now
    if status == "unchanged" and any(getattr(c, "_new", False) for c in conflicts):
        status = "updated"
    return Result(status, server, conflicts)


def _mac_owner(parsed, tenant):
    """A server of the tenant holding one of the reported MACs (boot MAC first), or None."""
    macs = [i.mac for i in sorted(parsed.interfaces, key=lambda i: not i.boot)]
    found = {
        i.mac: i.server
        for i in Interface.objects.select_related("server").filter(
            mac__in=macs, server__tenant=tenant
        )
    }
    return next((found[mac] for mac in macs if mac in found), None)


def _hostname_for(parsed):
    """(host name, server that holds the reported one) for a new server: the reported name if
    free, else a generated one that is."""
    taken_by = None
    if parsed.hostname:
        taken_by = Server.objects.filter(hostname=parsed.hostname).first()
        if taken_by is None:
            return parsed.hostname, None
    base = base_hostname(parsed)
    name, number = base, 1
    while Server.objects.filter(hostname=name).exists():
        number += 1
        name = f"{base}-{number}"
    return name, taken_by


def _hostname_conflict(user, tenant, parsed, server, taken_by):
    same_tenant = taken_by.tenant_id == tenant.pk
    return _conflict(
        user,
        tenant,
        Conflict.Kind.HOSTNAME,
        key=f"Host name {parsed.hostname}",
        detail=(
            f"is taken by {taken_by.hostname if same_tenant else 'a server of another tenant'}; "
            f"the machine keeps {server.hostname}."
        ),
        report=parsed.data,
        server=server,
        other_server=taken_by if same_tenant else None,
    )


def _create_server(parsed, tenant, user, conflicts):
    hostname, taken_by = _hostname_for(parsed)
    server = Server(
        tenant=tenant,
        hostname=hostname,
        uuid=parsed.uuid,
        serial=parsed.serial,
        vendor=parsed.vendor,
        model=parsed.model,
        attributes=deep_merge({}, parsed.facts),
        last_inventory=timezone.now(),
    )
    server.full_clean()
    server.save()
    audit.created(user=user, obj=server)
    if taken_by is not None:
        conflicts.append(_hostname_conflict(user, tenant, parsed, server, taken_by))
    return server


def _update_server(server, parsed, user, conflicts, *, replace_uuid):
    """Apply a report to an existing server; True if a field changed (audited)."""
    before = audit.snapshot(server)
    if parsed.uuid and (server.uuid is None or replace_uuid):
        server.uuid = parsed.uuid
    if parsed.has_serial or not server.serial:
        # A real serial replaces the stored one; a placeholder never hides a real one.
        server.serial = parsed.serial or server.serial
    server.vendor = parsed.vendor or server.vendor
    server.model = parsed.model or server.model
    if parsed.hostname and parsed.hostname != server.hostname:
        taken_by = Server.objects.filter(hostname=parsed.hostname).exclude(pk=server.pk).first()
        if taken_by is None:
            server.hostname = parsed.hostname
        else:
            conflicts.append(_hostname_conflict(user, server.tenant, parsed, server, taken_by))
    server.attributes = deep_merge(server.attributes or {}, parsed.facts)
    after = audit.snapshot(server)
    if not audit.diff(Server, before, after):
        return False
    server.full_clean()
    server.save()
    audit.record(user=user, action="update", obj=server, before=before, after=after)
    return True


def _stale_name(iface):
    return f"{iface.name}~{iface.mac.replace(':', '')}"[-MAX_INTERFACE_NAME:]


def _sync_interfaces(server, parsed, user, conflicts):
    """Add or update the reported interfaces by MAC; never take one from another server."""
    if not parsed.interfaces:
        return False
    tenant = server.tenant
    holders = {
        i.mac: i
        for i in Interface.objects.select_related("server").filter(
            mac__in=[r.mac for r in parsed.interfaces]
        )
    }
    mine = {i.pk: i for i in Interface.objects.filter(server=server)}
    wanted = {}  # interface pk or None (new) -> ReportedInterface
    new = []
    for reported in parsed.interfaces:
        holder = holders.get(reported.mac)
        if holder is None:
            new.append(reported)
        elif holder.server_id == server.pk:
            wanted[holder.pk] = reported
        else:
            same_tenant = holder.server.tenant_id == tenant.pk
            conflicts.append(
                _conflict(
                    user,
                    tenant,
                    Conflict.Kind.MAC,
                    key=f"MAC {reported.mac}",
                    detail=(
                        f"({reported.name}) is already on "
                        f"{holder.server.hostname if same_tenant else 'a server of another tenant'}"
                        "; it was not moved."
                    ),
                    report=parsed.data,
                    server=server,
                    other_server=holder.server if same_tenant else None,
                )
            )
    placed = [*wanted.values(), *new]
    names = {r.name for r in placed}
    boot_mac = next((r.mac for r in placed if r.boot), None)
    before = {pk: audit.snapshot(i) for pk, i in mine.items()}
    desired = {}
    for pk, iface in mine.items():
        name, boot = iface.name, iface.boot
        if pk in wanted:
            name = wanted[pk].name
        elif name in names:
            name = _stale_name(iface)  # a replaced NIC: its name goes to the reported one
        if boot_mac is not None:
            boot = iface.mac == boot_mac
        desired[pk] = (name, boot)
    moving = [
        pk for pk, (name, boot) in desired.items() if (name, boot) != (mine[pk].name, mine[pk].boot)
    ]
    # Two passes so names can swap (eth0 <-> eth1) and the boot flag can move between
    # interfaces without tripping the unique constraints on the way.
    for pk in moving:
        Interface.objects.filter(pk=pk).update(name=f"~{pk}", boot=False)
    for pk in moving:
        iface = mine[pk]
        iface.name, iface.boot = desired[pk]
        Interface.objects.filter(pk=pk).update(name=iface.name, boot=iface.boot)
        audit.record(
            user=user, action="update", obj=iface, before=before[pk], after=audit.snapshot(iface)
        )
    for reported in new:
        iface = Interface(
            server=server,
            name=reported.name,
            mac=reported.mac,
            boot=reported.mac == boot_mac,
        )
        iface.full_clean()
        iface.save()
        audit.created(user=user, obj=iface)
    return bool(moving or new)


def _conflict(user, tenant, kind, *, key, detail, report, server=None, other_server=None):
    """Record a conflict once: an open one with the same key is refreshed, not repeated."""
    text = f"{key}: {detail}"[:MAX_DETAIL]
    existing = (
        Conflict.objects.select_for_update()
        .filter(
            tenant=tenant,
            kind=kind,
            server=server,
            resolved__isnull=True,
            detail__startswith=f"{key}:",
        )
        .first()
    )
    if existing is not None:
        if existing.report != report or existing.other_server_id != getattr(
            other_server, "pk", None
        ):
            with audit.Tracker(user, existing):
                existing.report = report
                existing.other_server = other_server
                existing.detail = text
                existing.save(update_fields=["report", "other_server", "detail"])
        return existing
    conflict = Conflict(
        tenant=tenant,
        kind=kind,
        server=server,
        other_server=other_server,
        detail=text,
        report=report,
    )
    conflict.full_clean()
    conflict.save()
    conflict._new = True
    audit.created(user=user, obj=conflict)
    return conflict


# Resolving conflicts ----------------------------------------------------------------------------

RESOLUTIONS = {
    "dismiss": "Close it; change nothing.",
    "merge": "Apply the report to the server concerned (replace its UUID, move the MAC, take "
    "the host name).",
    "create": "Serial conflicts only: register the machine as a server of its own.",
}
_KEY = {
    Conflict.Kind.MAC: re.compile(r"^MAC ([0-9a-f:]{17}):"),
    Conflict.Kind.HOSTNAME: re.compile(r"^Host name (\S+):"),
}


def resolutions_for(conflict):
    """The resolutions that make sense for this conflict."""
    if conflict.resolved is not None:
        return []
    if conflict.kind == Conflict.Kind.SERIAL:
        return ["merge", "create", "dismiss"]
    if conflict.kind == Conflict.Kind.PLACEHOLDER and conflict.server_id is None:
        return ["dismiss"]
    if conflict.kind == Conflict.Kind.MAC and conflict.other_server_id is None:
        return ["dismiss"]
    return ["merge", "dismiss"]


@transaction.atomic
def resolve_conflict(*, user, conflict, resolution, note=""):
    """Close a conflict, after applying what `resolution` says (see RESOLUTIONS). Audited."""
    rbac.require(user, "inventory.resolve_conflict")
    rbac.check_tenant(user, conflict.tenant)
    conflict = Conflict.objects.select_for_update().get(pk=conflict.pk)
    if conflict.resolved is not None:
        raise ValidationError({"resolution": ["This conflict is already resolved."]})
    if resolution not in RESOLUTIONS:
        raise ValidationError({"resolution": [f"One of: {', '.join(RESOLUTIONS)}."]})
    if resolution not in resolutions_for(conflict):
        raise ValidationError(
            {
                "resolution": [
                    f"Not for this conflict; it can be: {', '.join(resolutions_for(conflict))}."
                ]
            }
        )
    outcome = ""
    if resolution != "dismiss":
        rbac.require(user, "inventory.change_server")
        outcome = _apply_resolution(user, conflict, resolution)
    with audit.Tracker(user, conflict, verb="resolve"):
        conflict.resolved = timezone.now()
        conflict.resolved_by = user
        conflict.resolution = " ".join(
            part for part in (f"{resolution}:", outcome, (note or "").strip()) if part
        )[:MAX_DETAIL].rstrip(":")
        conflict.save(update_fields=["resolved", "resolved_by", "resolution"])
    return conflict


def _apply_resolution(user, conflict, resolution):
    tenant = conflict.tenant
    parsed = parse_report(conflict.report)
    conflicts = []
    if conflict.kind == Conflict.Kind.SERIAL:
        if parsed.uuid and Server.objects.filter(uuid=parsed.uuid).exists():
            raise ValidationError(
                {"resolution": [f"UUID {parsed.uuid} is on a server by now; dismiss this."]}
            )
        if resolution == "create":
            server = _create_server(parsed, tenant, user, conflicts)
            _sync_interfaces(server, parsed, user, conflicts)
            return f"created {server.hostname}"
        server = conflict.server
        old = server.uuid
        _update_server(server, parsed, user, conflicts, replace_uuid=True)
        _sync_interfaces(server, parsed, user, conflicts)
        return f"UUID of {server.hostname} {old} -> {server.uuid}"
    if conflict.kind == Conflict.Kind.PLACEHOLDER:
        server = conflict.server
        _update_server(server, parsed, user, conflicts, replace_uuid=False)
        _sync_interfaces(server, parsed, user, conflicts)
        return f"report applied to {server.hostname}"
    if conflict.kind == Conflict.Kind.MAC:
        return _move_mac(user, conflict, parsed)
    return _take_hostname(user, conflict)


def _key(conflict):
    match = _KEY[conflict.kind].match(conflict.detail)
    if match is None:
        raise ValidationError({"resolution": ["This conflict names nothing to merge."]})
    return match.group(1)


def _move_mac(user, conflict, parsed):
    mac = _key(conflict)
    server = conflict.server
    iface = Interface.objects.select_for_update().filter(mac=mac).first()
    if iface is None or iface.server_id == server.pk:
        return f"MAC {mac} needed no move"
    if iface.server.tenant_id != server.tenant_id:
        raise PermissionDenied("The MAC is on a server of another tenant.")
    reported = next((i for i in parsed.interfaces if i.mac == mac), None)
    name = reported.name if reported else iface.name
    if Interface.objects.filter(server=server, name=name).exists():
        name = _stale_name(iface)
    boot = bool(reported and reported.boot) and not server.interfaces.filter(boot=True).exists()
    origin = iface.server.hostname
    with audit.Tracker(user, iface, verb="move"):
        iface.server, iface.name, iface.boot = server, name, boot
        iface.full_clean()
        iface.save()
    return f"MAC {mac} moved from {origin} to {server.hostname}"


def _take_hostname(user, conflict):
    hostname = _key(conflict)
    server = conflict.server
    holder = Server.objects.filter(hostname=hostname).exclude(pk=server.pk).first()
    if holder is not None:
        raise ValidationError(
            {"resolution": [f"{hostname} is still taken; rename that server first."]}
        )
    old = server.hostname
    with audit.Tracker(user, server):
        server.hostname = hostname
        server.full_clean()
        server.save()
    return f"renamed {old} -> {hostname}"


# Enrolment tokens -------------------------------------------------------------------------------


@transaction.atomic
def create_enrolment_token(*, user, tenant, name, expires=None):
    """Mint an enrolment token for a tenant; returns (token, key). The key is not stored."""
    rbac.require(user, "inventory.add_enrolmenttoken")
    rbac.check_tenant(user, tenant)
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": ["A name is required."]})
    if expires is not None and expires <= timezone.now():
        raise ValidationError({"expires": ["The expiry must be in the future."]})
    if EnrolmentToken.objects.filter(tenant=tenant, name=name).exists():
        raise ValidationError({"name": ["This tenant already has an enrolment token so named."]})
    key, prefix, key_hash = services.mint_key(ENROLMENT_PREFIX)
    token = EnrolmentToken(
        tenant=tenant, name=name, prefix=prefix, key_hash=key_hash, expires=expires
    )
    token.full_clean()
    token.save()
    audit.created(user=user, obj=token)
    return token, key


@transaction.atomic
def revoke_enrolment_token(*, user, token):
    rbac.require(user, "inventory.change_enrolmenttoken")
    rbac.check_tenant(user, token.tenant)
    if token.revoked is not None:
        return token
    with audit.Tracker(user, token, verb="revoke"):
        token.revoked = timezone.now()
        token.save(update_fields=["revoked"])
    return token


def authenticate_enrolment_token(key):
    """The active enrolment token for `key`, or None (constant-time comparison)."""
    token = services.find_by_key(
        EnrolmentToken.objects.select_related("tenant"), key, ENROLMENT_PREFIX
    )
    if token is None or not token.is_active:
        return None
    services.touch_last_used(token)
    return token

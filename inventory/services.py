"""Writes to servers and interfaces, on top of the platform's audited create/update/delete.

Input is normalised here (host names lowercase, UUIDs canonical or None for placeholders, MACs
colon-separated, tags lowercase) before the model validates it, so the portal, the API, the CLI
and the importers all store the same spelling.

Bulk functions are all-or-nothing: every item is tried (each in its own savepoint, so one bad
item does not hide the errors of the next), and if any failed, BulkError lists them by index and
the whole batch is rolled back.
"""

import json
import re

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from dcportal import rbac, services
from inventory.fields import normalise_mac
from inventory.models import Interface, Server, normalise_uuid

TAG = re.compile(r"[a-z0-9][a-z0-9._:-]{0,63}")
MAX_BULK = 1000


class BulkError(ValidationError):
    """Per-item errors of a bulk call: `errors` maps the item's index to {field: [messages]}."""

    def __init__(self, errors):
        self.errors = dict(sorted(errors.items()))
        super().__init__(
            [
                f"item {index}: {message}"
                for index, fields in self.errors.items()
                for message in flat_messages(fields)
            ],
            code="invalid",
        )


def flat_messages(fields):
    """{field: [messages]} -> "field: message" lines ('__all__' messages stand alone)."""
    for field, messages in fields.items():
        for message in messages:
            yield message if field == "__all__" else f"{field}: {message}"


def error_fields(exc):
    """{field: [messages]} of a ValidationError or PermissionDenied ('__all__' if unfielded)."""
    if isinstance(exc, PermissionDenied):
        return {"__all__": [str(exc) or "Permission denied."]}
    if hasattr(exc, "error_dict"):
        return {field: list(messages) for field, messages in exc.message_dict.items()}
    return {"__all__": list(exc.messages)}


# Normalisation --------------------------------------------------------------------------------


def normalise_hostname(value):
    return (value or "").strip().lower().rstrip(".")


def normalise_tags(value):
    """A list of tags (or a string separated by commas, semicolons or spaces) -> sorted unique
    lowercase tags. Tags name groups in node ranges, so they keep to host-name-like characters."""
    if value is None:
        return []
    if isinstance(value, str):
        value = re.split(r"[,;\s]+", value)
    tags = []
    for raw in value:
        tag = str(raw).strip().lower()
        if not tag:
            continue
        if not TAG.fullmatch(tag):
            raise ValidationError(
                {
                    "tags": f"{raw!r} is not a tag: up to 64 letters, digits, '.', '_', ':' "
                    "and '-', starting with a letter or digit."
                }
            )
        tags.append(tag)
    return sorted(set(tags))


def _field_error(field, exc):
    return ValidationError({field: exc.messages})


def _server_fields(fields):
    fields = dict(fields)
    if "hostname" in fields:
        fields["hostname"] = normalise_hostname(fields["hostname"])
    if "uuid" in fields:
        try:
            fields["uuid"] = normalise_uuid(fields["uuid"])
        except ValidationError as exc:
            raise _field_error("uuid", exc) from None
    for name in ("serial", "vendor", "model"):
        if name in fields:
            fields[name] = (fields[name] or "").strip()
    if "tags" in fields:
        fields["tags"] = normalise_tags(fields["tags"])
    if "attributes" in fields:
        if fields["attributes"] is None:
            fields["attributes"] = {}
        if not isinstance(fields["attributes"], dict):
            raise ValidationError({"attributes": "Attributes must be a JSON object."})
        try:
            # NaN and infinities (1e999 reads as one) are not JSON; PostgreSQL would refuse them.
            json.dumps(fields["attributes"], allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValidationError({"attributes": f"Not storable as JSON: {exc}."}) from None
    if fields.get("rack") is None and "rack" in fields:
        fields["position"] = None  # a server taken out of its rack has no position in it
    return fields


def _interface_fields(fields):
    fields = dict(fields)
    if "mac" in fields:
        try:
            fields["mac"] = normalise_mac(fields["mac"])
        except ValidationError as exc:
            raise _field_error("mac", exc) from None
    if "name" in fields:
        fields["name"] = (fields["name"] or "").strip()
    return fields


# Servers --------------------------------------------------------------------------------------


@transaction.atomic
def create_server(*, user, interfaces=(), **fields):
    """Create a server and, optionally, its interfaces (dicts of name, mac, boot, description)."""
    server = services.create_object(Server, user=user, **_server_fields(fields))
    boots = [item for item in interfaces if item.get("boot")]
    if len(boots) > 1:
        raise ValidationError({"interfaces": "Only one interface can be the boot interface."})
    errors = []
    for item in interfaces:
        try:
            with transaction.atomic():
                create_interface(user=user, server=server, **item)
        except ValidationError as exc:
            errors.extend(
                f"{item.get('name') or '?'}: {m}" for m in flat_messages(error_fields(exc))
            )
    if errors:
        raise ValidationError({"interfaces": errors})
    return server


def update_server(server, *, user, **fields):
    return services.update_object(server, user=user, **_server_fields(fields))


def delete_server(server, *, user):
    services.delete_object(server, user=user)


def add_tags(server, *, user, tags):
    wanted = sorted(set(server.tags) | set(normalise_tags(tags)))
    return update_server(server, user=user, tags=wanted)


# Interfaces -----------------------------------------------------------------------------------


def _clear_boot(server, *, user, keep=None):
    others = Interface.objects.filter(server=server, boot=True)
    if keep is not None and keep.pk is not None:
        others = others.exclude(pk=keep.pk)
    for other in others.select_for_update():
        services.update_object(other, user=user, boot=False)


@transaction.atomic
def create_interface(*, user, server, name, mac, boot=False, description=""):
    rbac.require(user, "inventory.add_interface")
    fields = _interface_fields({"name": name, "mac": mac})
    if boot:
        _clear_boot(server, user=user)
    return services.create_object(
        Interface, user=user, server=server, boot=bool(boot), description=description, **fields
    )


@transaction.atomic
def update_interface(interface, *, user, **fields):
    rbac.require(user, "inventory.change_interface")
    fields = _interface_fields(fields)
    if fields.get("boot"):
        _clear_boot(fields.get("server", interface.server), user=user, keep=interface)
    return services.update_object(interface, user=user, **fields)


def delete_interface(interface, *, user):
    services.delete_object(interface, user=user)


@transaction.atomic
def set_boot_interface(*, user, interface):
    """Make `interface` the one its server PXE-boots from; the others lose the flag."""
    return update_interface(interface, user=user, boot=True)


@transaction.atomic
def sync_interfaces(server, *, user, interfaces):
    """Make the server have these interfaces (dicts of name, mac, boot), matched by name, then
    by MAC. Interfaces not listed are left alone. Returns a list of readable changes."""
    changes = []
    current = {iface.name: iface for iface in server.interfaces.all()}
    by_mac = {iface.mac: iface for iface in current.values()}
    boot = None
    for item in interfaces:
        fields = _interface_fields({"name": item["name"], "mac": item["mac"]})
        existing = current.get(fields["name"]) or by_mac.get(fields["mac"])
        if existing is None:
            existing = create_interface(user=user, server=server, **fields)
            changes.append(f"interface {existing.name} added ({existing.mac})")
        else:
            diff = {k: v for k, v in fields.items() if getattr(existing, k) != v}
            if diff:
                was = {k: getattr(existing, k) for k in diff}
                update_interface(existing, user=user, **diff)
                changes.extend(
                    f"interface {existing.name}: {k} {was[k]} → {v}" for k, v in diff.items()
                )
        if item.get("boot"):
            boot = existing
    if boot is not None and not boot.boot:
        set_boot_interface(user=user, interface=boot)
        changes.append(f"boot interface → {boot.name}")
    return changes


# Bulk -----------------------------------------------------------------------------------------


def _check_size(items):
    if len(items) > MAX_BULK:
        raise ValidationError(f"At most {MAX_BULK} items per bulk request.")
    if not items:
        raise ValidationError("No items given.")


def _each(items, apply):
    """Apply `apply(index, item)` to every item in its own savepoint; BulkError if any failed."""
    results, errors = [], {}
    for index, item in enumerate(items):
        try:
            with transaction.atomic():
                results.append(apply(index, item))
        except (ValidationError, PermissionDenied) as exc:
            errors[index] = error_fields(exc)
    if errors:
        raise BulkError(errors)
    return results


def _scoped(user, ids, action):
    servers = rbac.restrict(Server.objects.select_for_update(of=("self",)), user, action)
    return {server.pk: server for server in servers.filter(pk__in=[i for i in ids if i])}


def _not_found(server_id):
    return ValidationError({"id": f"No server with id {server_id}."})


@transaction.atomic
def bulk_create_servers(*, user, items):
    """Create every server of `items` (dicts of fields, optionally `interfaces`) or none."""
    rbac.require(user, "inventory.add_server")
    _check_size(items)
    return _each(items, lambda index, fields: create_server(user=user, **fields))


@transaction.atomic
def bulk_update_servers(*, user, items):
    """Apply [{"id": …, field: value, …}, …] to servers the user may change, all or none."""
    rbac.require(user, "inventory.change_server")
    _check_size(items)
    servers = _scoped(user, [_id(item.get("id")) for item in items], "change")

    def apply(index, item):
        fields = dict(item)
        server = servers.get(_id(fields.pop("id", None)))
        if server is None:
            raise _not_found(item.get("id"))
        return update_server(server, user=user, **fields)

    return _each(items, apply)


@transaction.atomic
def bulk_delete_servers(*, user, ids):
    rbac.require(user, "inventory.delete_server")
    _check_size(ids)
    servers = _scoped(user, [_id(i) for i in ids], "delete")

    def apply(index, server_id):
        server = servers.get(_id(server_id))
        if server is None:
            raise _not_found(server_id)
        delete_server(server, user=user)
        return server_id

    return _each(ids, apply)


@transaction.atomic
def bulk_set_status(*, user, ids, status):
    return bulk_update_servers(user=user, items=[{"id": i, "status": status} for i in ids])


@transaction.atomic
def bulk_add_tags(*, user, ids, tags):
    rbac.require(user, "inventory.change_server")
    _check_size(ids)
    tags = normalise_tags(tags)
    if not tags:
        raise ValidationError({"tags": "Name at least one tag."})
    servers = _scoped(user, [_id(i) for i in ids], "change")

    def apply(index, server_id):
        server = servers.get(_id(server_id))
        if server is None:
            raise _not_found(server_id)
        return add_tags(server, user=user, tags=tags)

    return _each(ids, apply)


def _id(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None

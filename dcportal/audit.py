"""The audit trail: every create, update, delete or action done through a service.

Services call `snapshot()` before and after a change and `record()` with both; secrets are
redacted here, so a diff shows that a password changed but never what it was or became.
"""

import datetime
import decimal
import ipaddress
import uuid

from django.contrib.contenttypes.models import ContentType
from django.db import models

from dcportal import requestcontext
from dcportal.secrets import REDACTED, EncryptedTextField, SecretStr

ALWAYS_REDACTED = frozenset({"password", "secret", "key_hash", "private_key", "token_hash"})


def _redacted_fields(model):
    names = set(getattr(model, "audit_redact", ())) | ALWAYS_REDACTED
    names.update(f.name for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField))
    return names


def _bookkeeping_fields(model):
    # auto_now timestamps move on every save: they say when, which the event itself records,
    # and left in the diff they would make every no-op save look like a change.
    return {f.name for f in model._meta.concrete_fields if getattr(f, "auto_now", False)}


def _plain(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, SecretStr):
        return REDACTED
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(
        value, (decimal.Decimal, uuid.UUID, ipaddress._BaseAddress, ipaddress._BaseNetwork)
    ):
        return str(value)
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def snapshot(instance, m2m=True):
    """Field values of an instance as raw Python values (foreign keys by id, m2m as id lists)."""
    if instance is None:
        return {}
    data = {f.name: getattr(instance, f.attname) for f in instance._meta.concrete_fields}
    if m2m and instance.pk is not None:
        for field in instance._meta.many_to_many:
            data[field.name] = sorted(getattr(instance, field.name).values_list("pk", flat=True))
    return data


def diff(model, before, after):
    """{field: [old, new]} for the fields that differ; secrets appear only as redacted."""
    redact = _redacted_fields(model)
    skip = _bookkeeping_fields(model)
    changes = {}
    for name in sorted((set(before) | set(after)) - skip):
        old, new = before.get(name), after.get(name)
        if old == new or (name not in before and new in (None, "", [], {})):
            # Unchanged, or empty on creation: nothing worth reading in the trail.
            continue
        if name in redact:
            changes[name] = [
                REDACTED if old not in (None, "") else None,
                REDACTED if new not in (None, "") else None,
            ]
        else:
            changes[name] = [_plain(old), _plain(new)]
    return changes


def _model_of(instance):
    # Not type(): request.user is a SimpleLazyObject, and _meta sees through such wrappers.
    return instance._meta.model


def tenant_id_of(instance):
    """The tenant id the object belongs to (for audit scoping), or None for global objects."""
    path = getattr(_model_of(instance), "tenancy", None)
    if path is None:
        return None
    if path == "self":
        return instance.pk
    value = instance
    for part in path.split("__"):
        value = getattr(value, part, None)
        if value is None:
            return None
    return value.pk


def record(*, user, action, obj, before=None, after=None, verb="", extra=None):
    """Write one AuditEvent for `obj` with the diff between the snapshots `before` and `after`."""
    from dcportal.models import AuditEvent

    ctx = requestcontext.current()
    model = _model_of(obj)
    changes = diff(model, before or {}, after or {})
    if extra:
        changes.update({key: _plain(value) for key, value in extra.items()})
    actor = user if user is not None and user.is_authenticated else None
    return AuditEvent.objects.create(
        actor=actor,
        actor_name=actor.get_username() if actor else "system",
        token_id=ctx.token_id,
        via=ctx.via or "system",
        action=action,
        verb=verb,
        content_type=ContentType.objects.get_for_model(model, for_concrete_model=False),
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        tenant_id=tenant_id_of(obj),
        changes=changes,
        request_id=ctx.request_id,
        source=ctx.source[:200],
    )


def created(*, user, obj, **kwargs):
    return record(user=user, action="create", obj=obj, after=snapshot(obj), **kwargs)


def deleted(*, user, obj, before, **kwargs):
    return record(user=user, action="delete", obj=obj, before=before, **kwargs)


class Tracker:
    """Snapshot an object before a change and record the update after it, if anything changed.

    with audit.Tracker(user, obj):
        obj.name = "new"
        obj.save()
    """

    def __init__(self, user, obj, verb=""):
        self.user, self.obj, self.verb = user, obj, verb

    def __enter__(self):
        self.before = snapshot(self.obj)
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            after = snapshot(self.obj)
            if self.verb or diff(_model_of(self.obj), self.before, after):
                record(
                    user=self.user,
                    action="action" if self.verb else "update",
                    verb=self.verb,
                    obj=self.obj,
                    before=self.before,
                    after=after,
                )
        return False


def model_fields(model):
    return [f for f in model._meta.concrete_fields if not isinstance(f, models.AutoField)]

"""Platform writes: the generic audited create/update/delete every app builds on, and the
services for tenants, roles, API tokens and credentials.

Every function takes the acting user first (keyword-only), checks permission and tenant, runs
inside a transaction, validates with the model's full_clean() and writes the audit event.
"""

import hashlib
import hmac
import secrets as pysecrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from dcportal import audit, rbac
from dcportal.models import ApiToken, Credential, Role, Tenant

TOKEN_PREFIX = "dcp"  # noqa: S105 (a marker that makes leaked tokens easy to grep for)


def _tenant_of(obj):
    tenant_id = audit.tenant_id_of(obj)
    return None if tenant_id is None else Tenant(pk=tenant_id)


def _save(obj, **save_kwargs):
    obj.full_clean()
    try:
        with transaction.atomic():
            obj.save(**save_kwargs)
    except IntegrityError as exc:
        # A constraint full_clean() could not see (a race, an exclusion constraint...).
        raise ValidationError(f"The database refused the change: {exc.__cause__ or exc}") from None


@transaction.atomic
def create_object(model, /, *, user, m2m=None, **fields):
    """Validate, save and audit a new object; returns it.

    `model` (and `obj` below) are positional-only so that a model with a field of that name
    (Server.model) can still be given it in `fields`."""
    rbac.require(user, rbac.permission_code(model, "add"))
    obj = model(**fields)
    rbac.check_tenant(user, _tenant_of(obj), type(obj))
    _save(obj)
    for name, values in (m2m or {}).items():
        getattr(obj, name).set(values)
    audit.created(user=user, obj=obj)
    return obj


@transaction.atomic
def update_object(obj, /, *, user, m2m=None, **fields):
    """Apply field changes (and m2m sets) to an object the caller has already scoped."""
    rbac.require(user, rbac.permission_code(type(obj), "change"))
    rbac.check_tenant(user, _tenant_of(obj), type(obj))
    with audit.Tracker(user, obj):
        for name, value in fields.items():
            setattr(obj, name, value)
        rbac.check_tenant(user, _tenant_of(obj), type(obj))
        _save(obj)
        for name, values in (m2m or {}).items():
            getattr(obj, name).set(values)
    return obj


@transaction.atomic
def delete_object(obj, *, user):
    rbac.require(user, rbac.permission_code(type(obj), "delete"))
    rbac.check_tenant(user, _tenant_of(obj), type(obj))
    before = audit.snapshot(obj)
    pk = obj.pk
    try:
        with transaction.atomic():
            obj.delete()
    except IntegrityError as exc:
        raise ValidationError(f"{obj} is still in use: {exc.__cause__ or exc}") from None
    obj.pk = pk
    audit.deleted(user=user, obj=obj, before=before)


def each_or_none(items, apply, *, name=str):
    """apply(item) for every item in one transaction, or for none: when any item refuses
    (ValidationError), everything is rolled back and one ValidationError lists every refusal,
    each prefixed with name(item). Returns apply's results in order."""
    results, problems = [], []
    with transaction.atomic():
        for item in items:
            try:
                with transaction.atomic():
                    results.append(apply(item))
            except ValidationError as exc:
                problems.extend(f"{name(item)}: {message}" for message in exc.messages)
        if problems:
            raise ValidationError(problems)
    return results


# Tenants and membership ---------------------------------------------------------------------


def create_tenant(*, user, name, slug, description="", members=(), groups=()):
    return create_object(
        Tenant,
        user=user,
        name=name,
        slug=slug,
        description=description,
        m2m={"members": members, "groups": groups},
    )


# Roles ----------------------------------------------------------------------------------------


def _subject_label(subject):
    return (
        f"group:{subject.name}" if isinstance(subject, Group) else f"user:{subject.get_username()}"
    )


def assign_role(*, user, role, subject):
    """Give a role to a user or a group (xe subject-role-add). False if it already held it."""
    return _set_holder(user, role, subject, hold=True)


def unassign_role(*, user, role, subject):
    """Take a role from a user or a group. False if it did not hold it."""
    return _set_holder(user, role, subject, hold=False)


@transaction.atomic
def _set_holder(user, role, subject, *, hold):
    rbac.require(user, "dcportal.change_role")
    relation = role.groups if isinstance(subject, Group) else role.users
    if relation.filter(pk=subject.pk).exists() == hold:
        return False
    (relation.add if hold else relation.remove)(subject)
    audit.record(
        user=user,
        action="action",
        verb="assign" if hold else "unassign",
        obj=role,
        extra={"subject": _subject_label(subject)},
    )
    return True


def _permission(code):
    app_label, _, codename = code.partition(".")
    try:
        return Permission.objects.get(content_type__app_label=app_label, codename=codename)
    except Permission.DoesNotExist:
        raise ValidationError({"action": f"No such action: {code}"}) from None


@transaction.atomic
def grant_action(*, user, subject, action):
    """Give a single action ("app.codename") to a user, outside any role."""
    rbac.require(user, "dcportal.change_user")
    perm = _permission(action)
    subject.user_permissions.add(perm)
    audit.record(user=user, action="action", verb="grant", obj=subject, extra={"action": action})
    rbac.forget(subject)


@transaction.atomic
def revoke_action(*, user, subject, action):
    rbac.require(user, "dcportal.change_user")
    perm = _permission(action)
    subject.user_permissions.remove(perm)
    audit.record(user=user, action="action", verb="revoke", obj=subject, extra={"action": action})
    rbac.forget(subject)


# API tokens -----------------------------------------------------------------------------------
#
# Every bearer secret of the portal (API tokens here, enrolment tokens in inventory) has the shape
# "<marker>_<prefix>_<random>": the marker says what it is (and makes a leaked key easy to grep
# for), the prefix finds its row, and only a SHA-256 of the whole key is stored. The helpers below
# are shared by all of them.


def hash_key(key):
    return hashlib.sha256(key.encode()).hexdigest()


def mint_key(marker):
    """A fresh key for `marker`: returns (key, prefix, key_hash). Store only prefix and hash."""
    prefix = pysecrets.token_hex(6)
    key = f"{marker}_{prefix}_{pysecrets.token_urlsafe(32)}"
    return key, prefix, hash_key(key)


def key_prefix(key, marker):
    """The prefix part of a key of kind `marker`, or None if the key is not of that shape."""
    # The random part is urlsafe base64 and may itself contain "_": split off two fields only.
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != marker or not parts[1] or not parts[2]:
        return None
    return parts[1]


_NO_KEY_HASH = "-" * 64  # compared against when no row matches: no SHA-256 hex digest equals it


def find_by_key(queryset, key, marker):
    """The row of `queryset` (a model with `prefix` and `key_hash`) that `key` opens, or None.

    The prefix is the key's public name (lists show it), not part of its secret: the row is
    found by it, then the hash of the whole key is compared in constant time, also when no row
    has that prefix, so a wrong key takes the same steps whether its prefix exists or not.
    Whether the row is still usable (expiry, revocation) is the caller's business.
    """
    digest = hash_key(key)
    prefix = key_prefix(key, marker)
    row = queryset.filter(prefix=prefix).first() if prefix is not None else None
    stored = row.key_hash if row is not None else _NO_KEY_HASH
    if not hmac.compare_digest(stored, digest) or row is None:
        return None
    return row


def touch_last_used(row):
    """Record that a token was used, at most once a minute, so busy clients do not turn every
    request into a write. Not audited: it is bookkeeping, like a login timestamp."""
    now = timezone.now()
    if row.last_used is None or (now - row.last_used).total_seconds() > 60:
        type(row).objects.filter(pk=row.pk).update(last_used=now)
        row.last_used = now


@transaction.atomic
def create_token(*, user, name, owner=None, expires=None, write=True):
    """Mint a token; returns (token, key). The key exists only in this return value."""
    owner = owner or user
    if owner.pk != user.pk and not rbac.is_global(user):
        raise PermissionDenied("Only an admin can create a token for another user.")
    if not owner.is_active:
        raise ValidationError({"user": "That user is inactive."})
    if expires is not None and expires <= timezone.now():
        raise ValidationError({"expires": "The expiry must be in the future."})
    if ApiToken.objects.filter(user=owner, name=name).exists():
        raise ValidationError({"name": "This user already has a token with that name."})
    key, prefix, key_hash = mint_key(TOKEN_PREFIX)
    token = ApiToken(
        user=owner, name=name, prefix=prefix, key_hash=key_hash, expires=expires, write=write
    )
    _save(token)
    audit.created(user=user, obj=token)
    return token, key


@transaction.atomic
def revoke_token(*, user, token):
    if token.user_id != user.pk and not rbac.is_global(user):
        raise PermissionDenied("Only an admin can revoke another user's token.")
    if token.revoked is not None:
        return token
    with audit.Tracker(user, token, verb="revoke"):
        token.revoked = timezone.now()
        token.save(update_fields=["revoked"])
    return token


def authenticate_token(key):
    """The active token for `key` (its owner active too), or None. Constant-time comparison."""
    token = find_by_key(ApiToken.objects.select_related("user"), key, TOKEN_PREFIX)
    if token is None or not token.is_active or not token.user.is_active:
        return None
    touch_last_used(token)
    return token


# Credentials ----------------------------------------------------------------------------------


def create_credential(*, user, **fields):
    return create_object(Credential, user=user, **fields)


def update_credential(credential, *, user, **fields):
    if fields.get("secret") in ("", None):
        fields.pop("secret", None)  # an empty secret on update keeps the stored one
    return update_object(credential, user=user, **fields)


# Users ----------------------------------------------------------------------------------------


@transaction.atomic
def ensure_admin(*, username="admin", password=None):
    """Create the first admin account once. Returns the generated password, or None."""
    User = get_user_model()
    if User.objects.filter(username=username).exists():
        return None
    generated = password or pysecrets.token_urlsafe(12)
    admin = User.objects.create_user(
        username=username, password=generated, is_staff=True, is_superuser=True
    )
    Role.objects.get(name=rbac.ADMIN).users.add(admin)
    audit.created(user=None, obj=admin)
    return None if password else generated

"""Roles, permissions and tenant scope.

Roles follow XAPI's: a total order in which each role holds every action of the roles below it.
An action is a Django permission ("app_label.codename"); apps declare custom ones (power, deploy,
migrate...) in their models' Meta.permissions and the patterns below pick them up.

`restrict(queryset, user, action)` is the one gate every list, detail and write goes through in
the portal, the API and the CLI.
"""

import fnmatch
from dataclasses import dataclass

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db import transaction
from django.db.models import Q
from django.http import Http404

ADMIN = "admin"


@dataclass(frozen=True)
class RoleSpec:
    name: str
    rank: int
    description: str
    grants: tuple = ()  # patterns over "app_label.codename" added at this rank
    denies: tuple = ()  # patterns taken out of this spec's own grants


# Highest first. A role holds its own grants plus the grants of every role below it.
ROLES = (
    RoleSpec(
        ADMIN,
        60,
        "Everything, across all tenants: users, roles, tenants, secrets export.",
        grants=("*",),
    ),
    RoleSpec(
        "operator",
        50,
        "Runs the fleet in its tenants: inventory, deployment, power, virtualization and "
        "certificates, credentials and jobs; not users, roles or tenants.",
        grants=(
            "inventory.*",
            "deploy.*",
            "virt.*",
            "ca.*",
            "dcportal.*_credential",
            "dcportal.cancel_job",
        ),
        denies=("ca.export_*",),
    ),
    RoleSpec(
        "vm-power-admin",
        40,
        "vm-admin plus placement and migration of VMs within a pool.",
        grants=("virt.pool_migrate", "virt.*_placement"),
    ),
    RoleSpec(
        "vm-admin",
        30,
        "vm-operator plus creating, changing and destroying VMs and their devices.",
        grants=(
            "virt.add_vm*",
            "virt.change_vm*",
            "virt.delete_vm*",
            "virt.install_vm",
        ),
    ),
    RoleSpec(
        "vm-operator",
        20,
        "read-only plus starting, stopping and rebooting VMs and opening their consoles.",
        grants=("virt.operate_vm", "virt.console_vm"),
    ),
    RoleSpec(
        "read-only",
        10,
        "Sees everything in its tenants, changes nothing.",
        grants=("*.view_*",),
        denies=("dcportal.view_apitoken", "auth.*", "admin.*", "sessions.*", "contenttypes.*"),
    ),
)
ROLE_NAMES = tuple(spec.name for spec in ROLES)


def role_codes(spec, codes):
    """The permission codes ("app.codename") a role holds out of `codes`.

    Each spec's denies only trim that spec's own grants; a role is the union over itself
    and every role below it.
    """
    granted = set()
    for other in ROLES:
        if other.rank <= spec.rank:
            own = {code for pattern in other.grants for code in fnmatch.filter(codes, pattern)}
            for pattern in other.denies:
                own.difference_update(fnmatch.filter(own, pattern))
            granted |= own
    return granted


def all_permission_codes():
    perms = Permission.objects.select_related("content_type")
    return {f"{p.content_type.app_label}.{p.codename}": p for p in perms}


@transaction.atomic
def sync_roles():
    """Create or update the built-in roles so they hold exactly their actions. Returns changes."""
    from dcportal.models import Role

    perms = all_permission_codes()
    codes = list(perms)
    report = {}
    for spec in ROLES:
        role, created = Role.objects.update_or_create(
            name=spec.name,
            defaults={"rank": spec.rank, "description": spec.description, "builtin": True},
        )
        wanted = {perms[code].pk for code in role_codes(spec, codes)}
        have = set(role.permissions.values_list("pk", flat=True))
        if wanted != have:
            role.permissions.set(wanted)
        report[spec.name] = {
            "created": created,
            "added": len(wanted - have),
            "removed": len(have - wanted),
            "total": len(wanted),
        }
    return report


class RoleBackend(ModelBackend):
    """Django's model backend plus the permissions of the user's roles (direct or via groups)."""

    def get_role_permissions(self, user_obj):
        from dcportal.models import Role

        roles = Role.objects.filter(Q(users=user_obj) | Q(groups__user=user_obj))
        perms = Permission.objects.filter(roles__in=roles).values_list(
            "content_type__app_label", "codename"
        )
        return {f"{app}.{codename}" for app, codename in perms}

    def get_all_permissions(self, user_obj, obj=None):
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        if not hasattr(user_obj, "_dcportal_perm_cache"):
            user_obj._dcportal_perm_cache = set(
                super().get_all_permissions(user_obj)
            ) | self.get_role_permissions(user_obj)
        return user_obj._dcportal_perm_cache


def user_roles(user):
    """Names of the user's roles (direct or through groups), highest first."""
    from dcportal.models import Role

    if not user.is_authenticated:
        return []
    if not hasattr(user, "_dcportal_roles"):
        user._dcportal_roles = list(
            Role.objects.filter(Q(users=user) | Q(groups__user=user))
            .distinct()
            .order_by("-rank")
            .values_list("name", flat=True)
        )
    return user._dcportal_roles


def is_global(user):
    """Admins (superusers and holders of the admin role) act across every tenant."""
    if not user.is_authenticated or not user.is_active:
        return False
    return user.is_superuser or ADMIN in user_roles(user)


def tenant_ids(user):
    """Ids of the tenants the user belongs to, directly or through groups."""
    from dcportal.models import Tenant

    if not user.is_authenticated:
        return set()
    if not hasattr(user, "_dcportal_tenant_ids"):
        user._dcportal_tenant_ids = set(
            Tenant.objects.filter(Q(members=user) | Q(groups__user=user)).values_list(
                "pk", flat=True
            )
        )
    return user._dcportal_tenant_ids


def forget(user):
    """Drop the per-object caches after roles, groups or tenants change."""
    for attr in (
        "_dcportal_perm_cache",
        "_dcportal_roles",
        "_dcportal_tenant_ids",
        "_perm_cache",
        "_user_perm_cache",
        "_group_perm_cache",
    ):
        user.__dict__.pop(attr, None)


def permission_code(model, action):
    """'view' -> 'app.view_model'; 'power_server' -> 'app.power_server'; 'app.x' stays."""
    if "." in action:
        return action
    meta = model._meta
    if action in ("view", "add", "change", "delete"):
        return f"{meta.app_label}.{action}_{meta.model_name}"
    return f"{meta.app_label}.{action}"


def tenancy_of(model):
    try:
        return model.tenancy
    except AttributeError:
        raise ImproperlyConfigured(
            f"{model._meta.label} does not declare `tenancy` (a path to Tenant or GLOBAL)"
        ) from None


def tenant_filter(model, ids):
    path = tenancy_of(model)
    if path == "self":
        return Q(pk__in=ids)
    return Q(**{f"{path}__in": ids})


def is_shared(model):
    """A model whose objects belong to a tenant or, with no tenant, to every tenant (a catalogue:
    operating systems, templates, profiles). Everyone in scope sees the shared ones; only a
    global admin may change them, since a change reaches every tenant's servers."""
    return getattr(model, "shared_tenancy", False)


def restrict(queryset, user, action="view"):
    """The objects of `queryset` the user may take `action` on: permission, then tenant scope."""
    model = queryset.model
    path = tenancy_of(model)
    if not user.has_perm(permission_code(model, action)):
        return queryset.none()
    if path is None or is_global(user):
        return queryset
    scope = tenant_filter(model, tenant_ids(user))
    if is_shared(model) and action == "view":
        scope |= Q(**{f"{path}__isnull": True})
    return queryset.filter(scope)


def get_restricted(queryset, user, action="view", **lookup):
    """One object the user may act on, or Http404 (also when it belongs to another tenant)."""
    try:
        return restrict(queryset, user, action).get(**lookup)
    except queryset.model.DoesNotExist:
        raise Http404(f"No {queryset.model._meta.verbose_name} matches the given query.") from None


def require(user, perm):
    """Raise PermissionDenied unless the user holds `perm` ("app.codename")."""
    if not user.has_perm(perm):
        raise PermissionDenied(f"You lack the permission {perm}.")


def check_tenant(user, tenant, model=None):
    """Refuse to place an object in a tenant the user does not belong to (or, for a shared
    model, to make it shared unless the user is a global admin)."""
    if is_global(user):
        return
    if tenant is None:
        if model is not None and is_shared(model):
            raise PermissionDenied("Only an admin may change what every tenant shares.")
        return
    if tenant.pk not in tenant_ids(user):
        raise PermissionDenied("You do not belong to that tenant.")

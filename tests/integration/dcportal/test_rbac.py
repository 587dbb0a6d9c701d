"""Roles in the database: sync_roles, the role backend, single actions, and `manage.py roles`."""

from io import StringIO

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import CommandError, call_command

from dcportal import rbac, services
from dcportal.models import AuditEvent, Role

pytestmark = pytest.mark.django_db

ORDER = ["admin", "operator", "vm-power-admin", "vm-admin", "vm-operator", "read-only"]


def role_actions(name):
    return {
        f"{app}.{codename}"
        for app, codename in Role.objects.get(name=name).permissions.values_list(
            "content_type__app_label", "codename"
        )
    }


def fresh(user):
    """The user as a new request would load it: no permission caches."""
    return type(user).objects.get(pk=user.pk)


def roles_command(*args, user="root"):
    out = StringIO()
    call_command("roles", *args, "--user", user, stdout=out)
    return out.getvalue()


# sync_roles ---------------------------------------------------------------------------------


def test_builtin_roles_exist_in_total_order():
    assert list(Role.objects.values_list("name", flat=True)) == ORDER
    assert all(Role.objects.values_list("builtin", flat=True))


def test_each_role_holds_what_its_spec_computes():
    codes = list(rbac.all_permission_codes())
    for spec in rbac.ROLES:
        assert role_actions(spec.name) == rbac.role_codes(spec, codes), spec.name


def test_roles_nest_over_the_real_permissions():
    for higher, lower in zip(ORDER, ORDER[1:], strict=False):
        assert role_actions(lower) <= role_actions(higher), (higher, lower)
    assert role_actions("admin") == set(rbac.all_permission_codes())


def test_sync_roles_is_idempotent():
    before = {name: role_actions(name) for name in ORDER}
    report = rbac.sync_roles()
    assert set(report) == set(ORDER)
    for name, change in report.items():
        assert change == {"created": False, "added": 0, "removed": 0, "total": len(before[name])}
    assert {name: role_actions(name) for name in ORDER} == before
    assert Role.objects.count() == len(ORDER)


def test_sync_roles_repairs_drift():
    operator, read_only = Role.objects.get(name="operator"), Role.objects.get(name="read-only")
    dropped = Permission.objects.get(codename="add_credential")
    smuggled = Permission.objects.get(codename="change_role")
    operator.permissions.remove(dropped)
    read_only.permissions.add(smuggled)
    report = rbac.sync_roles()
    assert report["operator"]["added"] == 1
    assert report["read-only"]["removed"] == 1
    assert "dcportal.add_credential" in role_actions("operator")
    assert "dcportal.change_role" not in role_actions("read-only")


def test_sync_roles_picks_up_new_actions_by_pattern():
    # As a new ca model with a custom export action would after its migration.
    content_type = ContentType.objects.create(app_label="ca", model="hostkey")
    for codename in ("view_hostkey", "sign_hostkey", "export_hostkey"):
        Permission.objects.create(content_type=content_type, codename=codename, name=codename)
    rbac.sync_roles()
    assert "ca.view_hostkey" in role_actions("read-only")
    assert {"ca.sign_hostkey", "ca.view_hostkey"} <= role_actions("operator")
    assert "ca.export_hostkey" not in role_actions("operator")
    assert "ca.export_hostkey" in role_actions("admin")
    assert "ca.sign_hostkey" not in role_actions("vm-power-admin")


# The role backend ----------------------------------------------------------------------------


def test_role_given_to_a_user_gives_its_actions(make_user):
    user = make_user("op", roles=["operator"])
    assert user.has_perm("dcportal.add_credential")
    assert user.has_perm("dcportal.view_job")
    assert not user.has_perm("dcportal.change_role")
    assert user.get_all_permissions() == role_actions("operator")
    assert rbac.user_roles(user) == ["operator"]
    assert not rbac.is_global(user)


def test_role_given_to_a_group_gives_its_actions(make_user):
    group = Group.objects.create(name="vm-team")
    Role.objects.get(name="vm-operator").groups.add(group)
    user = make_user("vmops")
    assert not user.has_perm("dcportal.view_credential")
    user.groups.add(group)
    user = fresh(user)
    assert user.has_perm("dcportal.view_credential")
    assert user.get_all_permissions() == role_actions("vm-operator")
    assert rbac.user_roles(user) == ["vm-operator"]

    user.groups.remove(group)
    assert not fresh(user).has_perm("dcportal.view_credential")


def test_roles_from_user_and_group_add_up_highest_first(make_user):
    group = Group.objects.create(name="ops")
    Role.objects.get(name="operator").groups.add(group)
    user = make_user("both", roles=["read-only", "operator"])
    user.groups.add(group)
    assert rbac.user_roles(fresh(user)) == ["operator", "read-only"]


def test_admin_role_through_a_group_is_global(make_user):
    group = Group.objects.create(name="admins")
    Role.objects.get(name=rbac.ADMIN).groups.add(group)
    user = make_user("boss")
    assert not rbac.is_global(user)
    user.groups.add(group)
    user = fresh(user)
    assert rbac.is_global(user)
    assert user.has_perm("dcportal.change_role")


def test_no_role_no_actions(make_user):
    user = make_user("nobody")
    assert user.get_all_permissions() == set()
    assert rbac.user_roles(user) == []


def test_inactive_user_holds_nothing(make_user):
    user = make_user("gone", roles=[rbac.ADMIN], is_active=False)
    assert not user.has_perm("dcportal.view_credential")
    assert not rbac.is_global(user)


def test_forget_drops_cached_permissions(make_user):
    user = make_user("op")
    assert not user.has_perm("dcportal.add_credential")  # fills the cache
    Role.objects.get(name="operator").users.add(user)
    assert not user.has_perm("dcportal.add_credential")  # still the cached answer
    rbac.forget(user)
    assert user.has_perm("dcportal.add_credential")


# Single actions (xe subject-role-add for one action) -------------------------------------------


def test_grant_action_gives_one_action_beside_the_role(admin_user, make_user):
    user = make_user("viewer", roles=["read-only"])
    services.grant_action(user=admin_user, subject=user, action="dcportal.add_credential")
    assert user.has_perm("dcportal.add_credential")
    assert not user.has_perm("dcportal.change_credential")
    assert fresh(user).has_perm("dcportal.add_credential")
    event = AuditEvent.objects.get(verb="grant")
    assert event.actor == admin_user
    assert event.object_id == str(user.pk)
    assert event.changes == {"action": "dcportal.add_credential"}

    services.revoke_action(user=admin_user, subject=user, action="dcportal.add_credential")
    assert not user.has_perm("dcportal.add_credential")
    assert AuditEvent.objects.filter(verb="revoke", object_id=str(user.pk)).count() == 1


def test_granted_action_works_through_the_api(admin_user, make_user, tenants, api):
    user = make_user("viewer", roles=["read-only"], tenants=[tenants[0]])
    body = {"tenant": "acme", "name": "bmc", "username": "root", "secret": "s3cret"}
    client = api.as_user(user)
    assert client.post("/api/credentials/", body, format="json").status_code == 403
    services.grant_action(user=admin_user, subject=user, action="dcportal.add_credential")
    assert client.post("/api/credentials/", body, format="json").status_code == 201


def test_grant_of_an_unknown_action_is_a_validation_error(admin_user, make_user):
    user = make_user("viewer")
    with pytest.raises(ValidationError) as info:
        services.grant_action(user=admin_user, subject=user, action="virt.fly_vm")
    assert "action" in info.value.message_dict
    assert not AuditEvent.objects.filter(verb="grant").exists()


def test_only_who_may_change_users_grants_actions(make_user):
    operator = make_user("op", roles=["operator"])
    with pytest.raises(PermissionDenied):
        services.grant_action(user=operator, subject=operator, action="dcportal.change_role")
    assert not fresh(operator).has_perm("dcportal.change_role")


# manage.py roles -----------------------------------------------------------------------------


def test_roles_list_shows_every_role_in_order_with_holders(admin_user, make_user):
    make_user("alice", roles=["vm-admin"])
    group = Group.objects.create(name="noc")
    Role.objects.get(name="read-only").groups.add(group)
    # One "RANK NAME N actions HOLDERS" line per role, each followed by its description.
    lines = [line for line in roles_command("list").splitlines() if line.split()[0].isdigit()]
    assert [line.split()[1] for line in lines] == ORDER
    by_name = {line.split()[1]: line for line in lines}
    assert by_name["admin"].endswith("root")
    assert by_name["vm-admin"].endswith("alice")
    assert by_name["read-only"].endswith("@noc")
    assert f"{len(role_actions('operator'))} actions" in by_name["operator"]


def test_roles_show_lists_the_actions(admin_user):
    shown = {line.strip() for line in roles_command("show", "operator").splitlines()[1:]}
    assert shown == role_actions("operator")


def test_roles_assign_and_unassign_a_user(admin_user, make_user):
    bob = make_user("bob")
    assert "assign operator: done" in roles_command("assign", "operator", "--to-user", "bob")
    assert rbac.user_roles(fresh(bob)) == ["operator"]
    event = AuditEvent.objects.get(verb="assign")
    assert (event.actor_name, event.via, event.changes) == ("root", "cli", {"subject": "user:bob"})
    assert event.object_repr == "operator"
    assert event.request_id

    # Assigning again changes nothing and writes nothing.
    assert "nothing to do" in roles_command("assign", "operator", "--to-user", "bob")
    assert AuditEvent.objects.filter(verb="assign").count() == 1

    assert "unassign operator: done" in roles_command("unassign", "operator", "--to-user", "bob")
    assert rbac.user_roles(fresh(bob)) == []
    assert AuditEvent.objects.get(verb="unassign").changes == {"subject": "user:bob"}


def test_roles_assign_to_a_group(admin_user, make_user):
    group = Group.objects.create(name="noc")
    carol = make_user("carol")
    carol.groups.add(group)
    roles_command("assign", "read-only", "--to-group", "noc")
    assert fresh(carol).has_perm("dcportal.view_job")
    assert AuditEvent.objects.get(verb="assign").changes == {"subject": "group:noc"}


def test_roles_grant_and_revoke_a_single_action(admin_user, make_user):
    dave = make_user("dave", roles=["vm-operator"])
    assert "granted" in roles_command("grant", "dcportal.cancel_job", "--to-user", "dave")
    assert fresh(dave).has_perm("dcportal.cancel_job")
    assert AuditEvent.objects.get(verb="grant").changes == {"action": "dcportal.cancel_job"}
    roles_command("revoke", "dcportal.cancel_job", "--to-user", "dave")
    assert not fresh(dave).has_perm("dcportal.cancel_job")


@pytest.mark.parametrize(
    "args",
    [
        ("assign", "admin", "--to-user", "op"),
        ("assign", "operator", "--to-user", "eve"),
        ("unassign", "admin", "--to-user", "root"),
        ("grant", "dcportal.change_role", "--to-user", "op"),
    ],
)
def test_a_non_admin_cannot_hand_out_rights(admin_user, make_user, tenants, args):
    operator = make_user("op", roles=["operator"], tenants=[tenants[0]])
    make_user("eve")
    events = AuditEvent.objects.count()
    with pytest.raises(CommandError, match="permission denied"):
        roles_command(*args, user="op")
    assert AuditEvent.objects.count() == events
    assert rbac.user_roles(fresh(operator)) == ["operator"]
    assert not rbac.is_global(fresh(operator))
    assert not Role.objects.get(name="operator").users.filter(username="eve").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("assign", "superhero", "--to-user", "root"), "no role"),
        (("assign", "operator", "--to-user", "nobody"), "no such user"),
        (("assign", "operator"), "exactly one"),
        (("assign",), "needs a role"),
        (("grant", "dcportal.cancel_job"), "--to-user"),
        (("grant", "dcportal.nothing", "--to-user", "root"), "No such action"),
    ],
)
def test_roles_command_errors_are_cli_errors(admin_user, args, message):
    with pytest.raises(CommandError, match=message):
        roles_command(*args)


def test_roles_command_needs_an_active_acting_user(admin_user, make_user):
    make_user("former", roles=[rbac.ADMIN], is_active=False)
    make_user("bob")
    with pytest.raises(CommandError, match="no active portal user"):
        roles_command("assign", "operator", "--to-user", "bob", user="former")
    assert not Role.objects.get(name="operator").users.exists()


# Roles through the API -----------------------------------------------------------------------


def test_api_role_assignment_is_for_admins(admin_user, make_user, tenants, api):
    operator = make_user("op", roles=["operator"], tenants=[tenants[0]])
    make_user("bob")
    admin_role = Role.objects.get(name=rbac.ADMIN)
    url = f"/api/roles/{admin_role.pk}/assign/"

    response = api.as_user(operator).post(url, {"user": "op"}, format="json")
    assert response.status_code == 403
    assert not rbac.is_global(fresh(operator))

    role = Role.objects.get(name="operator")
    response = api.as_user(admin_user).post(
        f"/api/roles/{role.pk}/assign/", {"user": "bob"}, format="json"
    )
    assert response.status_code == 200
    assert "bob" in response.json()["users"]
    assert AuditEvent.objects.get(verb="assign").via == "api"


def test_api_role_assignment_wants_exactly_one_subject(admin_user, api):
    role = Role.objects.get(name="operator")
    response = api.as_user(admin_user).post(f"/api/roles/{role.pk}/assign/", {}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"]

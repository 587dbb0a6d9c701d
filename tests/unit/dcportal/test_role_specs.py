"""The built-in roles over a synthetic set of actions: no database, only dcportal.rbac.role_codes.

The codes below stand for what the apps will declare (custom actions in Meta.permissions), so the
role patterns are checked before those models exist.
"""

import pytest

from dcportal import rbac


def _crud(app, *models):
    return [
        f"{app}.{verb}_{model}" for model in models for verb in ("view", "add", "change", "delete")
    ]


CODES = [
    *_crud(
        "dcportal",
        "tenant",
        "user",
        "role",
        "apitoken",
        "credential",
        "auditevent",
        "job",
        "joblog",
    ),
    "dcportal.cancel_job",
    *_crud("auth", "group", "permission"),
    *_crud("admin", "logentry"),
    *_crud("sessions", "session"),
    *_crud("contenttypes", "contenttype"),
    *_crud("inventory", "server", "interface"),
    "inventory.power_server",
    *_crud("deploy", "installtemplate", "nodebuild"),
    "deploy.install_node",
    *_crud("virt", "pool", "vm", "vmdisk", "placement"),
    "virt.operate_vm",
    "virt.console_vm",
    "virt.install_vm",
    "virt.pool_migrate",
    *_crud("ca", "authority", "certificate"),
    "ca.sign_certificate",
    "ca.revoke_certificate",
    "ca.export_privatekey",
    "ca.export_authority",
    # A custom action with "view" inside its codename is not a view action.
    "ca.preview_certificate",
]
APPS_READ_ONLY_MAY_NOT_SEE = {"auth", "admin", "sessions", "contenttypes"}
ORDER = ["admin", "operator", "vm-power-admin", "vm-admin", "vm-operator", "read-only"]


def spec(name):
    return next(s for s in rbac.ROLES if s.name == name)


def codes_of(name, codes=CODES):
    return rbac.role_codes(spec(name), codes)


def test_roles_are_declared_highest_first_in_the_xapi_order():
    assert list(rbac.ROLE_NAMES) == ORDER
    ranks = [s.rank for s in rbac.ROLES]
    assert ranks == sorted(ranks, reverse=True)
    assert len(set(ranks)) == len(ranks)
    assert rbac.ROLE_NAMES[0] == rbac.ADMIN


@pytest.mark.parametrize(("higher", "lower"), list(zip(ORDER, ORDER[1:], strict=False)))
def test_each_role_strictly_contains_the_one_below(higher, lower):
    above, below = codes_of(higher), codes_of(lower)
    assert below <= above
    assert above - below, f"{higher} adds nothing over {lower}"


def test_admin_holds_every_action():
    assert codes_of("admin") == set(CODES)


def test_read_only_holds_exactly_the_view_actions_minus_its_denies():
    expected = {
        code
        for code in CODES
        if code.split(".", 1)[1].startswith("view_")
        and code.split(".", 1)[0] not in APPS_READ_ONLY_MAY_NOT_SEE
        and code != "dcportal.view_apitoken"
    }
    assert codes_of("read-only") == expected
    assert "ca.preview_certificate" not in expected


def test_read_only_cannot_see_tokens_or_the_django_internals():
    held = codes_of("read-only")
    assert "dcportal.view_apitoken" not in held
    assert not {c for c in held if c.split(".")[0] in APPS_READ_ONLY_MAY_NOT_SEE}


def test_operator_runs_the_fleet_but_exports_no_keys():
    held = codes_of("operator")
    for code in (
        "inventory.power_server",
        "inventory.add_server",
        "deploy.install_node",
        "virt.pool_migrate",
        "virt.delete_pool",
        "ca.sign_certificate",
        "ca.revoke_certificate",
        "dcportal.add_credential",
        "dcportal.delete_credential",
        "dcportal.cancel_job",
    ):
        assert code in held
    assert not {c for c in held if c.startswith("ca.export_")}


def test_operator_does_not_manage_users_roles_tenants_or_tokens():
    held = codes_of("operator")
    for code in (
        "dcportal.add_tenant",
        "dcportal.change_tenant",
        "dcportal.change_user",
        "dcportal.change_role",
        "dcportal.add_role",
        "dcportal.view_apitoken",
        "dcportal.delete_auditevent",
        "auth.change_group",
    ):
        assert code not in held
    # It still sees what read-only sees.
    assert "dcportal.view_tenant" in held


def test_denies_trim_only_their_own_roles_grants():
    # operator denies ca.export_* and read-only denies view_apitoken; admin keeps both.
    assert {"ca.export_privatekey", "dcportal.view_apitoken"} <= codes_of("admin")


def test_vm_operator_operates_but_does_not_create():
    held = codes_of("vm-operator")
    assert {"virt.operate_vm", "virt.console_vm", "virt.view_vm"} <= held
    for code in (
        "virt.add_vm",
        "virt.change_vm",
        "virt.delete_vm",
        "virt.install_vm",
        "virt.add_vmdisk",
        "inventory.power_server",
    ):
        assert code not in held


def test_vm_admin_creates_and_destroys_vms_and_their_devices():
    held = codes_of("vm-admin")
    assert {
        "virt.add_vm",
        "virt.change_vm",
        "virt.delete_vm",
        "virt.install_vm",
        "virt.add_vmdisk",
        "virt.delete_vmdisk",
        "virt.operate_vm",
    } <= held
    for code in (
        "virt.pool_migrate",
        "virt.change_placement",
        "virt.add_pool",
        "virt.change_pool",
        "inventory.add_server",
    ):
        assert code not in held


def test_vm_power_admin_adds_placement_and_migration_only():
    held = codes_of("vm-power-admin")
    assert {"virt.pool_migrate", "virt.add_placement", "virt.change_placement"} <= held
    assert held - codes_of("vm-admin") <= {c for c in CODES if c.startswith("virt.")}
    for code in ("virt.add_pool", "virt.delete_pool", "inventory.power_server"):
        assert code not in held


def test_a_new_app_is_picked_up_by_patterns_not_by_name():
    codes = [*CODES, "dns.view_zone", "dns.add_zone", "dns.export_zone"]
    assert "dns.view_zone" in codes_of("read-only", codes)
    assert "dns.add_zone" not in codes_of("operator", codes)
    assert {"dns.view_zone", "dns.add_zone", "dns.export_zone"} <= codes_of("admin", codes)


def test_only_existing_codes_are_granted():
    assert all(codes_of(name, []) == set() for name in ORDER)
    assert codes_of("vm-operator", ["virt.operate_vm"]) == {"virt.operate_vm"}


def test_role_codes_leaves_its_input_alone():
    codes = list(CODES)
    for name in ORDER:
        codes_of(name, codes)
    assert codes == CODES

"""inventory.power_services on the real database and Redis, with a scriptable test driver:
permissions and tenant scope, typed failures, the last known state, the audit, the manual
driver, where the password comes from, and the BMC services."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from dcportal import services as platform_services
from dcportal.models import AuditEvent
from dcportal.secrets import SecretStr
from inventory import power_services
from inventory.models import Bmc
from inventory.power.base import BootDevice
from tests.integration.inventory.power_helpers import (  # noqa: F401 (fixtures)
    add_fake_bmc,
    fake_bmcs_fixture,
    fast_retries_fixture,
    make_servers,
    planted,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def node(admin_user, tenants, fake_bmcs):
    (server,) = make_servers(admin_user, tenants[0], ["node01.acme.example"])
    add_fake_bmc(server, address="bmc-node01")
    return server


@pytest.fixture
def foreign(admin_user, tenants, fake_bmcs):
    (server,) = make_servers(admin_user, tenants[1], ["gx01.globex.example"])
    add_fake_bmc(server, address="bmc-gx01")
    return server


def run(user, server, action, **kwargs):
    return power_services.run_power_action(user=user, server=server, action=action, **kwargs)


def power_events(server):
    return AuditEvent.objects.filter(object_id=str(server.pk), action="action").order_by("pk")


# Permissions and scope ------------------------------------------------------------------------


def test_operator_switches_on_and_the_state_is_recorded(operator, node, fake_bmcs):
    result = run(operator, node, "on")

    assert result == {
        "server": node.pk,
        "hostname": "node01.acme.example",
        "action": "on",
        "ok": True,
        "status": "ok",
        "state": "on",
        "message": "on",
        "error": None,
    }
    assert fake_bmcs.states["bmc-node01"] == "on"
    node.bmc.refresh_from_db()
    assert node.bmc.power_state == "on"
    assert node.bmc.power_state_checked is not None


def test_read_only_may_ask_the_status_but_not_switch(viewer, node, fake_bmcs):
    assert run(viewer, node, "status")["state"] == "off"

    for action in ("on", "off", "cycle", "reset", "softoff", "bootdev-pxe"):
        with pytest.raises(PermissionDenied):
            run(viewer, node, action)
    assert [call[1] for call in fake_bmcs.calls] == ["status"]


def test_power_server_alone_powers_but_does_not_set_the_boot_device(
    make_user, admin_user, tenants, node, fake_bmcs
):
    user = make_user("powerer", tenants=[tenants[0]])
    platform_services.grant_action(user=admin_user, subject=user, action="inventory.power_server")

    assert run(user, node, "off")["ok"]
    with pytest.raises(PermissionDenied, match="set_boot_device"):
        run(user, node, "bootdev-pxe")

    platform_services.grant_action(
        user=admin_user, subject=user, action="inventory.set_boot_device"
    )
    assert run(user, node, "bootdev-pxe")["ok"]


def test_another_tenants_server_is_refused(operator, foreign, fake_bmcs):
    with pytest.raises(PermissionDenied):
        run(operator, foreign, "status")
    with pytest.raises(PermissionDenied):
        run(operator, foreign, "on")
    assert fake_bmcs.calls == []


def test_unknown_action_is_a_validation_error(operator, node):
    with pytest.raises(ValidationError, match="Unknown power action"):
        run(operator, node, "explode")


# Actions --------------------------------------------------------------------------------------


def test_boot_device_once_and_persistent(operator, node, fake_bmcs):
    once = run(operator, node, "bootdev-pxe")
    assert fake_bmcs.boot["bmc-node01"] == (BootDevice.PXE, True)
    assert (once["device"], once["persistent"]) == ("pxe", False)
    assert once["message"] == "boot device pxe, for the next boot only"

    always = run(operator, node, "bootdev-disk", persistent=True)
    assert fake_bmcs.boot["bmc-node01"] == (BootDevice.DISK, False)
    assert always["persistent"] is True


def test_sensors(viewer, node):
    result = run(viewer, node, "sensors")
    assert result["ok"]
    assert result["sensors"][0] == {"name": "CPU Temp", "value": 45.0, "unit": "C", "state": "ok"}
    assert result["state"] is None


def test_cycle_reset_and_softoff_record_what_the_bmc_reports(operator, node, fake_bmcs):
    assert run(operator, node, "cycle")["state"] == "on"
    assert run(operator, node, "softoff")["state"] == "off"
    assert run(operator, node, "reset")["message"] == "reset"


def test_status_is_not_audited_but_changes_are(operator, node):
    run(operator, node, "status")
    assert not power_events(node).exists()

    run(operator, node, "on")
    run(operator, node, "bootdev-pxe", persistent=True)
    on, boot = power_events(node)
    assert on.verb == "power-on"
    assert on.actor == operator
    assert on.changes == {"result": "ok", "driver": "tests-fake", "state": "on"}
    assert boot.verb == "set-boot-device"
    assert boot.changes["device"] == "pxe" and boot.changes["persistent"] is True


# Failures -------------------------------------------------------------------------------------


def test_wrong_password_is_a_fatal_failure_with_a_clear_message(operator, node, fake_bmcs):
    fake_bmcs.passwords["bmc-node01"] = "the-right-one"

    result = run(operator, node, "on")

    assert result["ok"] is False
    assert result["status"] == "failed"
    assert result["error"] == "fatal"
    assert "BMC refused the credentials" in result["message"]
    assert len(fake_bmcs.calls) == 1  # fatal: not retried
    event = power_events(node).get()
    assert event.changes["result"] == "failed"
    assert "refused the credentials" in event.changes["error"]
    node.bmc.refresh_from_db()
    assert node.bmc.power_state == "unknown"


def test_bmc_down_is_retried_until_the_deadline_then_fails(operator, node, fake_bmcs, fast_retries):
    Bmc.objects.filter(server=node).update(address="down-node01")
    lines = []

    result = run(operator, node, "status", log=lambda message, level="info": lines.append(level))

    assert result["error"] == "retryable"
    assert "connection refused" in result["message"]
    assert "Gave up after" in result["message"]
    assert len(fake_bmcs.calls) >= 2
    assert "warning" in lines  # each retry is logged


def test_a_transient_error_is_retried_and_succeeds(operator, node, fake_bmcs, settings):
    settings.POWER_RETRY_DEADLINE = 5
    fake_bmcs.retryable_failures["bmc-node01"] = 1

    result = run(operator, node, "on")

    assert result["ok"], result
    assert [call[1] for call in fake_bmcs.calls][:2] == ["on", "on"]


def test_server_without_a_bmc_fails_clearly(operator, admin_user, tenants):
    (server,) = make_servers(admin_user, tenants[0], ["bare.acme.example"])

    result = run(operator, server, "on")

    assert (result["status"], result["error"]) == ("failed", "fatal")
    assert result["message"] == "bare.acme.example has no BMC configured."


def test_a_driver_bug_fails_that_node_only(operator, node, fake_bmcs, monkeypatch):
    def broken(self, target):
        raise KeyError("surprise")

    monkeypatch.setattr(type(fake_bmcs), "enter", broken)

    result = run(operator, node, "on")

    assert result["error"] == "internal"
    assert "KeyError" in result["message"]


# The manual driver ----------------------------------------------------------------------------


def test_manual_driver_records_a_request_for_a_person(operator, admin_user, tenants):
    (server,) = make_servers(admin_user, tenants[0], ["old01.acme.example"])
    power_services.create_bmc(user=admin_user, server=server, driver="manual")
    lines = []

    result = run(operator, server, "on", log=lambda message, level="info": lines.append(message))

    assert result["status"] == "requested"
    assert result["ok"] is True
    assert result["message"] == "Manual driver: please switch old01.acme.example on"
    assert lines == ["Manual driver: please switch old01.acme.example on"]
    event = power_events(server).get()
    assert (event.verb, event.changes["result"]) == ("power-on", "requested")
    boot = run(operator, server, "bootdev-pxe")
    assert boot["message"] == (
        "Manual driver: please make old01.acme.example boot from the network (PXE) "
        "for the next boot only"
    )
    # Nothing to read: the state stays unknown, and sensors are not there.
    assert run(operator, server, "status")["state"] == "unknown"
    assert run(operator, server, "sensors")["error"] == "fatal"


# Targets: where the password comes from -------------------------------------------------------


def test_target_takes_the_bmcs_own_login_and_the_timeout(admin_user, node, settings):
    settings.POWER_TIMEOUT = 7
    bmc = Bmc.objects.get(server=node)
    target = power_services.bmc_target(bmc)
    assert target.username == "admin"
    assert target.password == bmc.password.reveal()
    assert target.options["timeout"] == 7
    assert target.label == "node01.acme.example"
    assert bmc.password.reveal() not in repr(target)

    bmc.options = {"timeout": 30}
    assert power_services.bmc_target(bmc).options["timeout"] == 30


def test_target_falls_back_to_the_credential(admin_user, tenants, fake_bmcs):
    (server,) = make_servers(admin_user, tenants[0], ["c01.acme.example"])
    secret = planted()
    credential = platform_services.create_credential(
        user=admin_user, tenant=tenants[0], name="ipmi", username="root", secret=secret
    )
    bmc = power_services.create_bmc(
        user=admin_user, server=server, driver="ipmi", address="10.0.0.9", credential=credential
    )
    target = power_services.bmc_target(Bmc.objects.get(pk=bmc.pk))
    assert (target.username, target.password) == ("root", secret)


# BMC services ---------------------------------------------------------------------------------


def test_bmc_password_is_kept_when_left_empty(admin_user, tenants):
    (server,) = make_servers(admin_user, tenants[0], ["s01.acme.example"])
    secret = planted()
    bmc = power_services.create_bmc(
        user=admin_user, server=server, address="10.0.0.1", username="u", password=secret
    )
    power_services.update_bmc(bmc, user=admin_user, password="", username="v")
    bmc = Bmc.objects.get(pk=bmc.pk)
    assert bmc.password == SecretStr(secret)
    assert bmc.username == "v"
    event = AuditEvent.objects.filter(object_id=str(bmc.pk), action="create").get()
    assert secret not in str(event.changes)


def test_pointing_a_bmc_elsewhere_forgets_the_known_state(admin_user, tenants):
    (server,) = make_servers(admin_user, tenants[0], ["s03.acme.example"])
    bmc = power_services.create_bmc(
        user=admin_user, server=server, address="10.0.0.3", username="u", password="p"
    )
    Bmc.objects.filter(pk=bmc.pk).update(power_state="on", power_state_checked=timezone.now())
    bmc = Bmc.objects.get(pk=bmc.pk)

    power_services.update_bmc(bmc, user=admin_user, username="other")
    assert Bmc.objects.get(pk=bmc.pk).power_state == "on"
    power_services.update_bmc(bmc, user=admin_user, address="10.0.0.33")
    bmc = Bmc.objects.get(pk=bmc.pk)
    assert (bmc.power_state, bmc.power_state_checked) == ("unknown", None)


def test_bmc_refuses_another_tenants_credential_and_a_move(admin_user, operator, tenants, node):
    theirs = platform_services.create_credential(
        user=admin_user, tenant=tenants[1], name="x", username="u", secret="s"
    )
    bmc = Bmc.objects.get(server=node)
    with pytest.raises(ValidationError, match="No such credential"):
        power_services.update_bmc(bmc, user=operator, credential=theirs)
    (other,) = make_servers(admin_user, tenants[0], ["other.acme.example"])
    with pytest.raises(ValidationError, match="stays with its server"):
        power_services.update_bmc(bmc, user=operator, server=other)


def test_read_only_cannot_write_bmcs(viewer, tenants, node, admin_user):
    (server,) = make_servers(admin_user, tenants[0], ["s02.acme.example"])
    with pytest.raises(PermissionDenied):
        power_services.create_bmc(user=viewer, server=server, driver="manual")
    with pytest.raises(PermissionDenied):
        power_services.update_bmc(Bmc.objects.get(server=node), user=viewer, address="x")


# Enqueueing -----------------------------------------------------------------------------------


def test_enqueue_checks_everything_before_queueing_anything(operator, admin_user, tenants, node):
    (bare,) = make_servers(admin_user, tenants[0], ["bare.acme.example"])
    with pytest.raises(ValidationError, match="No BMC configured for bare.acme.example"):
        power_services.enqueue_power(user=operator, servers=[node, bare], action="on")
    with pytest.raises(ValidationError, match="at least one"):
        power_services.enqueue_power(user=operator, servers=[], action="on")
    with pytest.raises(ValidationError, match="Unknown power action"):
        power_services.enqueue_power(user=operator, servers=[node], action="nope")

    from dcportal.models import Job

    assert not Job.objects.exists()


def test_enqueue_refuses_another_tenant_and_missing_permission(operator, viewer, node, foreign):
    with pytest.raises(PermissionDenied):
        power_services.enqueue_power(user=operator, servers=[node, foreign], action="on")
    with pytest.raises(PermissionDenied):
        power_services.enqueue_power(user=viewer, servers=[node], action="off")

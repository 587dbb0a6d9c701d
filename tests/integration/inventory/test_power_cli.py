"""`manage.py rpower`, `rsetboot` and `rvitals`: one line per node as results come, a summary,
a non-zero exit status if any node failed, the acting user's rights and scope, and the
parallelism limits, with a scriptable test driver.

transaction=True: the commands run each node in a thread with its own database connection,
which must see the committed fixtures (and not a test-wide transaction)."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from dcportal import services as platform_services
from dcportal.models import AuditEvent
from inventory import power_services
from inventory.models import Bmc
from tests.integration.inventory.power_helpers import (  # noqa: F401 (fixtures)
    add_fake_bmc,
    fake_bmcs_fixture,
    fast_retries_fixture,
    make_rack,
    make_servers,
)

pytestmark = pytest.mark.django_db(transaction=True)


def run(command, *args, user="root"):
    """(exit status, stdout lines) of a command, as a shell would see them."""
    out, err = StringIO(), StringIO()
    try:
        call_command(command, *args, "--user", user, stdout=out, stderr=err)
        status = 0
    except CommandError as exc:
        status = exc.returncode
        err.write(str(exc))
    lines = out.getvalue().splitlines()
    run.stderr = err.getvalue()
    return status, lines


@pytest.fixture
def nodes(admin_user, tenants, fake_bmcs):
    servers = make_servers(admin_user, tenants[0], [f"node{i:02d}" for i in range(1, 6)])
    for server in servers:
        add_fake_bmc(server)
    (foreign,) = make_servers(admin_user, tenants[1], ["gx01"])
    add_fake_bmc(foreign)
    return servers


def test_rpower_on_prints_a_line_per_node_and_a_summary(admin_user, nodes, fake_bmcs):
    status, lines = run("rpower", "node[01-05]", "on")

    assert status == 0
    assert sorted(lines[:-1]) == [f"node{i:02d}: on" for i in range(1, 6)]
    assert lines[-1] == "5 nodes: 5 ok, 0 failed"
    assert set(Bmc.objects.filter(server__in=nodes).values_list("power_state", flat=True)) == {"on"}


def test_rpower_stat_and_off(admin_user, nodes, fake_bmcs):
    fake_bmcs.states["bmc-node02"] = "on"

    status, lines = run("rpower", "node01,node02", "stat")

    assert status == 0
    assert sorted(lines[:-1]) == ["node01: off", "node02: on"]
    assert run("rpower", "node02", "off") == (0, ["node02: off", "1 node: 1 ok, 0 failed"])
    assert run("rpower", "node02", "state")[1][0] == "node02: off"


def test_one_failing_node_makes_the_exit_status_non_zero(admin_user, nodes, fake_bmcs):
    fake_bmcs.passwords["bmc-node03"] = "not-what-is-stored"

    status, lines = run("rpower", "node[01-05]", "on")

    assert status == 1
    assert "node03: Error: node03 (BMC bmc-node03): BMC refused the credentials" in lines
    assert sorted(line for line in lines[:-1] if "Error" not in line) == [
        "node01: on",
        "node02: on",
        "node04: on",
        "node05: on",
    ]
    assert lines[-1] == "5 nodes: 4 ok, 1 failed"
    assert "1 of 5 nodes failed" in run.stderr


def test_an_unreachable_bmc_fails_after_its_retries(admin_user, nodes, fast_retries):
    Bmc.objects.filter(server=nodes[0]).update(address="down-1")

    status, lines = run("rpower", "node01,node02", "stat")

    assert status == 1
    (error,) = [line for line in lines if line.startswith("node01:")]
    assert error.startswith("node01: Error: Gave up after ")
    assert "connection refused" in error


def test_rsetboot_net_once_and_persistent(admin_user, nodes, fake_bmcs):
    assert run("rsetboot", "node01", "net") == (
        0,
        ["node01: net (next boot only)", "1 node: 1 ok, 0 failed"],
    )
    assert fake_bmcs.boot["bmc-node01"] == ("pxe", True)
    assert run("rsetboot", "node01", "hd", "--persistent")[1][0] == "node01: hd (persistent)"
    assert fake_bmcs.boot["bmc-node01"] == ("disk", False)


def test_rvitals_prints_every_sensor(admin_user, nodes):
    status, lines = run("rvitals", "node01")

    assert status == 0
    assert lines == [
        "node01: CPU Temp: 45.0 C (ok)",
        "node01: Fan 1: 5400 RPM (ok)",
        "1 node: 1 ok, 0 failed",
    ]


def test_manual_bmc_is_requested_not_failed(admin_user, tenants, fake_bmcs):
    (server,) = make_servers(admin_user, tenants[0], ["old01"])
    power_services.create_bmc(user=admin_user, server=server, driver="manual")

    status, lines = run("rpower", "old01", "off")

    assert status == 0
    assert lines == [
        "old01: Manual driver: please switch old01 off",
        "1 node: 0 ok, 1 requested, 0 failed",
    ]


def test_server_without_bmc_is_an_error_line(admin_user, tenants, nodes):
    make_servers(admin_user, tenants[0], ["bare01"])

    status, lines = run("rpower", "node01,bare01", "on")

    assert status == 1
    assert "bare01: Error: bare01 has no BMC configured." in lines


# Rights and scope -----------------------------------------------------------------------------


def test_read_only_user_may_stat_but_not_switch(viewer, nodes):
    assert run("rpower", "node01", "stat", user="viewer")[0] == 0

    with pytest.raises(CommandError, match="permission denied.*power_server"):
        call_command("rpower", "node01", "on", "--user", "viewer", stdout=StringIO())
    with pytest.raises(CommandError, match="permission denied.*set_boot_device"):
        call_command("rsetboot", "node01", "net", "--user", "viewer", stdout=StringIO())


def test_power_server_alone_cannot_set_the_boot_device(make_user, admin_user, tenants, nodes):
    user = make_user("powerer", tenants=[tenants[0]])
    for action in ("inventory.view_server", "inventory.power_server"):
        platform_services.grant_action(user=admin_user, subject=user, action=action)

    assert run("rpower", "node01", "cycle", user="powerer")[0] == 0
    with pytest.raises(CommandError, match="set_boot_device"):
        call_command("rsetboot", "node01", "net", "--user", "powerer", stdout=StringIO())


def test_another_tenants_nodes_are_not_found(operator, nodes, fake_bmcs):
    with pytest.raises(CommandError, match="No server or tag matches: gx01"):
        call_command("rpower", "node01,gx01", "off", "--user", "op", stdout=StringIO())
    assert fake_bmcs.calls == []


def test_actions_are_audited_as_cli_actions(operator, nodes):
    run("rpower", "node01", "reset", user="op")

    event = AuditEvent.objects.get(verb="power-reset")
    assert (event.actor, event.via) == (operator, "cli")
    assert event.source.startswith("cli:")
    assert event.request_id


# Parallelism ----------------------------------------------------------------------------------


def test_a_range_runs_in_parallel_within_the_limits(settings, admin_user, tenants, fake_bmcs):
    settings.POWER_MAX_PARALLEL = 4
    settings.POWER_MAX_PARALLEL_PER_RACK = 3
    fake_bmcs.delay = 0.1
    for rack_name in ("ra", "rb", "rc"):
        rack = make_rack(rack_name)
        names = [f"{rack_name}{i:02d}" for i in range(1, 7)]
        for server in make_servers(admin_user, tenants[0], names, rack=rack):
            add_fake_bmc(server)

    status, lines = run("rpower", "ra[01-06],rb[01-06],rc[01-06]", "on")

    assert status == 0
    assert lines[-1] == "18 nodes: 18 ok, 0 failed"
    assert 2 <= fake_bmcs.max_in_flight <= 4
    assert max(fake_bmcs.max_by_rack.values()) <= 3

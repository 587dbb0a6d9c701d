"""End to end against real BMC simulators (tests/peers/bmc.py): OpenIPMI's ipmi_sim and
sushy-tools' Redfish emulator, switched on and off and set to boot from the network through the
CLI (rpower, rsetboot) and through the API and a real in-process RQ worker; 20 ipmi_sim nodes
in parallel with one wrong password; a BMC that does not answer. Credentials stay inside.

transaction=True: the commands run nodes in threads with their own database connections."""

import socket
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from dcportal.models import AuditEvent, Job, JobLog
from inventory import power_services
from inventory.models import Bmc
from tests.integration.inventory.power_helpers import make_servers
from tests.peers import sims
from tests.workers import run_burst_worker

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WRONG = "Wrong-Pass-42"


def run(command, *args, user="root"):
    """(exit status, stdout lines) of a command, as a shell would see them."""
    out = StringIO()
    try:
        call_command(command, *args, "--user", user, stdout=out, stderr=StringIO())
        status = 0
    except CommandError as exc:
        status = exc.returncode
    return status, out.getvalue().splitlines()


def add_bmc(user, server, driver, target, *, password=None):
    """A BMC row for a simulator's BmcTarget, through the service like any other."""
    return power_services.create_bmc(
        user=user,
        server=server,
        driver=driver,
        address=target.address,
        port=target.port,
        username=target.username,
        password=target.password if password is None else password,
        options=dict(target.options),
    )


def assert_no_secret(*texts):
    everything = "\n".join(
        [
            *texts,
            *JobLog.objects.values_list("message", flat=True),
            *(f"{job.result} {job.error} {job.message}" for job in Job.objects.all()),
            *(str(event.changes) for event in AuditEvent.objects.all()),
        ]
    )
    for secret in (sims.IPMI_PASSWORD, sims.REDFISH_PASSWORD, WRONG):
        assert secret not in everything


def power_url(server):
    return f"/api/inventory/servers/{server.pk}/power/"


def last_patch(emulator, target):
    system = f"/redfish/v1/Systems/{target.options['system_id']}"
    patches = [e for e in emulator.journal() if e["method"] == "PATCH" and e["path"] == system]
    return patches[-1]["body"]["Boot"]


# IPMI -----------------------------------------------------------------------------------------


def test_ipmi_through_the_cli(ipmi_bmcs, admin_user, tenants):
    bmcs = ipmi_bmcs(1)
    sim = bmcs.peer
    (server,) = make_servers(admin_user, tenants[0], ["ipmi01"])
    add_bmc(admin_user, server, "ipmi", bmcs[0])

    assert run("rpower", "ipmi01", "stat") == (0, ["ipmi01: off", "1 node: 1 ok, 0 failed"])
    on = run("rpower", "ipmi01", "on")
    assert on == (0, ["ipmi01: on", "1 node: 1 ok, 0 failed"])
    assert sim.power == "on"
    assert run("rpower", "ipmi01", "state")[1][0] == "ipmi01: on"

    boot = run("rsetboot", "ipmi01", "net")
    assert boot == (0, ["ipmi01: net (next boot only)", "1 node: 1 ok, 0 failed"])
    assert sim.boot_device == "pxe"
    assert "Options apply to only next boot" in sim.ipmitool("chassis", "bootparam", "get", "5")

    off = run("rpower", "ipmi01", "off")
    assert off[1][0] == "ipmi01: off"
    assert sim.power == "off"
    bmc = Bmc.objects.get(server=server)
    assert bmc.power_state == "off" and bmc.power_state_checked is not None
    events = AuditEvent.objects.filter(via="cli").order_by("pk")
    verbs = list(events.values_list("verb", flat=True))
    assert verbs == ["power-on", "set-boot-device", "power-off"]
    assert_no_secret(*on[1], *boot[1], *off[1])


def test_ipmi_through_the_api_and_the_worker(ipmi_bmcs, api, operator, admin_user, tenants):
    bmcs = ipmi_bmcs(1)
    (server,) = make_servers(admin_user, tenants[0], ["ipmi02"])
    add_bmc(admin_user, server, "ipmi", bmcs[0])
    client = api.as_user(operator)

    on = client.post(power_url(server), {"action": "on"}, format="json")
    pxe = client.post(power_url(server), {"action": "bootdev-pxe"}, format="json")
    assert (on.status_code, pxe.status_code) == (202, 202)
    run_burst_worker("power")

    for response in (on, pxe):
        job = Job.objects.get(pk=response.json()["job"])
        assert job.status == "succeeded", job.error
    assert bmcs.peer.power == "on"
    assert bmcs.peer.boot_device == "pxe"
    assert Bmc.objects.get(server=server).power_state == "on"
    detail = client.get(f"/api/jobs/{on.json()['job']}/").content.decode()
    assert_no_secret(detail, client.get("/api/inventory/bmcs/").content.decode())


def test_20_ipmi_nodes_in_parallel_with_one_wrong_password(ipmi_bmcs, admin_user, tenants):
    bmcs = ipmi_bmcs(20)
    servers = make_servers(admin_user, tenants[0], [f"n{i:02d}" for i in range(1, 21)])
    for index, (server, target) in enumerate(zip(servers, bmcs, strict=True)):
        add_bmc(admin_user, server, "ipmi", target, password=WRONG if index == 6 else None)

    status, lines = run("rpower", "n[01-20]", "on")

    assert status == 1
    port = bmcs.peers[6].port
    assert (
        f"n07: Error: BMC 127.0.0.1:{port} refused the credentials (wrong user name or "
        "password) for user 'admin'."
    ) in lines
    assert sorted(line for line in lines[:-1] if "Error" not in line) == [
        f"n{i:02d}: on" for i in range(1, 21) if i != 7
    ]
    assert lines[-1] == "20 nodes: 19 ok, 1 failed"
    assert [sim.power for sim in bmcs.peers] == ["on"] * 6 + ["off"] + ["on"] * 13
    states = dict(Bmc.objects.values_list("server__hostname", "power_state"))
    assert states["n07"] == "unknown" and states["n08"] == "on"
    assert_no_secret(*lines)


def test_an_unanswering_bmc_fails_clearly_after_its_retries(settings, admin_user, tenants):
    settings.POWER_RETRY_DEADLINE = 2
    port = sims.free_port(socket.SOCK_DGRAM)  # nobody listens there
    (server,) = make_servers(admin_user, tenants[0], ["dead01"])
    power_services.create_bmc(
        user=admin_user,
        server=server,
        driver="ipmi",
        address="127.0.0.1",
        port=port,
        username="admin",
        password=WRONG,
        options={"timeout": 1},
    )

    status, lines = run("rpower", "dead01", "stat")

    assert status == 1
    assert lines[0].startswith("dead01: Error: Gave up after ")
    assert f"BMC 127.0.0.1:{port}" in lines[0]
    assert lines[-1] == "1 node: 0 ok, 1 failed"
    assert_no_secret(*lines)


# Redfish --------------------------------------------------------------------------------------


def test_redfish_through_the_cli_and_the_api(redfish_bmcs, api, operator, admin_user, tenants):
    nodes = redfish_bmcs(2, journal=True)
    emulator = nodes.peer
    servers = make_servers(admin_user, tenants[0], ["rf01", "rf02"])
    for server, target in zip(servers, nodes, strict=True):
        add_bmc(admin_user, server, "redfish", target)

    # The CLI waits until the emulator has applied the change (it takes 1 to 11 s).
    cli = run("rpower", "rf01", "on")
    assert cli == (0, ["rf01: on", "1 node: 1 ok, 0 failed"])
    boot = run("rsetboot", "rf01", "net")
    assert boot[1][0] == "rf01: net (next boot only)"
    patch = last_patch(emulator, nodes[0])
    assert patch["BootSourceOverrideTarget"] == "Pxe"
    assert patch["BootSourceOverrideEnabled"] == "Once"

    client = api.as_user(operator)
    bulk = client.post(
        "/api/inventory/power/", {"noderange": "rf02", "action": "on"}, format="json"
    )
    pxe = client.post(power_url(servers[1]), {"action": "bootdev-pxe"}, format="json")
    assert (bulk.status_code, pxe.status_code) == (202, 202)
    run_burst_worker("power")
    for job_id in (bulk.json()["jobs"][0]["job"], pxe.json()["job"]):
        job = Job.objects.get(pk=job_id)
        assert job.status == "succeeded", job.error
    assert last_patch(emulator, nodes[1])["BootSourceOverrideTarget"] == "Pxe"

    stat = run("rpower", "rf[01-02]", "stat")
    assert sorted(stat[1][:-1]) == ["rf01: on", "rf02: on"]
    off = run("rpower", "rf01", "off")
    assert off[1][0] == "rf01: off"
    assert Bmc.objects.get(server=servers[0]).power_state == "off"
    vitals = run("rvitals", "rf02")
    assert vitals[0] == 0
    assert any(line.startswith("rf02: Chassis Intake Temp: 25") for line in vitals[1])
    assert_no_secret(*cli[1], *boot[1], *stat[1], *off[1], *vitals[1], bulk.content.decode())


def test_redfish_wrong_password_is_a_clear_error(redfish_bmcs, admin_user, tenants):
    nodes = redfish_bmcs(1)
    (server,) = make_servers(admin_user, tenants[0], ["rf03"])
    add_bmc(admin_user, server, "redfish", nodes[0], password=WRONG)

    status, lines = run("rpower", "rf03", "on")

    assert status == 1
    assert lines[0] == (
        f"rf03: Error: BMC 127.0.0.1:{nodes.peer.port} refused the credentials (wrong user "
        "name or password) for user 'admin' (HTTP 401)."
    )
    assert_no_secret(*lines)


# The portal -----------------------------------------------------------------------------------


@pytest.mark.parametrize("driver", ["ipmi", "redfish"])
def test_portal_buttons_switch_a_simulated_node_and_set_pxe_once(
    driver, ipmi_bmcs, redfish_bmcs, client, operator, admin_user, tenants
):
    bmcs = ipmi_bmcs(1) if driver == "ipmi" else redfish_bmcs(1, journal=True)
    (server,) = make_servers(admin_user, tenants[0], [f"{driver}-portal"])
    add_bmc(admin_user, server, driver, bmcs[0])
    client.force_login(operator)
    url = f"/inventory/servers/{server.pk}/power/"

    for action in ("on", "bootdev-pxe"):
        assert client.post(url, {"action": action}).status_code == 302
    run_burst_worker("power")

    assert list(Job.objects.values_list("status", flat=True)) == ["succeeded", "succeeded"]
    assert Bmc.objects.get(server=server).power_state == "on"
    if driver == "ipmi":
        assert bmcs.peer.power == "on" and bmcs.peer.boot_device == "pxe"
    else:
        boot = last_patch(bmcs.peer, bmcs[0])
        assert boot["BootSourceOverrideTarget"] == "Pxe"
        assert boot["BootSourceOverrideEnabled"] == "Once"
    page = client.get(f"/inventory/servers/{server.pk}/").content.decode()
    assert 'class="badge badge-ready" data-power-state>on</span>' in page

    assert client.post(url, {"action": "off"}).status_code == 302
    run_burst_worker("power")
    assert Bmc.objects.get(server=server).power_state == "off"
    assert_no_secret(page)

"""The ipmi and redfish power drivers against real simulators on 127.0.0.1.

IPMI: OpenIPMI's ipmi_sim, one process per BMC, its chassis control script keeping the machine's
power and boot device in files (tests/peers/ipmi_sim). Redfish: sushy-tools' emulator with its
fake driver, which applies power changes 1 to 11 s after accepting them (so: wait_for_state),
and with a journal of the requests it received (it ignores BootSourceOverrideEnabled itself).
No database. The simulators are started by the fixtures of tests/peers/bmc.py.
"""

import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from inventory.power.base import (
    BmcTarget,
    BootDevice,
    FatalPowerError,
    PowerState,
    RetryablePowerError,
    get_driver,
)
from inventory.power.retry import RetriesExhausted, call_with_retry, deadline_in, wait_for_state
from tests.peers import sims
from tests.peers.bmc import missing_peer

pytestmark = pytest.mark.slow

ON, OFF = PowerState.ON, PowerState.OFF


def assert_no_secret(error, *secrets):
    text = f"{error} {error!r} {error.args!r}"
    for secret in secrets:
        assert secret not in text


# -- IPMI (ipmi_sim) ---------------------------------------------------------------------------


def test_ipmi_power_status_on_off_cycle_reset(ipmi_bmcs):
    bmcs = ipmi_bmcs(1)
    sim, driver = bmcs.peer, get_driver("ipmi", bmcs[0])

    assert driver.status() == OFF and sim.power == "off"
    driver.on()  # waits until the BMC reports it
    assert sim.power == "on" and driver.status() == ON
    driver.on()  # already on: nothing to do
    assert sim.chassis_log() == ["power 1"]

    driver.off()
    assert sim.power == "off" and driver.status() == OFF

    driver.cycle()  # of a machine that is off: power on
    assert driver.status() == ON
    assert sim.chassis_log()[-1] == "power 1"

    driver.cycle()  # ipmi_sim: power 0 at once, power 1 a second later
    wait_for_state(driver, ON, deadline_in(10), interval=0.2)
    assert sim.chassis_log()[-2:] == ["power 0", "power 1"]

    driver.reset()
    assert sim.chassis_log()[-1] == "reset 1" and driver.status() == ON

    driver.soft_off()  # asks the OS; ipmi_sim's machine has none and stays on
    assert sim.chassis_log()[-1] == "shutdown 1" and driver.status() == ON


def test_ipmi_one_time_pxe_boot(ipmi_bmcs):
    bmcs = ipmi_bmcs(1)
    sim, driver = bmcs.peer, get_driver("ipmi", bmcs[0])

    driver.set_boot_device(BootDevice.PXE, once=True)
    assert sim.boot_device == "pxe"
    flags = sim.ipmitool("chassis", "bootparam", "get", "5")
    assert "Boot Device Selector : Force PXE" in flags
    assert "Options apply to only next boot" in flags

    driver.set_boot_device(BootDevice.DISK, once=False)
    assert sim.boot_device == "default"  # ipmi_sim's word for "boot from the hard disk"
    assert "Force Boot from default Hard-Drive" in sim.ipmitool("chassis", "bootparam", "get", "5")
    # (ipmi_sim keeps the device only, not the persistent flag: it answers "only next boot".)


def test_ipmi_wrong_credentials_are_fatal_with_a_clear_message(ipmi_bmcs):
    bmcs = ipmi_bmcs(1)
    port = bmcs.peer.port
    for target, user in [
        (bmcs.peer.target(password="Wrong-Pass-42"), sims.IPMI_USER),
        (bmcs.peer.target(username="nobody"), "nobody"),
    ]:
        started = time.monotonic()
        with pytest.raises(FatalPowerError) as caught:
            get_driver("ipmi", target).status()
        assert not isinstance(caught.value, RetryablePowerError)
        assert str(caught.value) == (
            f"BMC 127.0.0.1:{port} refused the credentials (wrong user name or password) "
            f"for user {user!r}."
        )
        assert_no_secret(caught.value, "Wrong-Pass-42", sims.IPMI_PASSWORD)
        assert time.monotonic() - started < 5

    with pytest.raises(FatalPowerError, match=r"refused the BMC key \(option kg\)") as caught:
        get_driver("ipmi", bmcs.peer.target(kg="not-the-key")).status()
    assert_no_secret(caught.value, "not-the-key", sims.IPMI_PASSWORD)


def test_ipmi_bmc_down_is_retryable_then_retries_give_up_at_the_deadline():
    port = sims.free_port(socket.SOCK_DGRAM)  # nobody listens there
    target = BmcTarget("127.0.0.1", "admin", "Down-Pass-42", port=port, options={"timeout": 1.5})
    driver = get_driver("ipmi", target)

    started = time.monotonic()
    with pytest.raises(RetryablePowerError) as caught:
        driver.status()
    # Bounded by the 1.5 s timeout, not pyghmi's own retransmits (~30 s); loose for load.
    assert time.monotonic() - started < 10
    assert str(caught.value).startswith(f"BMC 127.0.0.1:{port} did not answer")

    started = time.monotonic()
    with pytest.raises(RetriesExhausted) as caught:
        call_with_retry(driver.on, deadline=deadline_in(3), first_delay=0.2)
    elapsed = time.monotonic() - started
    error = caught.value
    assert error.attempts >= 2
    # It kept trying until the deadline and stopped soon after it (loose bound for load).
    assert 3 <= elapsed < 3 + 1.5 + 10
    assert str(error).startswith(f"Gave up after {error.attempts} attempts over ")
    assert f"BMC 127.0.0.1:{port}" in str(error)
    assert_no_secret(error, "Down-Pass-42")


def test_ipmi_20_bmcs_in_parallel_beside_failing_ones(ipmi_bmcs):
    """20 BMCs switched on at once by 20 threads, while other threads talk to two BMCs that do
    not answer and one that refuses the password (pyghmi shares one session table and I/O
    thread between them all; see inventory.power.ipmi._patch_pyghmi)."""
    bmcs = ipmi_bmcs(20)
    down = [
        BmcTarget("127.0.0.1", "admin", "x", sims.free_port(socket.SOCK_DGRAM), {"timeout": 2})
        for _ in range(2)
    ]
    refused = bmcs.peers[0].target(password="Wrong-Pass-42")

    def switch_on(target, seconds=20):
        driver = get_driver("ipmi", target)
        try:
            call_with_retry(driver.on, deadline=deadline_in(seconds))
            return driver.status()
        except RetryablePowerError:
            return "retryable"
        except FatalPowerError:
            return "fatal"

    with ThreadPoolExecutor(max_workers=23) as pool:
        failing = [pool.submit(switch_on, target, 3) for target in [*down, refused]]
        states = list(pool.map(switch_on, bmcs))
        assert [future.result() for future in failing] == ["retryable", "retryable", "fatal"]
    assert states == [ON] * 20
    assert [sim.power for sim in bmcs.peers] == ["on"] * 20

    with ThreadPoolExecutor(max_workers=20) as pool:  # and the statuses again, all at once
        assert list(pool.map(lambda t: get_driver("ipmi", t).status(), bmcs)) == [ON] * 20


def test_ipmi_sensors_and_inventory(ipmi_bmcs):
    bmcs = ipmi_bmcs(1)
    driver = get_driver("ipmi", bmcs[0])
    assert driver.sensors() == []  # ipmi_sim as configured has no sensor repository
    inventory = driver.inventory()
    # ipmi_sim has no FRU 0: the driver falls back to what Get Device ID and the GUID say.
    assert inventory["uuid"] == str(uuid.UUID(bytes_le=bmcs.peer.guid.bytes))
    assert inventory["bmc_firmware"] == "9.08"
    assert inventory["components"]["System"]["Manufacturer ID"] == 0x1291


# -- Redfish (sushy-tools' emulator) -----------------------------------------------------------

N_SWITCH_ON = 20
SCENARIOS = ["off", "cycle", "reset", "soft_off"]  # each on a system that starts On


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    """One emulator for the module: 20 systems Off, 4 On (one per scenario), 1 for the rest."""
    powers = ["Off"] * N_SWITCH_ON + ["On"] * len(SCENARIOS) + ["Off"]
    emulator = sims.SushyEmulator(
        tmp_path_factory.mktemp("sushy"), systems=len(powers), power=powers, journal=True
    )
    try:
        with emulator:
            yield emulator
    except sims.PeerMissing as error:
        missing_peer(str(error))


def test_redfish_power_actions_and_20_systems_in_parallel(emulator):
    targets = emulator.targets()
    switch_on, scenario_targets = targets[:N_SWITCH_ON], targets[N_SWITCH_ON:-1]

    def run(action, target):
        driver = get_driver("redfish", target)
        before = driver.status()
        getattr(driver, action)()
        wanted = OFF if action in ("off", "soft_off") else ON
        # The emulator lands changes 1-11 s later, more on a loaded two-core machine.
        waited = wait_for_state(driver, wanted, deadline_in(40), interval=0.5)
        return before, waited, driver.status()

    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        futures = [pool.submit(run, "on", target) for target in switch_on]
        futures += [
            pool.submit(run, a, t) for a, t in zip(SCENARIOS, scenario_targets, strict=True)
        ]
        outcomes = [future.result() for future in futures]

    assert [before for before, _, _ in outcomes] == [OFF] * N_SWITCH_ON + [ON] * len(SCENARIOS)
    assert [after for _, _, after in outcomes] == [ON] * N_SWITCH_ON + [OFF, ON, ON, OFF]
    assert any(waited > 0.5 for _, waited, _ in outcomes)  # the changes landed later

    resets = {}
    for entry in emulator.journal():
        if entry["path"].endswith("/Actions/ComputerSystem.Reset"):
            system = entry["path"].split("/")[4]
            resets.setdefault(system, []).append(entry["body"]["ResetType"])
    uuids = [t.options["system_id"] for t in targets]
    assert all(resets[u] == ["On"] for u in uuids[:N_SWITCH_ON])
    off, cycle, reset, soft_off = uuids[N_SWITCH_ON:-1]
    assert resets[off] == ["ForceOff"]
    assert resets[cycle] == ["ForceOff", "On"]  # the emulator has no PowerCycle
    assert resets[reset] == ["ForceRestart"]
    assert resets[soft_off] == ["GracefulShutdown"]


def test_redfish_one_time_pxe_boot(emulator):
    target = emulator.targets()[-1]
    driver = get_driver("redfish", target)
    system = f"/redfish/v1/Systems/{target.options['system_id']}"

    driver.set_boot_device(BootDevice.PXE, once=True)
    assert driver.inventory()["system_id"] == target.options["system_id"]
    patch = [e for e in emulator.journal() if e["method"] == "PATCH" and e["path"] == system][-1]
    assert patch["body"]["Boot"]["BootSourceOverrideTarget"] == "Pxe"
    assert patch["body"]["Boot"]["BootSourceOverrideEnabled"] == "Once"
    assert _boot_target(emulator, system) == "Pxe"  # what the emulator now holds

    driver.set_boot_device(BootDevice.DISK, once=False)
    patch = [e for e in emulator.journal() if e["method"] == "PATCH" and e["path"] == system][-1]
    assert patch["body"]["Boot"]["BootSourceOverrideTarget"] == "Hdd"
    assert patch["body"]["Boot"]["BootSourceOverrideEnabled"] == "Continuous"
    assert _boot_target(emulator, system) == "Hdd"


def _boot_target(emulator, path):
    import base64
    import json
    import urllib.request

    request = urllib.request.Request(emulator.base_url + path)
    token = base64.b64encode(f"{sims.REDFISH_USER}:{emulator.password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.load(response)["Boot"]["BootSourceOverrideTarget"]


def test_redfish_wrong_password_is_fatal_with_a_clear_message(emulator):
    target = emulator.targets(password="Wrong-Pass-42")[-1]
    with pytest.raises(FatalPowerError) as caught:
        get_driver("redfish", target).status()
    assert not isinstance(caught.value, RetryablePowerError)
    assert str(caught.value) == (
        f"BMC 127.0.0.1:{emulator.port} refused the credentials (wrong user name or password) "
        "for user 'admin' (HTTP 401)."
    )
    assert_no_secret(caught.value, "Wrong-Pass-42", emulator.password)


def test_redfish_system_choice(emulator):
    target = emulator.targets()[-1]
    options = {"scheme": "http"}
    several = BmcTarget("127.0.0.1", target.username, target.password, emulator.port, options)
    with pytest.raises(FatalPowerError, match="has 25 systems .*: set the option system_id"):
        get_driver("redfish", several).status()
    by_name = BmcTarget(
        "127.0.0.1",
        target.username,
        target.password,
        emulator.port,
        {**options, "system_id": "node1"},
    )
    assert get_driver("redfish", by_name).inventory()["name"] == "node1"
    missing = BmcTarget(
        "127.0.0.1", target.username, target.password, emulator.port, {**options, "system_id": "x"}
    )
    with pytest.raises(FatalPowerError, match="has no system 'x'"):
        get_driver("redfish", missing).status()


def test_redfish_sensors_and_inventory(emulator):
    target = emulator.targets()[-1]
    driver = get_driver("redfish", target)
    sensors = {sensor.name: sensor for sensor in driver.sensors()}
    intake = sensors["Chassis Intake Temp"]
    assert (intake.value, intake.unit, intake.state) == (25, "°C", "ok")
    assert sensors["BaseBoard System Fan"].unit == "RPM"
    inventory = driver.inventory()
    assert inventory["uuid"] == target.options["system_id"]
    assert inventory["manufacturer"] == "Sushy Emulator"
    assert set(inventory) >= {"model", "serial", "bios_version", "memory_gib", "processors"}


def test_redfish_down_is_retryable_then_retries_give_up_at_the_deadline():
    port = sims.free_port()  # nobody listens there
    target = BmcTarget("127.0.0.1", "admin", "Down-Pass-42", port, {"scheme": "http"})
    driver = get_driver("redfish", target)
    with pytest.raises(RetryablePowerError, match=rf"BMC 127.0.0.1:{port} is unreachable"):
        driver.status()

    started = time.monotonic()
    with pytest.raises(RetriesExhausted) as caught:
        call_with_retry(driver.status, deadline=deadline_in(1.5), first_delay=0.2)
    assert caught.value.attempts >= 3
    assert 1.5 <= time.monotonic() - started < 3
    assert "connection refused" in str(caught.value)
    assert_no_secret(caught.value, "Down-Pass-42")


def test_redfish_tls_is_verified_unless_told_otherwise(redfish_bmcs, tmp_path):
    ca, certificate, key = sims.make_test_ca(tmp_path / "tls")
    nodes = redfish_bmcs(1, power="On", tls=(certificate, key))

    def driver(**options):
        target = nodes[0]
        return get_driver("redfish", BmcTarget(**{**target.__dict__, "options": options}))

    system = {"system_id": nodes[0].options["system_id"]}
    with pytest.raises(FatalPowerError, match="TLS failed .*CERTIFICATE_VERIFY_FAILED") as caught:
        driver(**system).status()  # https and verification are the defaults
    assert "ca_bundle" in str(caught.value)
    assert driver(**system, ca_bundle=str(ca)).status() == ON
    assert driver(**system, verify_tls=False).status() == ON
    assert driver(**system, verify_tls="false").status() == ON
    with pytest.raises(FatalPowerError, match="TLS failed"):
        driver(**system, verify_tls="yes").status()

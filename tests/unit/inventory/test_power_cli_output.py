"""How rpower, rsetboot and rvitals order their work and word their results (no database)."""

from types import SimpleNamespace

from inventory.management.commands import rpower, rsetboot, rvitals
from inventory.management.power import interleaved


def result(host="node01", status="ok", message="on", **extra):
    return {
        "hostname": host,
        "status": status,
        "ok": status != "failed",
        "message": message,
        **extra,
    }


def test_servers_are_interleaved_over_racks():
    servers = [SimpleNamespace(name=f"{rack}{i}", rack_id=rack) for rack in "ab" for i in range(3)]
    servers.append(SimpleNamespace(name="loose", rack_id=None))

    assert [s.name for s in interleaved(servers)] == ["a0", "b0", "loose", "a1", "b1", "a2", "b2"]


def test_rpower_words():
    command = rpower.Command()
    assert command.format_result(result()) == ["node01: on"]
    failed = result(status="failed", message="BMC refused the credentials")
    assert command.format_result(failed) == ["node01: Error: BMC refused the credentials"]
    assert rpower.ACTIONS["stat"] == rpower.ACTIONS["state"] == "status"


def test_rsetboot_words():
    command = rsetboot.Command()
    once = result(message="boot device pxe", device="pxe", persistent=False)
    assert command.format_result(once) == ["node01: net (next boot only)"]
    always = result(message="boot device disk", device="disk", persistent=True)
    assert command.format_result(always) == ["node01: hd (persistent)"]
    asked = result(status="requested", message="Manual driver: please …")
    assert command.format_result(asked) == ["node01: Manual driver: please …"]


def test_rvitals_lines():
    command = rvitals.Command()
    sensors = [
        {"name": "CPU Temp", "value": 45.0, "unit": "C", "state": "ok"},
        {"name": "PSU", "value": None, "unit": "", "state": ""},
    ]
    assert command.format_result(result(sensors=sensors)) == [
        "node01: CPU Temp: 45.0 C (ok)",
        "node01: PSU: n/a",
    ]
    assert command.format_result(result(sensors=[])) == ["node01: no sensors"]

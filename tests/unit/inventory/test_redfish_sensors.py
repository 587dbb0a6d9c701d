from inventory.power.base import Sensor
from inventory.power.redfish import _sensors


def test_thermal_readings_with_names_units_and_health():
    data = {
        "Temperatures": [
            {"Name": "CPU1 Temp", "ReadingCelsius": 41, "Status": {"Health": "OK"}},
            {"MemberId": "3", "ReadingCelsius": 30},
        ],
        "Fans": [{"FanName": "FAN1", "Reading": 5200, "Status": {"Health": "Warning"}}],
    }
    assert _sensors("thermal", data) == [
        Sensor("CPU1 Temp", 41, "°C", "ok"),
        Sensor("Temperature 3", 30, "°C", ""),
        Sensor("FAN1", 5200, "RPM", "warning"),
    ]


def test_power_readings_and_a_missing_collection():
    data = {
        "PowerControl": [{"PowerConsumedWatts": 230}],
        "PowerSupplies": [{"MemberId": "0", "LastPowerOutputWatts": 115, "ReadingUnits": "W"}],
    }
    assert _sensors("power", data) == [
        Sensor("Power consumed", 230, "W", ""),
        Sensor("Power supply 0", 115, "W", ""),
    ]
    assert _sensors("thermal", {}) == []

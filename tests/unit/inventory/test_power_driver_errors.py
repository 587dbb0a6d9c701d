"""What the ipmi and redfish drivers make of failures no simulator here produces: completion
codes (privilege, unsupported), pyghmi's login errors, HTTP 403 and 5xx. Fakes, no network."""

import re

import pytest

from inventory.power.base import (
    BmcTarget,
    FatalPowerError,
    PowerState,
    RetryablePowerError,
    get_driver,
)

SECRET = "Very-Secret-Pw-1"
TARGET = BmcTarget("10.1.2.3", "operator", SECRET, port=6230, label="node7")


class FakeSession:
    def logout(self):
        self.logged_out = True


class FakeCommand:
    """pyghmi's Command as the driver uses it: raw_command answers from a table keyed by
    (netfn, command, first data byte); chassis status from self.power."""

    def __init__(self, answers=None, power=False):
        self.answers = answers or {}
        self.power = power
        self.sent = []
        self.ipmi_session = FakeSession()

    def raw_command(self, netfn, command, data=()):
        key = (netfn, command, data[0] if data else None)
        self.sent.append(key)
        if key in self.answers:
            return self.answers[key]
        if (netfn, command) == (0, 1):
            return {"netfn": 1, "command": 1, "code": 0, "data": bytes([int(self.power), 0, 0])}
        if (netfn, command) == (0, 2):
            self.power = {0: False, 1: True}.get(data[0], self.power)
        return {"netfn": netfn + 1, "command": command, "code": 0, "data": b""}


@pytest.fixture
def ipmi(monkeypatch):
    """An ipmi driver whose session is a FakeCommand (returned as the second item)."""

    def make(answers=None, power=False, **options):
        fake = FakeCommand(answers, power)
        target = BmcTarget(**{**TARGET.__dict__, "options": options})
        driver = get_driver("ipmi", target)
        monkeypatch.setattr(driver, "_connect", lambda: fake)
        return driver, fake

    return make


def error(code, text):
    return {"code": code, "error": text}


def test_ipmi_insufficient_privilege_is_fatal(ipmi):
    driver, _ = ipmi({(0, 2, 1): error(0xD4, "Insufficient privilege level or firmware firewall")})
    with pytest.raises(FatalPowerError) as caught:
        driver.on()
    assert not isinstance(caught.value, RetryablePowerError)
    assert str(caught.value) == (
        "BMC 10.1.2.3:6230: user 'operator' lacks the privilege for power on (Insufficient "
        "privilege level or firmware firewall (completion code 0xd4)); it needs operator or "
        "administrator."
    )


def test_ipmi_unsupported_power_cycle_falls_back_to_off_then_on(ipmi):
    driver, fake = ipmi({(0, 2, 2): error(0xD5, "Command not supported in present state")}, True)
    driver.cycle()
    controls = [key[2] for key in fake.sent if key[:2] == (0, 2)]
    assert controls == [2, 0, 1] and fake.power is True
    assert fake.ipmi_session.logged_out


def test_ipmi_unsupported_boot_device_is_fatal_and_busy_bmc_retryable(ipmi):
    driver, _ = ipmi({(0, 8, 5): error(0xCC, "Invalid data field in request")})
    with pytest.raises(FatalPowerError, match="does not support set boot device"):
        driver.set_boot_device("pxe")
    driver, _ = ipmi({(0, 1, None): error(0xC0, "Node Busy")})
    with pytest.raises(RetryablePowerError, match=r"failed power status: Node Busy \(comp"):
        driver.status()


def test_ipmi_boot_flag_bytes(ipmi, monkeypatch):
    driver, fake = ipmi(boot_mode="uefi")
    seen = []
    original = fake.raw_command

    def raw_command(netfn, command, data=()):
        seen.append(list(data))
        return original(netfn, command, data)

    monkeypatch.setattr(fake, "raw_command", raw_command)
    driver.set_boot_device("pxe", once=True)
    driver.set_boot_device("disk", once=False)
    assert [3, 0x08] in seen
    assert [5, 0x80 | 0x20, 0x04, 0, 0, 0] in seen  # valid, EFI, next boot only, PXE
    assert [5, 0x80 | 0x40 | 0x20, 0x08, 0, 0, 0] in seen  # valid, persistent, EFI, disk


def test_ipmi_state_that_does_not_land_is_retryable(ipmi, monkeypatch):
    driver, fake = ipmi(timeout=1)
    monkeypatch.setattr("inventory.power.ipmi.POLL_INTERVAL", 0.1)
    original = fake.raw_command

    def ignore_power_up(netfn, command, data=()):
        if (netfn, command) == (0, 2):
            return {"netfn": 1, "command": 2, "code": 0, "data": b""}
        return original(netfn, command, data)

    monkeypatch.setattr(fake, "raw_command", ignore_power_up)
    with pytest.raises(RetryablePowerError, match="accepted power on but did not report on"):
        driver.on()


def test_ipmi_login_errors(ipmi, monkeypatch):
    from pyghmi import exceptions

    driver, _ = ipmi()
    cases = [
        ("Incorrect password provided", FatalPowerError, "refused the credentials"),
        ("Unauthorized name in RAKP2", FatalPowerError, "refused the credentials"),
        ("Invalid RAKP4 integrity code (wrong Kg?)", FatalPowerError, "refused the BMC key"),
        (
            "Unauthorized role or privilege level requested in RAKP2",
            FatalPowerError,
            "lacks the privilege for power status",
        ),
        (
            "Insufficient resources to create new session (wait for existing sessions to "
            "timeout) in RAKP2",
            RetryablePowerError,
            "Insufficient resources",
        ),
        (None, RetryablePowerError, "did not answer"),
        ("timeout", RetryablePowerError, "did not answer"),
        ("Session no longer connected", RetryablePowerError, "did not answer"),
        (f"echo {SECRET}", RetryablePowerError, r"echo \*\*\*\*\*\*\*\*"),
    ]
    for text, cls, message in cases:

        def fail(text=text):
            raise exceptions.IpmiException(text)

        monkeypatch.setattr(driver, "_connect", fail)
        with pytest.raises(cls, match=message) as caught:
            driver.status()
        assert type(caught.value) is cls or issubclass(type(caught.value), cls)
        assert SECRET not in str(caught.value)


def test_ipmi_option_checks():
    for options, message in [
        ({"cipher_suite": 1}, "cipher suite 1 is not available"),
        ({"privilege": "root"}, "option privilege must be one of"),
        ({"timeout": "soon"}, "option timeout must be a number"),
        ({"kg": "0xZZ"}, "option kg is not valid hex"),
    ]:
        with pytest.raises(FatalPowerError, match=message):
            get_driver("ipmi", BmcTarget("10.1.2.3", options=options))
    get_driver("ipmi", BmcTarget("10.1.2.3", options={"cipher_suite": "17", "kg": "0x0102"}))


class FakeResponse:
    def __init__(self, status, message="nope"):
        self.status_code = status
        self.message = message

    def json(self):
        return {"error": {"code": "Base.1.0.GeneralError", "message": self.message}}


def test_redfish_http_errors():
    from sushy import exceptions

    driver = get_driver("redfish", TARGET)
    url = "https://10.1.2.3:6230/redfish/v1/Systems/1"
    cases = [
        (exceptions.AccessError("GET", url, FakeResponse(401)), FatalPowerError, "credentials"),
        (
            exceptions.AccessError("POST", url, FakeResponse(403, "Insufficient privilege")),
            FatalPowerError,
            r"user 'operator' lacks the privilege for power on \(HTTP 403: Insufficient",
        ),
        (exceptions.ServerSideError("GET", url, FakeResponse(503)), RetryablePowerError, "503"),
        (exceptions.HTTPError("POST", url, FakeResponse(409)), RetryablePowerError, "409"),
        (exceptions.BadRequestError("POST", url, FakeResponse(400)), FatalPowerError, "400"),
        (
            exceptions.MissingActionError(action="#ComputerSystem.Reset", resource=url),
            FatalPowerError,
            "does not support power on",
        ),
        (
            exceptions.ServerSideError("GET", url, FakeResponse(500, f"bad {SECRET}")),
            RetryablePowerError,
            r"bad \*\*\*\*\*\*\*\*",
        ),
    ]
    for exc, cls, message in cases:
        translated = driver._translate(exc, "power on")
        assert isinstance(translated, cls), (exc, translated)
        if cls is FatalPowerError:
            assert not isinstance(translated, RetryablePowerError)
        assert SECRET not in str(translated)
        assert re.search(message, str(translated)), str(translated)


def test_redfish_options():
    driver = get_driver("redfish", TARGET)
    assert driver.base_url == "https://10.1.2.3:6230" and driver.verify is True
    v6 = get_driver("redfish", BmcTarget("fd00::5", options={"verify_tls": "no"}))
    assert v6.base_url == "https://[fd00::5]" and v6.verify is False
    for options, message in [
        ({"scheme": "ftp"}, "scheme must be https or http"),
        ({"ca_bundle": "/nonexistent/ca.pem"}, "CA bundle /nonexistent/ca.pem does not exist"),
        ({"boot_mode": "bios"}, "boot_mode must be uefi or legacy"),
    ]:
        with pytest.raises(FatalPowerError, match=message):
            get_driver("redfish", BmcTarget("10.1.2.3", options=options))


def test_power_state_mapping():
    from types import SimpleNamespace

    from sushy import PowerState as RedfishState

    from inventory.power.redfish import _power_state

    assert _power_state(SimpleNamespace(power_state=RedfishState.ON)) == PowerState.ON
    assert _power_state(SimpleNamespace(power_state=RedfishState.OFF)) == PowerState.OFF
    assert _power_state(SimpleNamespace(power_state=RedfishState.POWERING_ON)) == "unknown"
    assert _power_state(SimpleNamespace(power_state=None)) == PowerState.UNKNOWN

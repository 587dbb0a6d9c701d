"""Shared pieces of the power tests: a scriptable test driver (registered only while a test
runs), a fleet of servers with BMCs, planted passwords and a scanner for them."""

import threading
import time
import uuid

import pytest

from inventory import services
from inventory.models import Bmc, Rack, Site
from inventory.power import base
from inventory.power.base import (
    FatalPowerError,
    PowerDriver,
    PowerState,
    RetryablePowerError,
    Sensor,
)

FAKE = "tests-fake"


def planted():
    return f"PLANTED-{uuid.uuid4().hex}"


class FakeBmcs:
    """What the fake BMCs do, keyed by address: their power state, boot device, how they fail,
    how slow they are; and how many calls were in flight at once (the parallelism seen)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.states = {}
        self.boot = {}
        self.calls = []
        self.delay = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self.in_flight_by_rack = {}
        self.max_by_rack = {}
        self.passwords = {}  # address -> the password it accepts
        self.passwords_seen = set()  # what the driver was given (to prove a plant was used)
        self.retryable_failures = {}  # address -> failures left before it answers

    def enter(self, target):
        rack = target.options.get("rack")
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if rack is not None:
                count = self.in_flight_by_rack.get(rack, 0) + 1
                self.in_flight_by_rack[rack] = count
                self.max_by_rack[rack] = max(self.max_by_rack.get(rack, 0), count)

    def leave(self, target):
        rack = target.options.get("rack")
        with self.lock:
            self.in_flight -= 1
            if rack is not None:
                self.in_flight_by_rack[rack] -= 1


class FakeDriver(PowerDriver):
    """Talks to a FakeBmcs instead of a BMC. Addresses starting with "down" never answer
    (retryable), a wrong password is refused (fatal), like the real drivers do."""

    name = FAKE
    bmcs = None  # set by the fixture

    def _do(self, what, fn=None):
        bmcs, target = self.bmcs, self.target
        bmcs.enter(target)
        try:
            with bmcs.lock:
                bmcs.calls.append((target.address, what, target.options.get("timeout")))
                bmcs.passwords_seen.add(target.password)
            if bmcs.delay:
                time.sleep(bmcs.delay)
            if target.address.startswith("down"):
                raise RetryablePowerError(f"{target}: connection refused")
            with bmcs.lock:
                left = bmcs.retryable_failures.get(target.address, 0)
                if left:
                    bmcs.retryable_failures[target.address] = left - 1
                    raise RetryablePowerError(f"{target}: BMC busy")
            wanted = bmcs.passwords.get(target.address)
            if wanted is not None and target.password != wanted:
                raise FatalPowerError(f"{target}: BMC refused the credentials")
            return fn() if fn else None
        finally:
            bmcs.leave(target)

    def _set(self, state):
        self.bmcs.states[self.target.address] = state

    def status(self):
        return self._do("status", lambda: self.bmcs.states.get(self.target.address, "off"))

    def on(self):
        self._do("on", lambda: self._set(PowerState.ON))

    def off(self):
        self._do("off", lambda: self._set(PowerState.OFF))

    def soft_off(self):
        self._do("softoff", lambda: self._set(PowerState.OFF))

    def cycle(self):
        self._do("cycle", lambda: self._set(PowerState.ON))

    def reset(self):
        self._do("reset")

    def set_boot_device(self, device, once=True):
        self._do("bootdev", lambda: self.bmcs.boot.__setitem__(self.target.address, (device, once)))

    def sensors(self):
        return self._do(
            "sensors",
            lambda: [Sensor("CPU Temp", 45.0, "C", "ok"), Sensor("Fan 1", 5400, "RPM", "ok")],
        )


# Fixtures are registered under their short names; the function names differ so that a test
# module can import them without its parameters shadowing the import.
@pytest.fixture(name="fake_bmcs")
def fake_bmcs_fixture():
    base.registered_drivers()  # load the built-in drivers first, so none replaces ours later
    bmcs = FakeBmcs()
    FakeDriver.bmcs = bmcs
    base._DRIVERS[FAKE] = FakeDriver
    yield bmcs
    base._DRIVERS.pop(FAKE, None)
    FakeDriver.bmcs = None


@pytest.fixture(name="fast_retries")
def fast_retries_fixture(settings):
    """A BMC that is down is given up on after a fraction of a second."""
    settings.POWER_RETRY_DEADLINE = 0.3


def add_fake_bmc(server, *, address=None, password=None, username="admin", **fields):
    """A BMC row with the test driver (not a model choice, so written without full_clean)."""
    options = fields.pop("options", {})
    if server.rack_id:
        options.setdefault("rack", server.rack_id)
    return Bmc.objects.create(
        server=server,
        driver=FAKE,
        address=address or f"bmc-{server.hostname}",
        username=username,
        password=password if password is not None else planted(),
        options=options,
        **fields,
    )


def make_servers(user, tenant, names, *, rack=None):
    return [
        services.create_server(user=user, hostname=name, tenant=tenant, rack=rack) for name in names
    ]


def make_rack(name="r1"):
    site, _ = Site.objects.get_or_create(name="DC1", slug="dc1")
    return Rack.objects.create(site=site, name=name)

"""The contract every power driver fulfils.

Drivers get a BmcTarget (address, port, credentials as plain strings, driver options) and raise
FatalPowerError (bad credentials, unsupported action: retrying will not help) or
RetryablePowerError (timeout, connection refused, BMC busy). Retries with backoff and a deadline
are the caller's business (inventory.power.retry), so drivers stay simple.
"""

import abc
import enum
from dataclasses import dataclass, field


class PowerState(enum.StrEnum):
    ON = "on"
    OFF = "off"
    UNKNOWN = "unknown"


class BootDevice(enum.StrEnum):
    PXE = "pxe"
    DISK = "disk"


class PowerError(Exception):
    """Base of the typed driver errors; the message is safe to show (it holds no secret)."""


class FatalPowerError(PowerError):
    """Retrying will not help: wrong credentials, unsupported action, malformed target."""


class RetryablePowerError(PowerError):
    """May work a moment later: timeout, connection refused, BMC busy."""


@dataclass(frozen=True)
class BmcTarget:
    address: str
    username: str = ""
    password: str = field(default="", repr=False)  # never in a repr, log line or job log
    port: int | None = None
    options: dict = field(default_factory=dict)
    label: str = ""  # the server's host name, for messages

    def __str__(self):
        port = f":{self.port}" if self.port else ""
        return f"{self.label or self.address} (BMC {self.address}{port})"


@dataclass(frozen=True)
class Sensor:
    name: str
    value: float | str | None
    unit: str = ""
    state: str = ""  # ok, warning, critical, or the BMC's own word


class PowerDriver(abc.ABC):
    """One instance per call; implementations must be safe to run in parallel threads."""

    name = ""
    description = ""

    def __init__(self, target: BmcTarget):
        self.target = target

    @abc.abstractmethod
    def status(self) -> PowerState: ...

    @abc.abstractmethod
    def on(self) -> None: ...

    @abc.abstractmethod
    def off(self) -> None:
        """Hard power off."""

    @abc.abstractmethod
    def soft_off(self) -> None:
        """Ask the OS to shut down (ACPI)."""

    @abc.abstractmethod
    def cycle(self) -> None:
        """Off, then on."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Hard reset without removing power."""

    @abc.abstractmethod
    def set_boot_device(self, device: BootDevice, once: bool = True) -> None: ...

    def sensors(self) -> list[Sensor]:
        raise FatalPowerError(f"The {self.name} driver cannot read sensors.")

    def inventory(self) -> dict:
        """FRU / hardware data the BMC offers (rinv)."""
        raise FatalPowerError(f"The {self.name} driver cannot read FRU data.")


_DRIVERS: dict[str, type[PowerDriver]] = {}


def register_driver(cls):
    """Class decorator: make a driver available under cls.name."""
    _DRIVERS[cls.name] = cls
    return cls


def registered_drivers():
    _load_builtin()
    return dict(_DRIVERS)


def get_driver(name, target):
    _load_builtin()
    try:
        return _DRIVERS[name](target)
    except KeyError:
        raise FatalPowerError(f"Unknown power driver {name!r}.") from None


def _load_builtin():
    # Imported lazily: pyghmi and sushy are only needed once a BMC of theirs is used.
    from inventory.power import ipmi, manual, redfish  # noqa: F401

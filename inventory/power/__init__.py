"""Power control drivers (the MAAS shape): one abstract base, a registry, drivers that take and
return plain data and never touch the ORM."""

from inventory.power.base import (  # noqa: F401
    BmcTarget,
    BootDevice,
    FatalPowerError,
    PowerDriver,
    PowerError,
    PowerState,
    RetryablePowerError,
    Sensor,
    get_driver,
    register_driver,
    registered_drivers,
)

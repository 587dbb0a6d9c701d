"""The contract every hypervisor driver fulfils.

Drivers get a PoolTarget (URL, credentials as plain strings, TLS settings, driver options) and
return plain dataclasses; they never import models. Failures are typed: every DriverError has a
stable `code` (XAPI's own where there is one) and a `retryable` flag, so callers decide between
"try again later" (hypervisor unreachable, pool busy) and "tell the operator" (bad power state,
no such VM, storage full, wrong password). Retries with backoff are the caller's business.
"""

import abc
import enum
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field


class PowerState(enum.StrEnum):
    RUNNING = "running"
    HALTED = "halted"
    PAUSED = "paused"
    SUSPENDED = "suspended"


class ShutdownMode(enum.StrEnum):
    CLEAN = "clean"
    HARD = "hard"


class DriverError(Exception):
    """Base of the typed driver errors; the message is safe to show (it holds no secret)."""

    code = "INTERNAL_ERROR"
    retryable = False

    def __init__(self, message, *, code=None, details=(), retryable=None):
        super().__init__(message)
        if code:
            self.code = code
        if retryable is not None:
            self.retryable = retryable
        self.details = tuple(details)


class BadPowerState(DriverError):
    """The VM is not in the power state the operation needs (XAPI VM_BAD_POWER_STATE)."""

    code = "VM_BAD_POWER_STATE"


class NotFound(DriverError):
    """No such object: an unknown reference or UUID (XAPI HANDLE_INVALID, UUID_INVALID)."""

    code = "HANDLE_INVALID"


class StorageFull(DriverError):
    """The storage repository has no room for the disk (XAPI SR_FULL)."""

    code = "SR_FULL"


class AuthFailed(DriverError):
    """Wrong credentials (XAPI SESSION_AUTHENTICATION_FAILED)."""

    code = "SESSION_AUTHENTICATION_FAILED"


class Unreachable(DriverError):
    """Connection refused, timeout, pool busy: may work a moment later."""

    code = "UNREACHABLE"
    retryable = True


class NotSupported(DriverError):
    """The hypervisor (or this installation) does not offer the operation."""

    code = "NOT_SUPPORTED"


@dataclass(frozen=True)
class PoolTarget:
    url: str
    username: str = ""
    password: str = field(default="", repr=False)  # never in a repr, log line or job log
    verify_tls: bool = True
    ca_bundle: str = ""  # PEM certificates, or a path to a PEM file; empty: the system's CAs
    options: dict = field(default_factory=dict)
    label: str = ""  # the pool's name, for messages

    def __str__(self):
        return f"{self.label} ({self.url})" if self.label else self.url


@dataclass(frozen=True)
class HostInfo:
    uuid: str
    name: str
    address: str = ""
    enabled: bool = True
    cpu_count: int = 0
    memory_total_bytes: int = 0
    memory_free_bytes: int = 0


@dataclass(frozen=True)
class VmInfo:
    uuid: str
    name: str
    power_state: PowerState
    vcpus: int = 0
    memory_bytes: int = 0
    is_template: bool = False
    macs: tuple[str, ...] = ()
    host_uuid: str = ""  # where it runs; empty when halted
    hvm_boot_policy: str = ""  # "" = PV boot; "BIOS order" = HVM (PXE when params order is "n")
    hvm_boot_params: dict = field(default_factory=dict)
    pv_bootloader: str = ""
    other_config: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TemplateInfo:
    uuid: str
    name: str
    description: str = ""
    vcpus: int = 0
    memory_bytes: int = 0


@dataclass(frozen=True)
class NetworkInfo:
    uuid: str
    name: str
    bridge: str = ""


@dataclass(frozen=True)
class StorageInfo:
    uuid: str
    name: str
    type: str = ""
    size_bytes: int = 0
    used_bytes: int = 0
    shared: bool = False

    @property
    def free_bytes(self):
        return max(self.size_bytes - self.used_bytes, 0)


@dataclass(frozen=True)
class VmSpec:
    name: str
    template: str  # template UUID (xenapi) or name (libvirt)
    vcpus: int
    memory_bytes: int
    disk_bytes: int = 0  # 0 keeps the template's disk size
    sr: str = ""  # storage repository / pool UUID; empty uses the default
    networks: tuple[tuple[str, str], ...] = ()  # (network UUID or name, MAC from the allocator)
    vnc_port: int | None = None  # None lets the hypervisor choose
    other_config: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.vcpus < 1:
            raise ValueError("vcpus must be at least 1")
        if self.memory_bytes < 1:
            raise ValueError("memory_bytes must be positive")
        if self.disk_bytes < 0:
            raise ValueError("disk_bytes cannot be negative")
        object.__setattr__(self, "networks", tuple(tuple(pair) for pair in self.networks))


class HypervisorDriver(abc.ABC):
    """One instance per pool target; implementations must be safe to use from parallel threads.

    VM arguments are UUIDs. Operations return when the hypervisor has finished them.
    """

    name = ""
    description = ""
    # True when the portal must choose the VM's console port (VmSpec.vnc_port).
    needs_console_port = False

    def __init__(self, target: PoolTarget):
        self.target = target

    @abc.abstractmethod
    def hosts(self) -> list[HostInfo]: ...

    @abc.abstractmethod
    def vms(self) -> list[VmInfo]:
        """Guests only: templates and control domains are left out."""

    @abc.abstractmethod
    def vm(self, vm: str) -> VmInfo: ...

    @abc.abstractmethod
    def templates(self) -> list[TemplateInfo]: ...

    @abc.abstractmethod
    def networks(self) -> list[NetworkInfo]: ...

    @abc.abstractmethod
    def storage(self) -> list[StorageInfo]: ...

    @abc.abstractmethod
    def create_vm(self, spec: VmSpec) -> str:
        """Create a halted VM from spec.template; returns its UUID."""

    @abc.abstractmethod
    def start(self, vm: str) -> None: ...

    @abc.abstractmethod
    def shutdown(self, vm: str, mode: ShutdownMode = ShutdownMode.CLEAN) -> None: ...

    @abc.abstractmethod
    def reboot(self, vm: str, mode: ShutdownMode = ShutdownMode.CLEAN) -> None: ...

    @abc.abstractmethod
    def destroy(self, vm: str) -> None:
        """Remove a halted VM and its own disks."""

    def migrate(self, vm: str, host: str) -> None:
        raise NotSupported(f"The {self.name} driver cannot migrate VMs.")

    def set_pxe_boot(self, vm: str) -> None:
        """Boot from the network on the next start (to install through the deploy flow)."""
        raise NotSupported(f"The {self.name} driver cannot switch a VM to PXE boot.")

    def set_pv_boot(self, vm: str) -> None:
        """Return an installed Xen guest to its PV bootloader."""
        raise NotSupported(f"The {self.name} driver has no PV boot.")

    def set_disk_boot(self, vm: str) -> None:
        """Boot the installed system again (after a PXE install): PV boot on Xen."""
        raise NotSupported(f"The {self.name} driver cannot switch a VM to disk boot.")

    def close(self) -> None:  # noqa: B027 (optional hook: a driver may hold nothing)
        """Release connections held for this target."""


def parse_xml(text):
    """An element tree of XML that a hypervisor sent (domain, pool or provisioning XML).

    ElementTree never fetches external entities, and the expat it uses (2.4.1 and later)
    refuses runaway entity expansion, so no defusing layer is needed for it.
    """
    try:
        return ET.fromstring(text)  # noqa: S314 (see the docstring)
    except ET.ParseError as exc:
        raise DriverError(f"The hypervisor sent invalid XML: {exc}.", code="BAD_XML") from None


_DRIVERS: dict[str, type[HypervisorDriver]] = {}


def register(cls):
    """Class decorator: make a driver available under cls.name."""
    _DRIVERS[cls.name] = cls
    return cls


def registered_drivers():
    _load_builtin()
    return dict(_DRIVERS)


def get_driver(name, target=None):
    """The driver class for `name`, or an instance of it when a target is given."""
    _load_builtin()
    try:
        cls = _DRIVERS[name]
    except KeyError:
        raise NotSupported(f"Unknown hypervisor driver {name!r}.") from None
    return cls if target is None else cls(target)


def _load_builtin():
    # The libvirt module imports without libvirt-python; it only fails once used.
    from virt.drivers import libvirt, xenapi  # noqa: F401

"""The redfish driver: DMTF Redfish with sushy.

Options (BmcTarget.options), all optional:
  scheme      "https" (default) or "http" (emulators, labs)
  verify_tls  TLS certificate verification, on unless this is false (False, "false", "no", "0")
  ca_bundle   path of a CA certificate bundle to verify the BMC's certificate with
  system_id   the ComputerSystem to drive: its Id, UUID, name or @odata.id path; needed when the
              service has more than one system
  timeout     seconds for each HTTP request (default 10)
  power_wait  seconds a power cycle may wait for "Off" when the BMC has no PowerCycle and the
              driver does ForceOff, then On (default 30)
  auth        "basic" (default: no session left behind on the BMC) or "session"
  boot_mode   "uefi" or "legacy" to send BootSourceOverrideMode with set_boot_device

Power actions return once the BMC has accepted them; Redfish services often apply them later
(sushy-tools' emulator after 1 to 11 s): use inventory.power.retry.wait_for_state to see them
land. on, off and soft_off do nothing when the system already is in the wanted state.
"""

import contextlib
import os
import re
import time
from urllib.parse import quote

from inventory.power.base import (
    BootDevice,
    FatalPowerError,
    PowerDriver,
    PowerError,
    PowerState,
    RetryablePowerError,
    Sensor,
    register_driver,
)

DEFAULT_TIMEOUT = 10
DEFAULT_POWER_WAIT = 30
POLL_INTERVAL = 1.0
FALSE_WORDS = {"false", "no", "off", "0"}
RETRYABLE_HTTP = {408, 409, 423, 429}  # timeout, conflict (busy), locked, too many requests


class _Unsupported(FatalPowerError):
    """The BMC does not offer this action or value."""


def _false(value):
    return value is False or str(value).strip().lower() in FALSE_WORDS


@register_driver
class RedfishDriver(PowerDriver):
    name = "redfish"
    description = "DMTF Redfish (HTTPS), with sushy"

    def __init__(self, target):
        super().__init__(target)
        options = target.options or {}
        host = target.address
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # IPv6 literal
        self.where = f"BMC {target.address}" + (f":{target.port}" if target.port else "")
        scheme = str(options.get("scheme", "https")).lower()
        if scheme not in ("https", "http"):
            raise FatalPowerError(f"{self.where}: option scheme must be https or http.")
        self.base_url = f"{scheme}://{host}" + (f":{int(target.port)}" if target.port else "")
        ca_bundle = options.get("ca_bundle")
        if ca_bundle:
            if not os.path.exists(ca_bundle):
                raise FatalPowerError(f"{self.where}: CA bundle {ca_bundle} does not exist.")
            self.verify = str(ca_bundle)
        else:
            self.verify = not _false(options.get("verify_tls", True))
        self.system_id = options.get("system_id") or None
        self.timeout = _positive(options.get("timeout", DEFAULT_TIMEOUT), "timeout", self.where)
        self.power_wait = _positive(
            options.get("power_wait", DEFAULT_POWER_WAIT), "power_wait", self.where
        )
        self.session_auth = str(options.get("auth", "basic")).lower() == "session"
        boot_mode = options.get("boot_mode")
        if boot_mode and str(boot_mode).lower() not in ("uefi", "legacy"):
            raise FatalPowerError(f"{self.where}: option boot_mode must be uefi or legacy.")
        self.boot_mode = {"uefi": "UEFI", "legacy": "Legacy"}.get(str(boot_mode).lower())

    # -- the contract -------------------------------------------------------------------------

    def status(self):
        return self._run("power status", lambda system: _power_state(system))

    def on(self):
        self._run("power on", lambda system: self._power_on(system, _allowed_resets(system)))

    def off(self):
        def off(system):
            if _power_state(system) != PowerState.OFF:
                self._reset(system, ("ForceOff",), _allowed_resets(system), "power off")

        self._run("power off", off)

    def soft_off(self):
        def soft_off(system):
            if _power_state(system) != PowerState.OFF:
                self._reset(system, ("GracefulShutdown",), _allowed_resets(system), "soft off")

        self._run("soft power off", soft_off)

    def cycle(self):
        def cycle(system):
            allowed = _allowed_resets(system)
            if _power_state(system) == PowerState.OFF:
                self._power_on(system, allowed)
            elif not allowed or "PowerCycle" in allowed:
                self._reset(system, ("PowerCycle",), allowed, "power cycle")
            else:
                # No PowerCycle: ForceOff, wait until the BMC reports Off (or it might take the
                # On for a no-op while the Off is still pending), then On.
                self._reset(system, ("ForceOff",), allowed, "power cycle")
                self._wait_off(system)
                self._reset(system, ("On", "ForceOn"), allowed, "power cycle")

        self._run("power cycle", cycle)

    def reset(self):
        def reset(system):
            kinds = ("ForceRestart", "PowerCycle", "GracefulRestart")
            self._reset(system, kinds, _allowed_resets(system), "power reset")

        self._run("power reset", reset)

    def set_boot_device(self, device, once=True):
        device = BootDevice(device)
        target = {BootDevice.PXE: "Pxe", BootDevice.DISK: "Hdd"}[device]

        def set_boot(system):
            from sushy import BootSource, BootSourceOverrideEnabled, BootSourceOverrideMode

            allowed = (system.boot.allowed_values if system.boot else None) or []
            if allowed and target not in allowed:
                raise _Unsupported(
                    f"{self.where} cannot boot from {target} (it offers {_list(allowed)})."
                )
            enabled = BootSourceOverrideEnabled.CONTINUOUS
            if once:
                enabled = BootSourceOverrideEnabled.ONCE
            mode = BootSourceOverrideMode(self.boot_mode) if self.boot_mode else None
            system.set_system_boot_options(target=BootSource(target), enabled=enabled, mode=mode)

        self._run("set boot device", set_boot)

    def sensors(self):
        def read(system):
            from sushy import exceptions

            readings = []
            try:
                chassis_list = system.chassis
            except exceptions.MissingAttributeError:
                return []
            for chassis in chassis_list:
                for kind in ("thermal", "power"):
                    try:
                        resource = getattr(chassis, kind)
                    except (exceptions.MissingAttributeError, exceptions.ResourceNotFoundError):
                        continue
                    readings += _sensors(kind, resource.json)
            return _unique_names(readings)

        return self._run("sensor readings", read)

    def inventory(self):
        def read(system):
            from sushy import exceptions

            data = system.json
            processors = dict(data.get("ProcessorSummary") or {})
            try:
                summary = system.processors.summary
                processors.setdefault("Count", summary.count)
                if summary.architecture:
                    processors.setdefault("Architecture", _value(summary.architecture))
            except (exceptions.MissingAttributeError, exceptions.ResourceNotFoundError):
                pass
            memory = system.memory_summary
            return {
                "manufacturer": system.manufacturer,
                "model": system.model,
                "serial": system.serial_number,
                "uuid": system.uuid,
                "bios_version": system.bios_version,
                "sku": system.sku,
                "part_number": system.part_number,
                "name": system.name,
                "system_id": system.identity,
                "power_state": str(_power_state(system)),
                "memory_gib": memory.size_gib if memory else None,
                "processors": {
                    "count": processors.get("Count"),
                    "model": processors.get("Model"),
                    "architecture": processors.get("Architecture"),
                },
            }

        return self._run("hardware inventory", read)

    # -- one call -----------------------------------------------------------------------------

    def _run(self, what, fn):
        auth = None
        try:
            import sushy
            from sushy import auth as sushy_auth

            if self.session_auth:
                auth = sushy_auth.SessionOrBasicAuth(self.target.username, self.target.password)
            else:
                auth = sushy_auth.BasicAuth(self.target.username, self.target.password)
            conn = sushy.Sushy(
                self.base_url,
                auth=auth,
                verify=self.verify,
                read_timeout=self.timeout,
                connect_timeout=self.timeout,
                server_side_retries=1,  # retries are the caller's business (retry.py)
                server_side_retries_delay=0.5,
            )
            return fn(self._system(conn))
        except Exception as error:  # noqa: BLE001 (every failure becomes a typed error)
            raise self._translate(error, what) from None
        finally:
            if auth is not None:
                with contextlib.suppress(Exception):
                    auth.close()  # deletes the Redfish session, if there is one

    def _system(self, conn):
        from sushy import exceptions

        if not self.system_id:
            try:
                return conn.get_system()
            except exceptions.UnknownDefaultError:
                ids = [path.rstrip("/").rsplit("/", 1)[-1] for path in _members(conn)]
                raise FatalPowerError(
                    f"{self.where} has {len(ids)} systems ({_list(ids)}): set the option "
                    "system_id to one of them."
                ) from None
        system_id = str(self.system_id)
        if system_id.startswith("/"):
            return conn.get_system(system_id)
        collection = conn.get_system_collection()
        try:
            return conn.get_system(f"{collection.path.rstrip('/')}/{quote(system_id)}")
        except exceptions.ResourceNotFoundError:
            pass
        # Not an Id: look for a system with that UUID or name.
        for path in collection.members_identities:
            system = conn.get_system(path)
            if system_id.lower() in {str(system.uuid).lower(), str(system.name).lower()}:
                return system
        ids = [path.rstrip("/").rsplit("/", 1)[-1] for path in collection.members_identities]
        raise FatalPowerError(
            f"{self.where} has no system {system_id!r} (it has {_list(ids)})."
        ) from None

    def _power_on(self, system, allowed):
        if _power_state(system) != PowerState.ON:
            self._reset(system, ("On", "ForceOn", "PushPowerButton"), allowed, "power on")

    def _reset(self, system, kinds, allowed, what):
        """POST the first of `kinds` the BMC offers (the first one if it does not say)."""
        from sushy import ResetType

        kind = next((k for k in kinds if not allowed or k in allowed), None)
        if kind is None:
            raise _Unsupported(
                f"{self.where} cannot {what}: it offers no {' or '.join(kinds)} "
                f"(only {_list(allowed)})."
            )
        system.reset_system(ResetType(kind))

    def _wait_off(self, system):
        deadline = time.monotonic() + self.power_wait
        while True:
            system.refresh(force=True)
            if _power_state(system) == PowerState.OFF:
                return
            if time.monotonic() >= deadline:
                raise RetryablePowerError(
                    f"{self.where} accepted ForceOff for a power cycle but did not report Off "
                    f"within {self.power_wait:g} s (option power_wait)."
                )
            time.sleep(POLL_INTERVAL)

    # -- errors -------------------------------------------------------------------------------

    def _translate(self, error, what):
        """Any exception of a call as a typed error whose message holds no secret."""
        import requests
        from sushy import exceptions

        if isinstance(error, PowerError):
            return self._scrubbed(error)
        if isinstance(error, exceptions.AccessError):
            if error.status_code == 403:
                return FatalPowerError(
                    f"{self.where}: user {self.target.username!r} lacks the privilege for {what} "
                    f"(HTTP 403{_detail(error)})."
                )
            return FatalPowerError(
                f"{self.where} refused the credentials (wrong user name or password) for user "
                f"{self.target.username!r} (HTTP {error.status_code})."
            )
        if isinstance(error, exceptions.ResourceNotFoundError):
            return self._scrubbed(
                FatalPowerError(f"{self.where}: {what} failed: no resource at {_path(error)}.")
            )
        if isinstance(error, exceptions.ServerSideError):
            return self._scrubbed(
                RetryablePowerError(
                    f"{self.where}: {what} failed: HTTP {error.status_code}{_detail(error)}."
                )
            )
        if isinstance(error, exceptions.HTTPError):
            cls = RetryablePowerError if error.status_code in RETRYABLE_HTTP else FatalPowerError
            return self._scrubbed(
                cls(f"{self.where}: {what} failed: HTTP {error.status_code}{_detail(error)}.")
            )
        if isinstance(error, exceptions.ConnectionError):
            cause = error.__context__
            if isinstance(cause, requests.exceptions.SSLError):
                hint = (
                    "check option ca_bundle"
                    if isinstance(self.verify, str)
                    else "set option ca_bundle to the CA that signed it, or verify_tls false"
                )
                return FatalPowerError(f"{self.where}: TLS failed ({_ssl_reason(cause)}); {hint}.")
            if isinstance(cause, requests.exceptions.Timeout):
                return RetryablePowerError(
                    f"{self.where} did not answer within {self.timeout:g} s ({what})."
                )
            return RetryablePowerError(
                f"{self.where} is unreachable ({what}): {_connection_reason(cause)}."
            )
        if isinstance(
            error,
            exceptions.MissingAttributeError
            | exceptions.MissingActionError
            | exceptions.InvalidParameterValueError,
        ):
            return self._scrubbed(_Unsupported(f"{self.where} does not support {what}: {error}"))
        if isinstance(error, exceptions.SushyError | ValueError | KeyError):
            return self._scrubbed(
                FatalPowerError(
                    f"{self.where}: {what} failed; not the Redfish service expected: "
                    f"{type(error).__name__}: {error}"
                )
            )
        if isinstance(error, requests.exceptions.RequestException | OSError):
            return RetryablePowerError(f"{self.where}: network error during {what}: {error}")
        return self._scrubbed(
            FatalPowerError(
                f"{self.where}: unexpected {type(error).__name__} during {what}: {error}"
            )
        )

    def _scrubbed(self, error):
        """The same error, with any trace of the password replaced (belt and braces)."""
        secret = self.target.password
        message = str(error)
        if not secret or len(secret) < 3 or secret not in message:
            return error
        return type(error)(message.replace(secret, "********"))


def _positive(value, name, where):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise FatalPowerError(f"{where}: option {name} must be a number.") from None
    if value <= 0:
        raise FatalPowerError(f"{where}: option {name} must be positive.")
    return value


def _value(member):
    return getattr(member, "value", member)


def _power_state(system):
    state = _value(system.power_state)
    return {"On": PowerState.ON, "Off": PowerState.OFF}.get(state, PowerState.UNKNOWN)


def _allowed_resets(system):
    """The ResetType values the BMC advertises (empty if it does not say)."""
    try:
        action = system._get_reset_action_element()  # sushy's own lookup of the action
    except Exception:  # noqa: BLE001 (no Reset action: reset_system will say so)
        return set()
    return set(action.get_allowed_values(system) or ())


def _members(conn):
    try:
        return list(conn.get_system_collection().members_identities)
    except Exception:  # noqa: BLE001
        return []


def _list(values):
    values = sorted(str(_value(v)) for v in values)
    return ", ".join(values) if values else "none"


def _detail(error):
    detail = getattr(error, "detail", None)
    return f": {detail}" if detail else ""


def _path(error):
    message = str(error)
    return message.split("Resource ", 1)[-1].split(" not found", 1)[0] if message else "?"


def _ssl_reason(cause):
    """ "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: ..." from a requests error."""
    match = re.search(r"\[SSL: [A-Z_]+\][^(]*", str(cause))
    return match.group(0).strip().rstrip(":") if match else type(cause).__name__


def _connection_reason(cause):
    text = str(cause)
    for marker in (
        "Connection refused",
        "Name or service not known",
        "No route to host",
        "Network is unreachable",
        "Connection reset",
        "timed out",
    ):
        if marker in text:
            return marker.lower()
    return type(cause).__name__ if cause else "connection failed"


def _state(status):
    health = _value((status or {}).get("Health")) if isinstance(status, dict) else None
    return str(health).lower() if health else ""


# Redfish collection -> (label for unnamed members, reading property, default unit)
_SENSOR_SOURCES = {
    "thermal": (
        ("Temperatures", "Temperature", "ReadingCelsius", "°C"),
        ("Fans", "Fan", "Reading", "RPM"),
    ),
    "power": (
        ("PowerControl", "Power consumed", "PowerConsumedWatts", "W"),
        ("Voltages", "Voltage", "ReadingVolts", "V"),
        ("PowerSupplies", "Power supply", "LastPowerOutputWatts", "W"),
    ),
}


def _sensors(kind, data):
    return [
        Sensor(
            name=item.get("Name")
            or item.get("FanName")
            or f"{label} {item.get('MemberId', '')}".strip(),
            value=item.get(reading),
            unit=item.get("ReadingUnits") or unit,
            state=_state(item.get("Status")),
        )
        for collection, label, reading, unit in _SENSOR_SOURCES[
            "thermal" if kind == "thermal" else "power"
        ]
        for item in data.get(collection) or []
    ]


def _unique_names(readings):
    """Sensor names made unique ("CPU Temp", "CPU Temp 2"), as a list of readings."""
    seen = {}
    unique = []
    for reading in readings:
        count = seen.get(reading.name, 0) + 1
        seen[reading.name] = count
        if count > 1:
            reading = Sensor(f"{reading.name} {count}", reading.value, reading.unit, reading.state)
        unique.append(reading)
    return unique

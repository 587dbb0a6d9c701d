"""The ipmi driver: IPMI 2.0 over LAN (RMCP+) with pyghmi.

Options (BmcTarget.options), all optional:
  timeout       seconds one call may take, login included (default 10)
  kg            the BMC key (Kg), as text, or as hex digits with a 0x prefix
  privilege     "administrator", "operator" or "user" (default: administrator, else operator)
  cipher_suite  3 or 17; pyghmi proposes 17 (SHA-256, AES) and falls back to 3 (SHA-1, AES) by
                itself, and offers no other suite, so other values are refused
  boot_mode     "uefi" to ask for an EFI boot with set_boot_device (default: legacy, which most
                firmware ignores)

Each call opens its own session, runs, and logs out, so sessions never pile up on BMCs, which
often have few. Calls to one BMC from one process take turns (pyghmi shares a session between
callers with equal credentials, and its per-session state is not meant for threads); calls to
different BMCs run in parallel threads, sharing pyghmi's global session table and I/O thread
(with two fixes to pyghmi for that: see _patch_pyghmi). A call runs in a thread of its own that
the caller stops waiting for after `timeout` seconds; a BMC that does not answer keeps that
thread a few seconds more, until pyghmi gives up (an action it carried may still land).

Power actions return once the BMC has accepted them; on and off also wait (up to the timeout)
until the BMC reports the new state, as an IPMI BMC answers at once. cycle, reset and soft_off
do not wait: use inventory.power.retry.wait_for_state where a later state matters.
"""

import contextlib
import socket
import threading
import time
from datetime import date, datetime

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

DEFAULT_PORT = 623
DEFAULT_TIMEOUT = 10
POLL_INTERVAL = 0.5
LOST_WAKEUP_WAIT = 0.05  # see _patch_pyghmi
PRIVILEGES = {"administrator": 4, "admin": 4, "operator": 3, "user": 2}
CIPHER_SUITES = {3, 17}

# Chassis commands (IPMI 2.0 section 28), network function 0 (chassis).
CHASSIS_STATUS, CHASSIS_CONTROL, SET_BOOT_OPTIONS = 0x01, 0x02, 0x08
POWER_DOWN, POWER_UP, POWER_CYCLE, HARD_RESET, SOFT_OFF = 0, 1, 2, 3, 5
BOOT_FLAGS = 5
BOOT_VALID, BOOT_PERSISTENT, BOOT_EFI = 0x80, 0x40, 0x20
BOOT_SELECTOR = {BootDevice.PXE: 0x04, BootDevice.DISK: 0x08}

# Completion codes that say the BMC cannot do what was asked (retrying will not help).
UNSUPPORTED_CODES = {0xC1, 0xC2, 0xC9, 0xCC, 0xCD, 0xD5, 0xD6}
NOT_PRESENT = 0xCB
INSUFFICIENT_PRIVILEGE = 0xD4

# pyghmi's login failures come as text; what they mean for us.
_CREDENTIAL_ERRORS = ("incorrect password", "unauthorized name", "invalid username")
_KG_ERRORS = ("rakp4 integrity", "wrong kg")
_PRIVILEGE_ERRORS = (
    "unauthorized role",
    "invalid role",
    "insufficient privilege",
    "privelege level",  # sic, pyghmi's spelling
    "privilege level",
)
_NO_SESSION = ("no longer connected", "failed to initialize", "session disconnected")
_UNSUPPORTED_ERRORS = (
    "invalid command",
    "invalid data field",
    "not supported in present state",
    "subfunction disabled",
    "parameter out of range",
    "no cipher suite match",
)


class _Unsupported(FatalPowerError):
    """The BMC cannot do this (an IPMI completion code says so)."""


_bmc_locks = {}
_bmc_locks_guard = threading.Lock()


def _bmc_lock(key):
    with _bmc_locks_guard:
        return _bmc_locks.setdefault(key, threading.Lock())


def _json_safe(value):
    """FRU data as JSON can hold it (pyghmi gives datetimes and bytes)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


@register_driver
class IpmiDriver(PowerDriver):
    name = "ipmi"
    description = "IPMI 2.0 over LAN (RMCP+), with pyghmi"

    def __init__(self, target):
        super().__init__(target)
        options = target.options or {}
        self.port = int(target.port or DEFAULT_PORT)
        self.where = f"BMC {target.address}:{self.port}"
        try:
            self.timeout = float(options.get("timeout", DEFAULT_TIMEOUT))
        except (TypeError, ValueError):
            raise FatalPowerError(f"{self.where}: option timeout must be a number.") from None
        if self.timeout <= 0:
            raise FatalPowerError(f"{self.where}: option timeout must be positive.")
        privilege = options.get("privilege")
        if privilege is not None and str(privilege).lower() not in PRIVILEGES:
            raise FatalPowerError(
                f"{self.where}: option privilege must be one of administrator, operator, user."
            )
        self.privlevel = PRIVILEGES[str(privilege).lower()] if privilege is not None else None
        suite = options.get("cipher_suite")
        if suite not in (None, "") and _int_or_none(suite) not in CIPHER_SUITES:
            raise FatalPowerError(
                f"{self.where}: cipher suite {suite} is not available; the IPMI driver "
                "negotiates suite 17 and falls back to 3."
            )
        self.kg = _parse_kg(options.get("kg"), self.where)
        self.uefi = str(options.get("boot_mode", "")).lower() == "uefi"

    # -- the contract -------------------------------------------------------------------------

    def status(self):
        return self._run("power status", self._power_state)

    def on(self):
        self._run("power on", lambda cmd, deadline: self._switch(cmd, deadline, POWER_UP))

    def off(self):
        self._run("power off", lambda cmd, deadline: self._switch(cmd, deadline, POWER_DOWN))

    def soft_off(self):
        def soft_off(cmd, deadline):
            if self._power_state(cmd, deadline) == PowerState.OFF:
                return
            self._raw(cmd, CHASSIS_CONTROL, [SOFT_OFF], "soft power off")

        self._run("soft power off", soft_off)

    def cycle(self):
        def cycle(cmd, deadline):
            if self._power_state(cmd, deadline) == PowerState.OFF:
                # Most BMCs ignore or refuse a power cycle of a machine that is off.
                self._switch(cmd, deadline, POWER_UP)
                return
            try:
                self._raw(cmd, CHASSIS_CONTROL, [POWER_CYCLE], "power cycle")
            except _Unsupported:
                self._switch(cmd, deadline, POWER_DOWN)
                self._switch(cmd, deadline, POWER_UP)

        self._run("power cycle", cycle)

    def reset(self):
        self._run(
            "power reset",
            lambda cmd, deadline: self._raw(cmd, CHASSIS_CONTROL, [HARD_RESET], "power reset"),
        )

    def set_boot_device(self, device, once=True):
        device = BootDevice(device)
        flags = BOOT_VALID | (0 if once else BOOT_PERSISTENT) | (BOOT_EFI if self.uefi else 0)

        def set_boot(cmd, deadline):
            # Parameter 3 asks the BMC not to clear the flags on its own after 60 s; optional.
            with contextlib.suppress(_Unsupported):
                self._raw(cmd, SET_BOOT_OPTIONS, [3, 0x08], "set boot device")
            self._raw(
                cmd,
                SET_BOOT_OPTIONS,
                [BOOT_FLAGS, flags, BOOT_SELECTOR[device], 0, 0, 0],
                "set boot device",
            )

        self._run("set boot device", set_boot)

    def sensors(self):
        def read(cmd, deadline):
            readings = []
            try:
                for reading in cmd.get_sensor_data():
                    readings.append(_sensor(reading))
            except Exception as error:
                # A BMC without a sensor repository (ipmi_sim's default) has no sensors.
                absent = getattr(error, "ipmicode", None) == NOT_PRESENT or (
                    "record not present" in str(error).lower()
                )
                if absent and not readings:
                    return []
                raise
            return readings

        return self._run("sensor readings", read)

    def inventory(self):
        return self._run("FRU inventory", self._inventory)

    # -- one call: a session of its own, bounded by the timeout -------------------------------

    def _run(self, what, fn):
        """Log in, run fn(cmd, deadline), log out; typed errors; about `timeout` s at most.

        pyghmi bounds its own waits (a few seconds per packet), but not to our timeout, so the
        call runs in a worker thread that we stop waiting for at the deadline; it ends by
        itself soon after, logging out of the session it may still hold.
        """
        started = time.monotonic()
        deadline = started + self.timeout
        outcome = {}

        def work():
            key = (self.target.address, self.port, self.target.username)
            lock = _bmc_lock(key)
            if not lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                outcome["error"] = RetryablePowerError(
                    f"{self.where} did not answer within {self.timeout:g} s ({what}; an "
                    "earlier call to it from this process is still waiting for an answer)."
                )
                return
            try:
                cmd = self._connect()
                try:
                    outcome["value"] = fn(cmd, deadline)
                finally:
                    _logout(cmd)
            except BaseException as error:  # noqa: BLE001 (handed to the caller's thread)
                outcome["error"] = error
            finally:
                self._forget_session()
                lock.release()

        worker = threading.Thread(target=work, name=f"ipmi {self.where}", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive():
            raise RetryablePowerError(
                f"{self.where} did not answer within {self.timeout:g} s ({what})."
            )
        if "error" in outcome:
            raise self._translate(outcome["error"], what) from None
        return outcome["value"]

    def _connect(self):
        _patch_pyghmi()
        from pyghmi.ipmi import command

        kwargs = {
            "bmc": self.target.address,
            "userid": self.target.username,
            "password": self.target.password,
            "port": self.port,
        }
        if self.kg is not None:
            kwargs["kg"] = self.kg
        if self.privlevel is not None:
            kwargs["privlevel"] = self.privlevel
        return command.Command(**kwargs)

    def _forget_session(self):
        """Drop our session from pyghmi's table of sessions being set up.

        pyghmi 1.6 files a session there under its text credentials but removes it under their
        encoded form, so it stays; the next Command for the same BMC and credentials would then
        get that logged-out (or failed) session back and fail. We hold the BMC's lock here.
        """
        from pyghmi.ipmi.private import session

        key = (self.target.address, self.target.username, self.target.password, self.port)
        session.Session.initting_sessions.pop((*key, self.kg), None)

    def _raw(self, cmd, command, data, what):
        """A chassis command; its completion code turned into a typed error."""
        response = cmd.raw_command(netfn=0, command=command, data=data)
        code = response.get("code", 0)
        if "error" not in response and not code:
            return response.get("data", b"")
        raise self._completion_error(code, response.get("error") or "", what)

    def _power_state(self, cmd, deadline=None):
        data = self._raw(cmd, CHASSIS_STATUS, [], "power status")
        if not data:
            raise RetryablePowerError(f"{self.where} sent an empty chassis status.")
        return PowerState.ON if data[0] & 1 else PowerState.OFF

    def _switch(self, cmd, deadline, control):
        """Power up or down, and wait until the BMC reports it (until the deadline)."""
        wanted = PowerState.ON if control == POWER_UP else PowerState.OFF
        what = f"power {wanted}"
        if self._power_state(cmd) == wanted:
            return
        self._raw(cmd, CHASSIS_CONTROL, [control], what)
        while True:
            if self._power_state(cmd) == wanted:
                return
            if time.monotonic() + POLL_INTERVAL >= deadline:
                raise RetryablePowerError(
                    f"{self.where} accepted {what} but did not report {wanted} within "
                    f"{self.timeout:g} s."
                )
            time.sleep(POLL_INTERVAL)

    def _inventory(self, cmd, deadline):
        from pyghmi import exceptions as pyghmi_exceptions

        components = {}
        try:
            for name, data in cmd.get_inventory():
                components[name] = _json_safe(data) if data else None
        except pyghmi_exceptions.IpmiException as error:
            # No FRU 0 or no SDR repository (ipmi_sim's default): keep what the BMC does say.
            code = getattr(error, "ipmicode", 0)
            absent = (
                "not present" in str(error).lower() or "invalid data field" in str(error).lower()
            )
            if code not in UNSUPPORTED_CODES | {NOT_PRESENT} and not absent:
                raise
        if not components.get("System"):
            components["System"] = self._device_id(cmd)
        system = components.get("System") or {}
        return {
            "manufacturer": _first(system, "Product manufacturer", "Board manufacturer"),
            "model": _first(system, "Product name", "Board product name", "Model"),
            "serial": _first(system, "Product serial", "Serial Number", "Board serial number"),
            "uuid": str(_first(system, "UUID") or "").lower() or None,
            "bmc_firmware": _first(system, "firmware_version", "Firmware Version"),
            "components": components,
        }

    def _device_id(self, cmd):
        response = cmd.raw_command(netfn=6, command=0x01)
        if "error" in response:
            raise self._completion_error(response.get("code", 0), response["error"], "device id")
        data = bytes(response["data"])
        system = {
            "Device ID": data[0],
            "Device Revision": data[1] & 0x0F,
            "firmware_version": f"{data[2] & 0x7F}.{data[3]:02x}",
            "Manufacturer ID": int.from_bytes(data[6:9], "little"),
            "Product ID": int.from_bytes(data[9:11], "little"),
        }
        guid = cmd.raw_command(netfn=6, command=0x37)
        if "error" not in guid and len(guid.get("data", b"")) == 16:
            from pyghmi.ipmi.private import util

            system["UUID"] = util.decode_wireformat_uuid(guid["data"])
        return system

    # -- errors -------------------------------------------------------------------------------

    def _completion_error(self, code, text, what):
        detail = f"{text or 'error'} (completion code 0x{code:02x})" if code else text
        if code == INSUFFICIENT_PRIVILEGE:
            return FatalPowerError(
                f"{self.where}: user {self.target.username!r} lacks the privilege for {what} "
                f"({detail}); it needs operator or administrator."
            )
        if code in UNSUPPORTED_CODES:
            return _Unsupported(f"{self.where} does not support {what}: {detail}.")
        if code == NOT_PRESENT:
            return FatalPowerError(f"{self.where} has no data for {what}: {detail}.")
        return RetryablePowerError(f"{self.where} failed {what}: {detail or 'no answer'}.")

    def _translate(self, error, what):
        """Any exception of a call as a typed error whose message holds no secret."""
        if isinstance(error, PowerError):
            return self._scrubbed(error)
        if isinstance(error, socket.gaierror):
            cls = RetryablePowerError if error.errno == socket.EAI_AGAIN else FatalPowerError
            return cls(f"{self.where}: cannot resolve the address ({error.strerror}).")
        text = str(error.args[0]) if getattr(error, "args", None) and error.args[0] else ""
        lowered = text.lower()
        code = getattr(error, "ipmicode", 0) or 0
        if _is_pyghmi_error(error):
            if any(s in lowered for s in _CREDENTIAL_ERRORS):
                return FatalPowerError(
                    f"{self.where} refused the credentials (wrong user name or password) "
                    f"for user {self.target.username!r}."
                )
            if any(s in lowered for s in _KG_ERRORS):
                return FatalPowerError(f"{self.where} refused the BMC key (option kg).")
            if code:
                return self._scrubbed(self._completion_error(code, text, what))
            if any(s in lowered for s in _PRIVILEGE_ERRORS):
                return FatalPowerError(
                    f"{self.where}: user {self.target.username!r} lacks the privilege for "
                    f"{what}; it needs operator or administrator."
                )
            if any(s in lowered for s in _UNSUPPORTED_ERRORS):
                return self._scrubbed(_Unsupported(f"{self.where}: {what} failed: {text}."))
            if not text or lowered == "timeout" or any(s in lowered for s in _NO_SESSION):
                return RetryablePowerError(
                    f"{self.where} did not answer ({what}): no IPMI session could be "
                    "established or kept (unreachable, or not an IPMI BMC)."
                )
            return self._scrubbed(RetryablePowerError(f"{self.where}: {what} failed: {text}."))
        if isinstance(error, OSError):
            return RetryablePowerError(
                f"{self.where}: network error during {what}: {error.strerror or error}."
            )
        return self._scrubbed(
            FatalPowerError(
                f"{self.where}: unexpected {type(error).__name__} during {what}: {error}"
            )
        )

    def _scrubbed(self, error):
        """The same error, with any trace of the password or key replaced (belt and braces)."""
        message = str(error)
        for secret in (self.target.password, self.kg if isinstance(self.kg, str) else None):
            if secret and len(secret) >= 3 and secret in message:
                message = message.replace(secret, "********")
        if message == str(error):
            return error
        scrubbed = type(error)(message)
        scrubbed.__dict__.update(error.__dict__)
        return scrubbed


_patched = threading.Lock()


def _patch_pyghmi():
    """Two fixes to pyghmi 1.6 for OS threads (it is built for green threads); done once,
    before the first session, as both replace module globals that pyghmi reads at each use.

    1. One lock for its two session tables, against a deadlock. pyghmi guards its tables of
       waiting and of kept-alive sessions with two locks and takes them in both orders:
       wait_for_rsp holds the waiting lock while it times a session out, which takes the
       keepalive lock (_mark_broken); send_payload holds the keepalive lock while it files the
       packet, which takes the waiting lock (_xmit_packet). One BMC that does not answer, while
       other threads talk to other BMCs, then blocks every IPMI call of the process for good.
       As one re-entrant lock, the two orders are the same.
    2. A caller waiting for its BMC's answer looks at its packet queue at least every 50 ms. The
       I/O thread queues an answer for a session and wakes whoever waits for that address; an
       answer that lands before the caller starts waiting wakes nobody, and the caller then
       sleeps until its retransmission timer (0.5 to 1 s) although the answer is there.
    """
    from pyghmi.ipmi.private import session

    with _patched:
        if session.KEEPALIVE_SESSIONS is not session.WAITING_SESSIONS:
            session.KEEPALIVE_SESSIONS = session.WAITING_SESSIONS
        if not getattr(session._io_wait, "dcportal", False):
            io_wait = session._io_wait

            def _io_wait(timeout, myaddr=None, evq=None):
                if myaddr is not None:
                    timeout = min(timeout, LOST_WAKEUP_WAIT)
                return io_wait(timeout, myaddr, evq)

            _io_wait.dcportal = True
            session._io_wait = _io_wait


def _is_pyghmi_error(error):
    from pyghmi import exceptions as pyghmi_exceptions

    return isinstance(error, pyghmi_exceptions.PyghmiException)


def _logout(cmd):
    with contextlib.suppress(Exception):  # the call's outcome matters, not the goodbye
        cmd.ipmi_session.logout()


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _parse_kg(kg, where):
    if kg in (None, ""):
        return None
    kg = str(kg)
    if kg.lower().startswith("0x"):
        try:
            return bytes.fromhex(kg[2:])
        except ValueError:
            raise FatalPowerError(f"{where}: option kg is not valid hex.") from None
    return kg


def _first(data, *keys):
    for key in keys:
        value = data.get(key)
        if value not in (None, ""):
            return value
    return None


def _sensor(reading):
    health = getattr(reading, "health", 0) or 0
    if health & 0b110:  # critical or failed
        state = "critical"
    elif health & 0b1:
        state = "warning"
    else:
        state = "ok"
    if getattr(reading, "unavailable", False):
        state = "unavailable"
    value = reading.value
    if value is None and getattr(reading, "states", None):
        value = ", ".join(reading.states)
    return Sensor(name=reading.name, value=value, unit=reading.units or "", state=state)

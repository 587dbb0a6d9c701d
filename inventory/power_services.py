"""Power control, the ORM side: BMC records, and power actions run against a server's BMC.

    bmc_target(bmc)                  -> BmcTarget for a driver (the only place a password is
                                        revealed)
    create_bmc / update_bmc / delete_bmc
    run_power_action(user=, server=, action=)   one action, now, in this process: permission and
                                        tenant check, a concurrency slot, the driver call with
                                        retries, the last known state, the audit event; returns
                                        a small result dict (failures too, typed)
    enqueue_power(user=, servers=, action=)     one tracked job per server on the "power" queue

The portal, the API and the worker go through enqueue_power; the rpower/rsetboot/rvitals
commands call run_power_action in a thread pool. Both share the Redis semaphores of
inventory.power_slots, so the limits hold across every process.

Credentials never leave this module: results, log lines and audit events carry host names,
states and the drivers' messages (which hold no secret by contract, and are scrubbed anyway).
"""

import logging
import traceback
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from dcportal import audit, jobs, rbac, services
from dcportal.models import Credential, Tenant
from dcportal.secrets import REDACTED
from inventory import power_slots
from inventory.models import Bmc, Server
from inventory.power.base import (
    BmcTarget,
    BootDevice,
    FatalPowerError,
    PowerError,
    PowerState,
    RetryablePowerError,
    get_driver,
    registered_drivers,
)

logger = logging.getLogger(__name__)

JOB_KIND = "inventory.power"
SLOT_PREFIX = "dcportal:power:slots"
# How long an action waits for a free slot before it fails as "retryable, exhausted". Long
# enough for a 100-node range in one rack to take its turns, shorter than the job timeout.
SLOT_WAIT = 900.0
MAX_SERVERS = 10000  # per enqueue_power call (a node range names at most as many)

OK, REQUESTED, FAILED = "ok", "requested", "failed"
FATAL, RETRYABLE, INTERNAL = "fatal", "retryable", "internal"


@dataclass(frozen=True)
class PowerAction:
    name: str
    permission: str  # the Server action it takes: view, power_server or set_boot_device
    verb: str = ""  # audit verb; reads (status, sensors) are not audited
    request: str = ""  # what a person is asked to do when the driver is `manual`
    label: str = ""

    @property
    def changes(self):
        return bool(self.verb)


ACTIONS = {
    action.name: action
    for action in (
        PowerAction("status", "view", label="Status"),
        PowerAction("sensors", "view", label="Sensors"),
        PowerAction("on", "power_server", "power-on", "please switch {host} on", "Power on"),
        PowerAction("off", "power_server", "power-off", "please switch {host} off", "Power off"),
        PowerAction(
            "softoff",
            "power_server",
            "power-softoff",
            "please shut {host} down (soft off)",
            "Soft off",
        ),
        PowerAction(
            "cycle", "power_server", "power-cycle", "please power-cycle {host}", "Power cycle"
        ),
        PowerAction("reset", "power_server", "power-reset", "please reset {host}", "Reset"),
        PowerAction(
            "bootdev-pxe",
            "set_boot_device",
            "set-boot-device",
            "please make {host} boot from the network (PXE) {how}",
            "Boot from network (PXE)",
        ),
        PowerAction(
            "bootdev-disk",
            "set_boot_device",
            "set-boot-device",
            "please make {host} boot from disk {how}",
            "Boot from disk",
        ),
    )
}
BOOT_DEVICES = {"bootdev-pxe": BootDevice.PXE, "bootdev-disk": BootDevice.DISK}
# The state a confirmed on/off leaves the server in; the others are read once afterwards.
EXPECTED = {"on": PowerState.ON, "off": PowerState.OFF}


class PowerActionFailed(Exception):
    """A job's power action failed; the message is the result's (safe to show)."""


def get_action(name):
    try:
        return ACTIONS[name]
    except KeyError:
        raise ValidationError(
            {"action": f"Unknown power action {name!r}; one of {', '.join(ACTIONS)}."},
            code="invalid",
        ) from None


def permission_for(action):
    """The permission code ("inventory.power_server"…) an action needs."""
    return rbac.permission_code(Server, get_action(action).permission)


def may(user, action):
    return user.has_perm(permission_for(action))


# Targets and BMC records ----------------------------------------------------------------------


def bmc_target(bmc):
    """What a driver needs, as plain data. The password is revealed here and nowhere else: from
    the BMC's own username/password, or, when neither is set, from its credential."""
    if bmc.username or bmc.password:
        username, secret = bmc.username, bmc.password
    elif bmc.credential_id:
        username, secret = bmc.credential.username, bmc.credential.secret
    else:
        username, secret = "", None
    # A BMC's own options win over the global timeout (a slow BMC can be given more).
    options = {"timeout": settings.POWER_TIMEOUT, **(bmc.options or {})}
    return BmcTarget(
        address=bmc.address,
        username=username,
        password=secret.reveal() if secret else "",
        port=bmc.port,
        options=options,
        label=bmc.server.hostname,
    )


def _check_credential(user, fields):
    credential = fields.get("credential")
    if credential is None:
        return
    visible = rbac.restrict(Credential.objects.filter(pk=credential.pk), user, "view")
    if not visible.exists():
        raise ValidationError({"credential": "No such credential."})
    if credential.kind != Credential.Kind.PASSWORD:
        raise ValidationError({"credential": "A BMC needs a username-and-password credential."})


def _bmc_fields(fields):
    fields = dict(fields)
    if "address" in fields:
        fields["address"] = (fields["address"] or "").strip()
    if "username" in fields:
        fields["username"] = fields["username"] or ""
    if "options" in fields and fields["options"] is None:
        fields["options"] = {}
    # Write-only: an empty password means "keep the stored one" (and nothing on creation).
    if fields.get("password") in ("", None):
        fields.pop("password", None)
    for name in ("power_state", "power_state_checked"):
        fields.pop(name, None)  # recorded by power actions only
    return fields


def create_bmc(*, user, server, **fields):
    fields = _bmc_fields(fields)
    _check_credential(user, fields)
    return services.create_object(Bmc, user=user, server=server, **fields)


def update_bmc(bmc, *, user, **fields):
    """Change a BMC; an empty password keeps the stored one. Pointing it at another BMC
    (driver, address, port) forgets the last known power state, which was the old one's."""
    server = fields.pop("server", None)
    if server is not None and server.pk != bmc.server_id:
        raise ValidationError({"server": "A BMC stays with its server; delete it and add another."})
    fields = _bmc_fields(fields)
    _check_credential(user, fields)
    moved = ("driver", "address", "port")
    if any(name in fields and fields[name] != getattr(bmc, name) for name in moved):
        fields.update(power_state=Bmc.PowerState.UNKNOWN, power_state_checked=None)
    return services.update_object(bmc, user=user, **fields)


def delete_bmc(bmc, *, user):
    services.delete_object(bmc, user=user)


# Concurrency ----------------------------------------------------------------------------------


def slot_connection():
    """The Redis of the power queue: the semaphores live beside the jobs they bound."""
    return jobs.queue_for("power").connection


def slot_limits(server):
    """{semaphore key: limit} for an action on `server`: the global one and its rack's (a
    limit of 0 or less switches that one off; servers without a rack have only the global)."""
    limits = {f"{SLOT_PREFIX}:global": settings.POWER_MAX_PARALLEL}
    if server.rack_id and settings.POWER_MAX_PARALLEL_PER_RACK > 0:
        limits[f"{SLOT_PREFIX}:rack:{server.rack_id}"] = settings.POWER_MAX_PARALLEL_PER_RACK
    return limits


def power_slot(server, *, wait=None):
    return power_slots.acquire(
        slot_connection(), slot_limits(server), wait=SLOT_WAIT if wait is None else wait
    )


# Retries --------------------------------------------------------------------------------------


def _retry():
    # Imported lazily, like the drivers: the power machinery loads only when power is used.
    from inventory.power import retry

    return retry


def _call(fn, *, log, host):
    """fn() retried on RetryablePowerError with backoff for up to POWER_RETRY_DEADLINE seconds;
    each retry is logged. Raises the last error (RetriesExhausted) after the deadline."""
    retry = _retry()

    def on_retry(attempt, error, delay):
        log(f"{host}: {error}; retrying in {delay:.1f} s (attempt {attempt + 1})", "warning")

    deadline = retry.deadline_in(settings.POWER_RETRY_DEADLINE)
    return retry.call_with_retry(fn, deadline=deadline, on_retry=on_retry)


def _read_state(driver):
    """One status read after an action whose end state is not certain (cycle, reset, soft off):
    recorded for what it is worth, and no failure if the BMC is busy right then."""
    try:
        return PowerState(driver.status())
    except PowerError:
        return None


# Running an action ----------------------------------------------------------------------------


def _no_log(message, level="info"):
    pass


def _scrub(text, target):
    """A driver's message with the password cut out, should a library ever echo it."""
    text = str(text)
    if target is not None and target.password and len(target.password) >= 3:
        text = text.replace(target.password, REDACTED)
    return text


def _check_allowed(user, server, spec):
    rbac.require(user, rbac.permission_code(Server, spec.permission))
    rbac.check_tenant(user, Tenant(pk=server.tenant_id))


def _how(persistent):
    return "persistently" if persistent else "for the next boot only"


def _perform(driver, spec, *, persistent, log, host):
    """The driver calls of one action; returns (state or None, extra result fields, message)."""

    def call(fn):
        return _call(fn, log=log, host=host)

    if spec.name == "status":
        state = PowerState(call(driver.status))
        return state, {}, str(state)
    if spec.name == "sensors":
        sensors = call(driver.sensors)
        rows = [
            {"name": s.name, "value": s.value, "unit": s.unit, "state": s.state} for s in sensors
        ]
        return None, {"sensors": rows}, f"{len(rows)} sensor{'s' if len(rows) != 1 else ''}"
    if spec.name in BOOT_DEVICES:
        device = BOOT_DEVICES[spec.name]
        call(lambda: driver.set_boot_device(device, once=not persistent))
        extra = {"device": str(device), "persistent": persistent}
        return None, extra, f"boot device {device}, {_how(persistent)}"
    methods = {
        "on": driver.on,
        "off": driver.off,
        "softoff": driver.soft_off,
        "cycle": driver.cycle,
        "reset": driver.reset,
    }
    call(methods[spec.name])
    if spec.name in EXPECTED:
        # Some BMCs (Redfish) apply a change seconds after they accepted it: on and off are
        # reported done when the BMC says so. Its own deadline: the call may have used its
        # whole retry budget. Not reaching the state raises RetryablePowerError.
        retry = _retry()
        expected = EXPECTED[spec.name]
        deadline = retry.deadline_in(settings.POWER_RETRY_DEADLINE)
        retry.wait_for_state(driver, expected, deadline)
        return expected, {}, str(expected)
    return _read_state(driver), {}, spec.name


def _result(server, spec, status, message, *, state=None, error=None, **extra):
    return {
        "server": server.pk,
        "hostname": server.hostname,
        "action": spec.name,
        "ok": status != FAILED,
        "status": status,
        "state": None if state is None else str(state),
        "message": message,
        "error": error,
        **extra,
    }


def _record_state(bmc, state):
    now = timezone.now()
    Bmc.objects.filter(pk=bmc.pk).update(power_state=str(state), power_state_checked=now)
    bmc.power_state, bmc.power_state_checked = str(state), now


def _audit(user, server, spec, result, *, driver="", persistent=False):
    if not spec.changes:
        return
    extra = {"result": result["status"], "driver": driver}
    if spec.name in BOOT_DEVICES:
        extra.update(device=str(BOOT_DEVICES[spec.name]), persistent=persistent)
    if result["state"]:
        extra["state"] = result["state"]
    if not result["ok"]:
        extra["error"] = result["message"]
    # In its own atomic block: the BMC call has happened, whatever the caller does next.
    with transaction.atomic():
        audit.record(user=user, action="action", verb=spec.verb, obj=server, extra=extra)


@dataclass(frozen=True)
class PowerEndpoint:
    """Where a server's power actions go: its BMC, or another source (a hypervisor for a VM).

    `session()` is a context manager that holds whatever limits apply and yields a PowerDriver;
    `record(state)` stores the last known state; `secret` is scrubbed from every message."""

    driver_name: str
    where: str
    session: object
    record: object
    secret: str = ""
    manual: bool = False


# Callables server -> PowerEndpoint | None, and ids -> set of the ids they power; asked before
# the BMC (virt registers the hypervisor of VMs here: inventory does not import virt).
_SOURCES = []


def register_source(*, endpoint, covers):
    _SOURCES.append((endpoint, covers))


def powered_ids(ids):
    """The ids among `ids` of servers the portal can power: a BMC or a registered source."""
    ids = list(ids)
    found = set(Bmc.objects.filter(server_id__in=ids).values_list("server_id", flat=True))
    for _endpoint, covers in _SOURCES:
        found |= set(covers(ids))
    return found


def _bmc_endpoint(bmc):
    target = bmc_target(bmc)
    where = f"{bmc.address}:{bmc.port}" if bmc.port else bmc.address

    class Session:
        def __enter__(self):
            self.slot = power_slot(bmc.server)
            try:
                return get_driver(bmc.driver, target)
            except BaseException:
                self.slot.release()
                raise

        def __exit__(self, *exc):
            self.slot.release()
            return False

    return PowerEndpoint(
        driver_name=bmc.driver,
        where=f"the {bmc.driver} BMC {where}".rstrip(),
        session=Session,
        record=lambda state: _record_state(bmc, state),
        secret=target.password,
        manual=bool(getattr(registered_drivers().get(bmc.driver), "manual", False)),
    )


def _endpoint(server):
    for endpoint, _covers in _SOURCES:
        found = endpoint(server)
        if found is not None:
            return found
    bmc = Bmc.objects.select_related("server", "credential").filter(server_id=server.pk).first()
    return None if bmc is None else _bmc_endpoint(bmc)


def run_power_action(*, user, server, action, persistent=False, log=None):
    """Run one power action on `server` now, in this process, and return its result:

        {"server", "hostname", "action", "ok", "status": ok|requested|failed,
         "state": on|off|unknown|None, "message", "error": None|fatal|retryable|internal,
         + "sensors" (sensors) or "device"/"persistent" (boot device)}

    Raises PermissionDenied (missing action, or another tenant's server) and ValidationError
    (unknown action); every BMC problem comes back as a failed result instead. `log(message,
    level)` receives progress lines (never a credential).
    """
    spec = get_action(action)
    _check_allowed(user, server, spec)
    persistent = bool(persistent) and spec.name in BOOT_DEVICES
    log = log or _no_log
    host = server.hostname
    secret = _Secret()

    def safe_log(message, level="info"):
        log(_scrub(message, secret), level)

    driver_name = ""
    try:
        endpoint = _endpoint(server)
        if endpoint is None:
            result = _result(server, spec, FAILED, f"{host} has no BMC configured.", error=FATAL)
            _audit(user, server, spec, result, persistent=persistent)
            log(result["message"], "error")
            return result
        secret.password, driver_name = endpoint.secret, endpoint.driver_name
        if endpoint.manual and spec.changes:
            # Nobody to talk to: the request is recorded for a person to carry out.
            wanted = spec.request.format(host=host, how=_how(persistent))
            message = f"Manual driver: {wanted}"
            log(message, "warning")
            result = _result(server, spec, REQUESTED, message, persistent=persistent)
            if spec.name in BOOT_DEVICES:
                result.update(device=str(BOOT_DEVICES[spec.name]))
            _audit(user, server, spec, result, driver=driver_name, persistent=persistent)
            return result
        log(f"{host}: {spec.name} through {endpoint.where}")
        with endpoint.session() as driver:
            state, extra, message = _perform(
                driver, spec, persistent=persistent, log=safe_log, host=host
            )
        if state is not None:
            endpoint.record(state)
        result = _result(server, spec, OK, message, state=state, **extra)
    except power_slots.SlotTimeout:
        message = (
            f"no free power slot within {SLOT_WAIT:g} s (at most {settings.POWER_MAX_PARALLEL} "
            f"BMCs at once, {settings.POWER_MAX_PARALLEL_PER_RACK} per rack)"
        )
        result = _result(server, spec, FAILED, message, error=RETRYABLE)
    except FatalPowerError as exc:
        result = _result(server, spec, FAILED, _scrub(exc, secret), error=FATAL)
    except RetryablePowerError as exc:
        result = _result(server, spec, FAILED, _scrub(exc, secret), error=RETRYABLE)
    except PowerError as exc:  # a driver raising the base class: treat as not worth retrying
        result = _result(server, spec, FAILED, _scrub(exc, secret), error=FATAL)
    except Exception as exc:
        # A driver bug must fail this node only, not a whole range; the traceback goes to the
        # server log (the exception's text is scrubbed like any message).
        logger.error(
            "power action %s on %s failed unexpectedly:\n%s",
            spec.name,
            host,
            _scrub(traceback.format_exc(), secret),
        )
        message = f"unexpected error: {type(exc).__name__}: {_scrub(exc, secret)}"
        result = _result(server, spec, FAILED, message, error=INTERNAL)
    if result["ok"]:
        log(f"{host}: {result['message']}")
    else:
        log(f"{host}: Error: {result['message']}", "error")
    _audit(user, server, spec, result, driver=driver_name, persistent=persistent)
    return result


class _Secret:
    """The password of the endpoint in use, once known (for _scrub)."""

    password = ""


# Jobs -----------------------------------------------------------------------------------------


@transaction.atomic
def enqueue_power(*, user, servers, action, persistent=False):
    """One tracked job per server on the "power" queue; returns the Job rows (queued when the
    surrounding transaction commits). All or nothing: every server must be within the user's
    scope for the action and have a BMC."""
    spec = get_action(action)
    rbac.require(user, rbac.permission_code(Server, spec.permission))
    servers = list(dict.fromkeys(servers))
    if not servers:
        raise ValidationError({"servers": "Name at least one server."})
    if len(servers) > MAX_SERVERS:
        raise ValidationError({"servers": f"At most {MAX_SERVERS} servers at once."})
    ids = [server.pk for server in servers]
    allowed = set(
        rbac.restrict(Server.objects.filter(pk__in=ids), user, spec.permission).values_list(
            "pk", flat=True
        )
    )
    outside = [server.hostname for server in servers if server.pk not in allowed]
    if outside:
        raise PermissionDenied(f"Not in your tenants: {', '.join(sorted(outside)[:10])}.")
    with_bmc = powered_ids(ids)
    without = sorted(server.hostname for server in servers if server.pk not in with_bmc)
    if without:
        more = f" and {len(without) - 10} more" if len(without) > 10 else ""
        shown = ", ".join(without[:10]) + more
        raise ValidationError({"servers": f"No BMC configured for {shown}."})
    persistent = bool(persistent) and spec.name in BOOT_DEVICES
    return [
        jobs.enqueue(
            JOB_KIND,
            user=user,
            obj=server,
            params={"server_id": server.pk, "action": spec.name, "persistent": persistent},
            title=f"{spec.label or spec.name}: {server.hostname}",
        )
        for server in servers
    ]

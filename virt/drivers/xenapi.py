"""XenServer / XCP-ng over XAPI, with the PyPI `XenAPI` client.

Sessions are expensive for the pool master (each login is a database write there), so each
pool gets one bounded set of sessions per process, keyed by URL and user: a call borrows a
session for its duration and gives it back; at most `options["max_sessions"]` (default 4)
exist at once, which also bounds the operations in flight per pool. A call that cannot get a
session within `options["wait_timeout"]` seconds fails with a retryable error. When the
master forgets a session (SESSION_INVALID: master restart, session expiry) the XenAPI client
logs in again with the same credentials and repeats the call. Sessions are logged out on
close(), close_all() and at interpreter exit. Every XML-RPC call gives up after
`options["timeout"]` seconds (the portal passes DCPORTAL_VIRT_TIMEOUT) with a retryable
TIMEOUT error, so a master that accepts connections and never answers does not hold the caller.
"""

import atexit
import http.client
import logging
import ssl
import threading
import xml.etree.ElementTree as ET
import xmlrpc.client

import XenAPI

from virt.drivers.base import (
    AuthFailed,
    BadPowerState,
    DriverError,
    HostInfo,
    HypervisorDriver,
    NetworkInfo,
    NotFound,
    NotSupported,
    PowerState,
    ShutdownMode,
    StorageFull,
    StorageInfo,
    TemplateInfo,
    Unreachable,
    VmInfo,
    VmSpec,
    parse_xml,
    register,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_SESSIONS = 4
DEFAULT_TIMEOUT = 120.0  # seconds for one XML-RPC call; VM.start may take a while
DEFAULT_WAIT_TIMEOUT = 600.0  # seconds to wait for a free session of the pool
NULL_REF = "OpaqueRef:NULL"
ORIGINATOR = "dcportal"

POWER_STATES = {
    "Running": PowerState.RUNNING,
    "Halted": PowerState.HALTED,
    "Paused": PowerState.PAUSED,
    "Suspended": PowerState.SUSPENDED,
}
# XAPI codes that mean "the pool is busy or in transition": trying later may succeed.
RETRYABLE_CODES = {
    "OTHER_OPERATION_IN_PROGRESS",
    "HOST_OFFLINE",
    "HOST_STILL_BOOTING",
    "HOST_IS_SLAVE",
    "TOO_MANY_PENDING_TASKS",
    "SESSION_INVALID",
}
ERROR_CLASSES = {
    "VM_BAD_POWER_STATE": BadPowerState,
    "HANDLE_INVALID": NotFound,
    "UUID_INVALID": NotFound,
    "SR_FULL": StorageFull,
    "SESSION_AUTHENTICATION_FAILED": AuthFailed,
    "MESSAGE_METHOD_UNKNOWN": NotSupported,
    "OPERATION_NOT_ALLOWED": NotSupported,
    # A guest that cannot be asked to shut down (no PV drivers / guest agent).
    "VM_MISSING_PV_DRIVERS": NotSupported,
    "VM_LACKS_FEATURE": NotSupported,
    "VM_LACKS_FEATURE_SHUTDOWN": NotSupported,
}


def error_from_failure(details) -> DriverError:
    """A typed error for the ErrorDescription of a XAPI failure ([code, params...])."""
    details = [str(part) for part in (details or ["INTERNAL_ERROR"])]
    code, params = details[0], details[1:]
    if code == "VM_BAD_POWER_STATE" and len(params) >= 3:
        message = f"VM {params[0]} is {params[2]}; the operation needs it {params[1]}."
    elif code in ("HANDLE_INVALID", "UUID_INVALID") and len(params) >= 2:
        message = f"No {params[0]} {params[1]} on the hypervisor."
    elif code == "SR_FULL" and len(params) >= 2:
        message = f"Storage repository full: {params[0]} bytes needed, {params[1]} free."
    elif code == "SESSION_AUTHENTICATION_FAILED":
        message = "The hypervisor refused the user name or password."
    else:
        message = f"XAPI error {code}" + (f": {', '.join(params)}" if params else "")
    cls = ERROR_CLASSES.get(code, DriverError)
    error = cls(message, code=code, details=params)
    if code in RETRYABLE_CODES:
        error.retryable = True
    return error


def _error_from_transport(exc, target, *, what="", timeout=None) -> DriverError:
    if isinstance(exc, TimeoutError) and timeout is not None:
        # A master that accepted the connection and stopped answering (hung xapi, full dom0).
        return Unreachable(
            f"{target.url} did not answer within {timeout:g} s ({what}).", code="TIMEOUT"
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return DriverError(
            f"TLS verification of {target.url} failed: {exc.verify_message}.",
            code="TLS_VERIFY_FAILED",
        )
    if isinstance(exc, xmlrpc.client.Fault):
        # The XenAPI client's own faults: repeated SESSION_INVALID, malformed replies.
        return DriverError(
            f"XAPI at {target.url} failed: {exc.faultString}", code="XMLRPC_FAULT", retryable=True
        )
    return Unreachable(f"Cannot reach {target.url}: {exc.__class__.__name__}: {exc}.")


TRANSPORT_ERRORS = (OSError, http.client.HTTPException, xmlrpc.client.Error)


class _Transport(xmlrpc.client.Transport):
    """Plain HTTP with a per-call timeout (xmlrpc.client has none)."""

    def __init__(self, timeout):
        super().__init__()
        self.timeout = timeout

    def make_connection(self, host):
        connection = super().make_connection(host)
        connection.timeout = self.timeout
        return connection


class _SafeTransport(xmlrpc.client.SafeTransport):
    """HTTPS with the target's TLS context and a per-call timeout."""

    def __init__(self, timeout, context):
        super().__init__(context=context)
        self.timeout = timeout

    def make_connection(self, host):
        connection = super().make_connection(host)
        connection.timeout = self.timeout
        return connection


def tls_context(target):
    if not target.verify_tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    bundle = target.ca_bundle or ""
    if "-----BEGIN" in bundle:  # the PEM itself, as the portal stores it
        return ssl.create_default_context(cadata=bundle)
    return ssl.create_default_context(cafile=bundle or None)


def _option(target, name, default, cast):
    try:
        return cast(target.options.get(name, default))
    except (TypeError, ValueError):
        raise DriverError(f"Option {name} of {target} is not a valid number.") from None


class SessionPool:
    """At most `size` logged-in sessions to one pool master, each used by one call at a time."""

    def __init__(self, target):
        self.target = target
        self.size = max(_option(target, "max_sessions", DEFAULT_MAX_SESSIONS, int), 1)
        self.timeout = _option(target, "timeout", DEFAULT_TIMEOUT, float)
        self.wait_timeout = _option(target, "wait_timeout", DEFAULT_WAIT_TIMEOUT, float)
        self._idle = []
        self._count = 0
        self._closed = False
        self._cond = threading.Condition()

    def _new_session(self):
        if self.target.url.startswith("https:"):
            transport = _SafeTransport(self.timeout, tls_context(self.target))
        else:
            transport = _Transport(self.timeout)
        session = XenAPI.Session(self.target.url, transport=transport)
        try:
            session.xenapi.login_with_password(
                self.target.username, self.target.password, "2.0", ORIGINATOR
            )
        except XenAPI.Failure as failure:
            raise error_from_failure(failure.details) from None
        except TRANSPORT_ERRORS as exc:
            raise _error_from_transport(
                exc, self.target, what="session.login_with_password", timeout=self.timeout
            ) from None
        return session

    def acquire(self):
        with self._cond:
            if self._closed:
                raise Unreachable(f"The session pool of {self.target} is closed.")
            if not self._idle and self._count >= self.size:
                self._cond.wait_for(
                    lambda: self._idle or self._count < self.size or self._closed,
                    timeout=self.wait_timeout,
                )
            if self._idle:
                return self._idle.pop()
            if self._closed or self._count >= self.size:
                raise Unreachable(
                    f"All {self.size} sessions to {self.target} stayed busy for "
                    f"{self.wait_timeout:g} s.",
                    code="POOL_BUSY",
                )
            self._count += 1
        try:
            return self._new_session()
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def release(self, session, *, broken=False, logout=True):
        """Give a session back; a broken one is dropped, and logged out unless `logout` is
        False (after a timeout: the master that did not answer the call would not answer the
        logout either, and the job would wait a second timeout for nothing)."""
        with self._cond:
            keep = not broken and not self._closed
            if keep:
                self._idle.append(session)
            else:
                self._count -= 1
            self._cond.notify()
        if not keep and logout:
            _logout(session)

    def close(self):
        with self._cond:
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self._closed = True
            self._cond.notify_all()
        for session in idle:
            _logout(session)

    @property
    def open_sessions(self):
        with self._cond:
            return self._count


def _logout(session):
    try:
        session.xenapi.session.logout()
    except (XenAPI.Failure, *TRANSPORT_ERRORS) as exc:
        # The master may already have forgotten the session; nothing else to release.
        log.debug("XAPI logout failed: %s", exc.__class__.__name__)


_POOLS: dict[tuple[str, str], SessionPool] = {}
_POOLS_LOCK = threading.Lock()


def session_pool(target) -> SessionPool:
    key = (target.url, target.username)
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is not None and pool.target != target:
            # New password or TLS settings: later calls must log in with them.
            pool.close()
            pool = None
        if pool is None or pool._closed:
            pool = _POOLS[key] = SessionPool(target)
        return pool


def close_all():
    """Log out every session of every pool (at exit, and for tests)."""
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.close()


atexit.register(close_all)


@register
class XenApiDriver(HypervisorDriver):
    name = "xenapi"
    description = "XenServer / XCP-ng (XAPI)"

    def _call(self, method, *args):
        pool = session_pool(self.target)
        session = pool.acquire()
        broken = timed_out = False
        try:
            function = session.xenapi
            for part in method.split("."):
                function = getattr(function, part)
            return function(*args)
        except XenAPI.Failure as failure:
            raise error_from_failure(failure.details) from None
        except TRANSPORT_ERRORS as exc:
            broken, timed_out = True, isinstance(exc, TimeoutError)
            raise _error_from_transport(
                exc, self.target, what=method, timeout=pool.timeout
            ) from None
        finally:
            pool.release(session, broken=broken, logout=not timed_out)

    def _ref(self, cls, uuid):
        return self._call(f"{cls}.get_by_uuid", uuid)

    # -- reads -----------------------------------------------------------------------------

    def hosts(self):
        hosts = self._call("host.get_all_records")
        metrics = self._call("host_metrics.get_all_records")
        result = []
        for record in hosts.values():
            memory = metrics.get(record.get("metrics", NULL_REF), {})
            result.append(
                HostInfo(
                    uuid=record["uuid"],
                    name=record["name_label"],
                    address=record.get("address", ""),
                    enabled=bool(record.get("enabled", True)),
                    cpu_count=int(record.get("cpu_info", {}).get("cpu_count", 0)),
                    memory_total_bytes=int(memory.get("memory_total", 0)),
                    memory_free_bytes=int(memory.get("memory_free", 0)),
                )
            )
        return sorted(result, key=lambda host: host.name)

    def _vm_info(self, record, vifs, hosts):
        macs = tuple(vifs[ref]["MAC"] for ref in record.get("VIFs", []) if ref in vifs)
        host = hosts.get(record.get("resident_on", NULL_REF), {})
        return VmInfo(
            uuid=record["uuid"],
            name=record["name_label"],
            power_state=POWER_STATES.get(record["power_state"], PowerState.HALTED),
            vcpus=int(record.get("VCPUs_at_startup", 0)),
            memory_bytes=int(record.get("memory_static_max", 0)),
            is_template=bool(record.get("is_a_template")),
            macs=macs,
            host_uuid=host.get("uuid", ""),
            hvm_boot_policy=record.get("HVM_boot_policy", ""),
            hvm_boot_params=dict(record.get("HVM_boot_params", {})),
            pv_bootloader=record.get("PV_bootloader", ""),
            other_config=dict(record.get("other_config", {})),
        )

    def vms(self):
        records = self._call("VM.get_all_records")
        vifs = self._call("VIF.get_all_records")
        hosts = self._call("host.get_all_records")
        return sorted(
            (
                self._vm_info(record, vifs, hosts)
                for record in records.values()
                if not record.get("is_a_template")
                and not record.get("is_control_domain")
                and not record.get("is_a_snapshot")
            ),
            key=lambda vm: (vm.name, vm.uuid),
        )

    def vm(self, vm):
        record = self._call("VM.get_record", self._ref("VM", vm))
        vifs = {ref: self._call("VIF.get_record", ref) for ref in record.get("VIFs", [])}
        host = record.get("resident_on", NULL_REF)
        hosts = {host: self._call("host.get_record", host)} if host != NULL_REF else {}
        return self._vm_info(record, vifs, hosts)

    def templates(self):
        records = self._call("VM.get_all_records")
        return sorted(
            (
                TemplateInfo(
                    uuid=record["uuid"],
                    name=record["name_label"],
                    description=record.get("name_description", ""),
                    vcpus=int(record.get("VCPUs_at_startup", 0)),
                    memory_bytes=int(record.get("memory_static_max", 0)),
                )
                for record in records.values()
                if record.get("is_a_template") and not record.get("is_a_snapshot")
            ),
            key=lambda template: template.name,
        )

    def networks(self):
        records = self._call("network.get_all_records")
        return sorted(
            (
                NetworkInfo(uuid=r["uuid"], name=r["name_label"], bridge=r.get("bridge", ""))
                for r in records.values()
            ),
            key=lambda network: network.name,
        )

    def storage(self):
        records = self._call("SR.get_all_records")
        return sorted(
            (
                StorageInfo(
                    uuid=r["uuid"],
                    name=r["name_label"],
                    type=r.get("type", ""),
                    size_bytes=int(r.get("physical_size", 0)),
                    used_bytes=int(r.get("physical_utilisation", 0)),
                    shared=bool(r.get("shared", False)),
                )
                for r in records.values()
            ),
            key=lambda sr: sr.name,
        )

    # -- create / destroy ------------------------------------------------------------------

    def create_vm(self, spec: VmSpec) -> str:
        template = self._ref("VM", spec.template)
        sr = self._ref("SR", spec.sr) if spec.sr else ""
        networks = [(self._ref("network", net), mac) for net, mac in spec.networks]
        other_config = self._call("VM.get_other_config", template)
        if "disks" in other_config or not sr:
            vm = self._call("VM.clone", template, spec.name)
        else:
            vm = self._call("VM.copy", template, spec.name, sr)
        try:
            self._configure(vm, spec, other_config, sr, networks)
        except DriverError:
            self._remove(vm)
            raise
        return self._call("VM.get_uuid", vm)

    def _configure(self, vm, spec, template_config, sr, networks):
        if "disks" in template_config:
            disks = provision_disks(
                template_config["disks"],
                sr_uuid=spec.sr,
                disk_bytes=spec.disk_bytes,
            )
            self._call("VM.remove_from_other_config", vm, "disks")
            self._call("VM.add_to_other_config", vm, "disks", disks)
            self._call("VM.provision", vm)
        elif spec.disk_bytes:
            root = self._root_vbd(vm)
            vdi = self._call("VBD.get_VDI", root)
            if int(self._call("VDI.get_virtual_size", vdi)) < spec.disk_bytes:
                self._call("VDI.resize", vdi, str(spec.disk_bytes))
        self._call("VM.set_is_a_template", vm, False)
        memory = str(spec.memory_bytes)
        self._call("VM.set_memory_limits", vm, memory, memory, memory, memory)
        vcpus = str(spec.vcpus)
        if spec.vcpus > int(self._call("VM.get_VCPUs_max", vm)):
            self._call("VM.set_VCPUs_max", vm, vcpus)
            self._call("VM.set_VCPUs_at_startup", vm, vcpus)
        else:
            self._call("VM.set_VCPUs_at_startup", vm, vcpus)
            self._call("VM.set_VCPUs_max", vm, vcpus)
        for vif in self._call("VM.get_VIFs", vm):
            self._call("VIF.destroy", vif)
        for device, (network, mac) in enumerate(networks):
            self._call(
                "VIF.create",
                {
                    "VM": vm,
                    "network": network,
                    "device": str(device),
                    "MAC": mac.lower(),
                    "MTU": self._call("network.get_MTU", network),
                    "other_config": {},
                    "qos_algorithm_type": "",
                    "qos_algorithm_params": {},
                },
            )
        extra = {key: str(value) for key, value in spec.other_config.items()}
        if spec.vnc_port is not None:
            # XAPI picks the console port itself; the wanted one is kept for the portal.
            extra["dcportal_vnc_port"] = str(spec.vnc_port)
        if extra:
            config = self._call("VM.get_other_config", vm)
            self._call("VM.set_other_config", vm, {**config, **extra})

    def _root_vbd(self, vm):
        disks = []
        for vbd in self._call("VM.get_VBDs", vm):
            record = self._call("VBD.get_record", vbd)
            if record["type"] == "Disk" and record["VDI"] != NULL_REF:
                disks.append((record["userdevice"] != "0", not record["bootable"], vbd))
        if not disks:
            raise NotFound("The VM has no disk.", code="VM_NO_DISK")
        return min(disks)[2]

    def _remove(self, vm):
        """Delete a VM with its disks (XAPI's VM.destroy leaves the VDIs behind)."""
        vdis = []
        for vbd in self._call("VM.get_VBDs", vm):
            record = self._call("VBD.get_record", vbd)
            if record["type"] == "Disk" and record["VDI"] != NULL_REF:
                vdis.append(record["VDI"])
        self._call("VM.destroy", vm)
        for vdi in vdis:
            # A VDI still used by another VM (shared disk) stays.
            if not self._call("VDI.get_VBDs", vdi):
                self._call("VDI.destroy", vdi)

    def destroy(self, vm):
        self._remove(self._ref("VM", vm))

    # -- power -----------------------------------------------------------------------------

    def start(self, vm):
        self._call("VM.start", self._ref("VM", vm), False, False)

    def shutdown(self, vm, mode=ShutdownMode.CLEAN):
        method = "VM.hard_shutdown" if ShutdownMode(mode) is ShutdownMode.HARD else None
        self._call(method or "VM.clean_shutdown", self._ref("VM", vm))

    def reboot(self, vm, mode=ShutdownMode.CLEAN):
        method = "VM.hard_reboot" if ShutdownMode(mode) is ShutdownMode.HARD else None
        self._call(method or "VM.clean_reboot", self._ref("VM", vm))

    def migrate(self, vm, host):
        self._call(
            "VM.pool_migrate", self._ref("VM", vm), self._ref("host", host), {"live": "true"}
        )

    # -- boot ------------------------------------------------------------------------------

    def set_pxe_boot(self, vm):
        ref = self._ref("VM", vm)
        self._call("VM.set_HVM_boot_policy", ref, "BIOS order")
        self._call("VM.set_HVM_boot_params", ref, {"order": "n"})

    def set_pv_boot(self, vm):
        ref = self._ref("VM", vm)
        self._call("VM.set_HVM_boot_policy", ref, "")
        self._call("VM.set_HVM_boot_params", ref, {})
        self._call("VM.set_PV_bootloader", ref, "pygrub")
        self._call("VBD.set_bootable", self._root_vbd(ref), True)

    def set_disk_boot(self, vm):
        self.set_pv_boot(vm)

    def close(self):
        with _POOLS_LOCK:
            pool = _POOLS.pop((self.target.url, self.target.username), None)
        if pool is not None:
            pool.close()


def provision_disks(xml_text, *, sr_uuid="", disk_bytes=0):
    """The template's `disks` provisioning XML with the chosen SR and a root disk of at least
    disk_bytes (the first bootable disk, else device 0)."""
    root = parse_xml(xml_text)
    disks = root.findall("disk")
    boot = next((d for d in disks if d.get("bootable") == "true"), None)
    boot = boot if boot is not None else next((d for d in disks if d.get("device") == "0"), None)
    for disk in disks:
        if sr_uuid:
            disk.set("sr", sr_uuid)
    if boot is not None and disk_bytes and int(boot.get("size", "0")) < disk_bytes:
        boot.set("size", str(disk_bytes))
    return ET.tostring(root, encoding="unicode")

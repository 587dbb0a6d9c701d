"""A XAPI server of the project's own, for driving the real `XenAPI` client in tests.

It speaks XAPI's wire protocol: XML-RPC over HTTP on 127.0.0.1 (a free port), methods named
`Class.method` taking the session reference first, answers wrapped in
`{"Status": "Success", "Value": ...}` or `{"Status": "Failure", "ErrorDescription": [code, ...]}`,
references `OpaqueRef:<uuid>`, XAPI ints sent as strings (XML-RPC ints are 32-bit), enums as
XAPI spells them ("Halted", "Running").

Modelled (as the XenAPI reference documents them):
- session: login_with_password (SESSION_AUTHENTICATION_FAILED [user, reason]), logout,
  get_this_host; any call with an unknown, logged-out or expired session answers
  SESSION_INVALID [session] (tests expire sessions with `expire_sessions()`).
- Classes pool, host, host_metrics, VM (templates and the control domain too), VIF, VBD, VDI,
  SR, network: get_all, get_all_records, get_record, get_by_uuid (UUID_INVALID [class, uuid]),
  get_by_name_label, get_<field> for every field, set_<field> for the fields XAPI lets a client
  write, add_to_/remove_from_ for map fields; unknown references: HANDLE_INVALID [class, ref].
- VM power states: start only from Halted, clean_shutdown/clean_reboot/suspend/pause only from
  Running, hard_shutdown from Running/Paused/Suspended, hard_reboot from Running/Paused,
  unpause from Paused, resume from Suspended, destroy/clone/copy/provision/set_VCPUs_max only
  from Halted; otherwise VM_BAD_POWER_STATE [vm, expected, actual] (states lower case).
  Starting a template: VM_IS_TEMPLATE [vm]. resident_on follows the power state. A clean
  shutdown of a guest listed in `without_pv_drivers`: VM_LACKS_FEATURE [vm].
- VM.clone (same SR, VDIs cloned), VM.copy (VDIs copied into the given SR), VM.provision (the
  `disks` XML in other_config, as XenServer's templates carry it: one VDI + VBD per <disk>,
  in its sr attribute or the pool's default SR), VM.destroy (VBDs and VIFs go, VDIs stay, as
  in XAPI), VM.pool_migrate (VM Running, host must exist), VM.set_memory_limits
  (MEMORY_CONSTRAINT_VIOLATION unless static_min <= dynamic_min <= dynamic_max <= static_max),
  VM.set_VCPUs_at_startup (VALUE_NOT_SUPPORTED above VCPUs_max), VM.set_HVM_boot_policy,
  set_HVM_boot_params, set_PV_bootloader, set_is_a_template, set_other_config.
- VIF.create (MAC_INVALID, DEVICE_ALREADY_EXISTS), VIF.destroy; VBD.create, VBD.set_bootable,
  VBD.destroy; VDI.create, VDI.resize (SR_FULL [requested, maximum] when the SR's free space
  does not cover the growth), VDI.destroy (VDI_IN_USE while a VBD holds it). Every VDI
  allocation updates the SR's physical_utilisation.
- Wrong argument count: MESSAGE_PARAMETER_COUNT_MISMATCH [method, expected, received];
  unknown method: MESSAGE_METHOD_UNKNOWN [method]; an int field given as anything but a string
  of digits: FIELD_TYPE_ERROR [field].
- Counters for benchmarks and bounds: sessions alive now / at most, calls in progress now / at
  most (session calls excluded), logins, logouts, calls per method; an optional delay per call
  (`delay`, or `delays` per method name) during which the call counts as in progress.
- A master that hangs: `hang=True` (every call, log-in included) or `hangs` (a set of method
  names) reads the request and never answers, until `release_hangs()` or `stop()`; a released
  call answers a failure (HUNG) and changes nothing. `hung` counts the calls that hung.

Not modelled: Async.* and tasks, events (event.from), RBAC roles, host memory checks on start,
VM start_on/affinity, live storage migration, snapshots, consoles (VNC ports), PIFs/bonds/VLANs,
PBDs and SR plug/scan, CD drives and ISO SRs, allowed_operations/current_operations and
OTHER_OPERATION_IN_PROGRESS, pool_migrate to the VM's own host, guest agent metrics, the
HTTP handlers (import/export), API_version negotiation beyond get_API_version_major/minor.
TLS: `tls=(certificate, key)` serves HTTPS (the handshake only; no client certificates).
"""

import re
import ssl
import threading
import time
import uuid as uuidlib
import xml.etree.ElementTree as ET
from collections import Counter
from socketserver import ThreadingMixIn
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

GIB = 1024**3
MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$", re.IGNORECASE)
NULL_REF = "OpaqueRef:NULL"

# Writable fields per class (set_<field>); every field is readable.
SETTABLE = {
    "pool": {"name_label", "name_description", "default_SR", "other_config"},
    "host": {"name_label", "name_description", "other_config"},
    "host_metrics": set(),
    "VM": {
        "name_label",
        "name_description",
        "other_config",
        "HVM_boot_policy",
        "HVM_boot_params",
        "PV_bootloader",
        "PV_args",
        "is_a_template",
        "platform",
    },
    "VIF": {"other_config"},
    "VBD": {"bootable", "other_config", "userdevice"},
    "VDI": {"name_label", "name_description", "other_config"},
    "SR": {"name_label", "name_description", "other_config"},
    "network": {"name_label", "name_description", "other_config"},
}
INT_FIELDS = {
    "VCPUs_max",
    "VCPUs_at_startup",
    "memory_static_min",
    "memory_static_max",
    "memory_dynamic_min",
    "memory_dynamic_max",
    "virtual_size",
    "physical_size",
    "physical_utilisation",
    "virtual_allocation",
    "MTU",
}
# Method -> (allowed power states, the "expected" word XAPI reports).
POWER_RULES = {
    "start": ({"Halted"}, "halted"),
    "clean_shutdown": ({"Running"}, "running"),
    "hard_shutdown": ({"Running", "Paused", "Suspended"}, "running"),
    "clean_reboot": ({"Running"}, "running"),
    "hard_reboot": ({"Running", "Paused"}, "running"),
    "pause": ({"Running"}, "running"),
    "unpause": ({"Paused"}, "paused"),
    "suspend": ({"Running"}, "running"),
    "resume": ({"Suspended"}, "suspended"),
    "destroy": ({"Halted"}, "halted"),
    "clone": ({"Halted"}, "halted"),
    "copy": ({"Halted"}, "halted"),
    "provision": ({"Halted"}, "halted"),
    "set_VCPUs_max": ({"Halted"}, "halted"),
    "pool_migrate": ({"Running"}, "running"),
}


class XapiError(Exception):
    def __init__(self, *description):
        super().__init__(*description)
        self.description = [str(part) for part in description]


def _new_uuid():
    return str(uuidlib.uuid4())


def _new_ref():
    return f"OpaqueRef:{_new_uuid()}"


def _int(field, value):
    if not isinstance(value, str) or not re.fullmatch(r"-?\d+", value):
        raise XapiError("FIELD_TYPE_ERROR", field)
    return int(value)


class _Server(ThreadingMixIn, SimpleXMLRPCServer):
    daemon_threads = True
    allow_reuse_address = True


class _Quiet(SimpleXMLRPCRequestHandler):
    rpc_paths = ("/", "/RPC2")

    def log_message(self, *args):
        pass


class XapiServer:
    """The server and its state. `start()` returns the URL; `stop()` shuts it down."""

    def __init__(
        self,
        *,
        username="root",
        password="xapi-secret",
        delay=0.0,
        delays=None,
        tls=None,
        hang=False,
        hangs=(),
    ):
        self.tls = tls  # (certificate, key) paths: serve HTTPS, as a real pool master does
        # UUIDs of guests without PV drivers: a clean shutdown is refused (VM_LACKS_FEATURE).
        self.without_pv_drivers = set()
        self.username = username
        self.password = password
        self.delay = delay
        self.delays = dict(delays or {})
        self.hang = hang
        self.hangs = set(hangs)
        self.hung = 0
        self._released = threading.Event()
        self.lock = threading.RLock()
        self.objects = {cls: {} for cls in SETTABLE}
        self.objects["session"] = {}
        self.calls = Counter()
        self.logins = 0
        self.logouts = 0
        self.max_sessions = 0
        self.active_calls = 0
        self.max_active_calls = 0
        self._server = None
        self._thread = None
        self.url = ""
        self._seed()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self):
        self._server = _Server(
            ("127.0.0.1", 0), requestHandler=_Quiet, logRequests=False, allow_none=True
        )
        self._server.register_instance(self)
        scheme = "http"
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"{scheme}://127.0.0.1:{self._server.server_address[1]}/"
        return self.url

    def stop(self):
        self.release_hangs()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)
            self._server = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- test helpers ----------------------------------------------------------------------

    def release_hangs(self):
        """Let every hanging call end (answering HUNG) and stop hanging from now on."""
        with self.lock:
            self.hang, self.hangs = False, set()
            released, self._released = self._released, threading.Event()
        released.set()

    def _hang_if_asked(self, method):
        with self.lock:
            if not (self.hang or method in self.hangs):
                return
            self.hung += 1
            released = self._released
        # Outside the lock: the other calls (and the test) go on while this one hangs.
        released.wait()
        raise XapiError("HUNG", method)

    @property
    def live_sessions(self):
        with self.lock:
            return len(self.objects["session"])

    def expire_sessions(self):
        """As if the pool master restarted: every session becomes invalid."""
        with self.lock:
            self.objects["session"].clear()

    def ref(self, cls, uuid):
        with self.lock:
            for ref, record in self.objects[cls].items():
                if record["uuid"] == uuid:
                    return ref
        raise KeyError(uuid)

    def record(self, cls, ref_or_uuid):
        with self.lock:
            table = self.objects[cls]
            ref = ref_or_uuid if ref_or_uuid in table else self.ref(cls, ref_or_uuid)
            return dict(table[ref])

    def add(self, cls, **fields):
        with self.lock:
            ref = _new_ref()
            fields.setdefault("uuid", _new_uuid())
            fields.setdefault("other_config", {})
            self.objects[cls][ref] = fields
            return ref

    def add_sr(self, name, size_bytes, *, used_bytes=0, sr_type="lvm"):
        return self.add(
            "SR",
            name_label=name,
            name_description="",
            type=sr_type,
            physical_size=str(size_bytes),
            physical_utilisation=str(used_bytes),
            virtual_allocation=str(used_bytes),
            shared=False,
            content_type="user",
            VDIs=[],
        )

    def add_host(self, name, address):
        metrics = self.add(
            "host_metrics", memory_total=str(64 * GIB), memory_free=str(60 * GIB), live=True
        )
        host = self.add(
            "host",
            name_label=name,
            name_description="",
            hostname=name,
            address=address,
            enabled=True,
            metrics=metrics,
            cpu_info={"cpu_count": "8", "vendor": "GenuineIntel"},
            resident_VMs=[],
            API_version_major="2",
            API_version_minor="21",
        )
        self._add_vm(
            name_label=f"Control domain on host: {name}",
            is_control_domain=True,
            power_state="Running",
            resident_on=host,
        )
        return host

    def add_template(self, name, *, disk_bytes=8 * GIB, vcpus=1, memory_bytes=GIB):
        disks = ET.Element("provision")
        ET.SubElement(
            disks, "disk", device="0", size=str(disk_bytes), sr="", bootable="true", type="system"
        )
        return self._add_vm(
            name_label=name,
            is_a_template=True,
            VCPUs_max=str(vcpus),
            VCPUs_at_startup=str(vcpus),
            memory_static_max=str(memory_bytes),
            memory_dynamic_max=str(memory_bytes),
            memory_dynamic_min=str(memory_bytes),
            memory_static_min=str(memory_bytes // 2),
            PV_bootloader="pygrub",
            other_config={"disks": ET.tostring(disks, encoding="unicode")},
        )

    def _add_vm(self, **fields):
        record = {
            "name_label": "",
            "name_description": "",
            "power_state": "Halted",
            "is_a_template": False,
            "is_a_snapshot": False,
            "is_control_domain": False,
            "resident_on": NULL_REF,
            "VCPUs_max": "1",
            "VCPUs_at_startup": "1",
            "memory_static_min": str(GIB // 2),
            "memory_static_max": str(GIB),
            "memory_dynamic_min": str(GIB),
            "memory_dynamic_max": str(GIB),
            "HVM_boot_policy": "",
            "HVM_boot_params": {},
            "PV_bootloader": "",
            "PV_args": "",
            "platform": {},
            "VIFs": [],
            "VBDs": [],
            "other_config": {},
        }
        record.update(fields)
        ref = self.add("VM", **record)
        if record["resident_on"] != NULL_REF:
            self.objects["host"][record["resident_on"]]["resident_VMs"].append(ref)
        return ref

    def _seed(self):
        self.master = self.add_host("xen1", "192.0.2.11")
        self.host2 = self.add_host("xen2", "192.0.2.12")
        self.default_sr = self.add_sr("Local storage", 100 * GIB)
        self.small_sr = self.add_sr("Small storage", 4 * GIB)
        self.network = self.add(
            "network", name_label="Pool-wide network associated with eth0", bridge="xenbr0",
            MTU="1500", VIFs=[], name_description="",
        )  # fmt: skip
        self.network2 = self.add(
            "network", name_label="Storage network", bridge="xenbr1",
            MTU="9000", VIFs=[], name_description="",
        )  # fmt: skip
        self.pool = self.add(
            "pool", name_label="pool0", name_description="", master=self.master,
            default_SR=self.default_sr,
        )  # fmt: skip
        self.template = self.add_template("Debian Bookworm 12")

    # -- dispatch --------------------------------------------------------------------------

    def _dispatch(self, method, params):
        try:
            self._hang_if_asked(method)
            if method.startswith("session."):
                with self.lock:
                    return {"Status": "Success", "Value": self._session_call(method, params)}
            with self.lock:
                if not params or params[0] not in self.objects["session"]:
                    raise XapiError("SESSION_INVALID", params[0] if params else "")
            with self.lock:
                self.calls[method] += 1
                self.active_calls += 1
                self.max_active_calls = max(self.max_active_calls, self.active_calls)
            try:
                pause = self.delays.get(method, self.delay)
                if pause:
                    time.sleep(pause)
                with self.lock:
                    value = self._call(method, list(params[1:]))
            finally:
                with self.lock:
                    self.active_calls -= 1
            return {"Status": "Success", "Value": "" if value is None else value}
        except XapiError as error:
            return {"Status": "Failure", "ErrorDescription": error.description}

    def _session_call(self, method, params):
        self.calls[method] += 1
        name = method.split(".", 1)[1]
        if name == "login_with_password":
            if len(params) < 2:
                raise XapiError("MESSAGE_PARAMETER_COUNT_MISMATCH", method, 2, len(params))
            if params[0] != self.username or params[1] != self.password:
                raise XapiError(
                    "SESSION_AUTHENTICATION_FAILED", params[0], "Authentication failure"
                )
            ref = _new_ref()
            self.objects["session"][ref] = {
                "uuid": _new_uuid(), "this_host": self.master, "this_user": NULL_REF,
                "auth_user_name": params[0], "other_config": {},
            }  # fmt: skip
            self.logins += 1
            self.max_sessions = max(self.max_sessions, len(self.objects["session"]))
            return ref
        if not params or params[0] not in self.objects["session"]:
            raise XapiError("SESSION_INVALID", params[0] if params else "")
        if name == "logout":
            del self.objects["session"][params[0]]
            self.logouts += 1
            return ""
        if name == "get_this_host":
            return self.objects["session"][params[0]]["this_host"]
        raise XapiError("MESSAGE_METHOD_UNKNOWN", method)

    def _call(self, method, args):
        cls, _, name = method.partition(".")
        if cls not in SETTABLE or not name:
            raise XapiError("MESSAGE_METHOD_UNKNOWN", method)
        special = getattr(self, f"_{cls}_{name}", None)
        if special is not None:
            expected = special.__code__.co_argcount - 1
            if len(args) != expected:
                raise XapiError("MESSAGE_PARAMETER_COUNT_MISMATCH", method, expected, len(args))
            return special(*args)
        return self._generic(cls, name, method, args)

    def _generic(self, cls, name, method, args):
        table = self.objects[cls]
        arity = {"get_all": 0, "get_all_records": 0}.get(name, 2 if name[:4] == "set_" else 1)
        if name.startswith(("add_to_", "remove_from_")):
            arity = 3 if name.startswith("add_to_") else 2
        if len(args) != arity:
            raise XapiError("MESSAGE_PARAMETER_COUNT_MISMATCH", method, arity, len(args))
        if name == "get_all":
            return list(table)
        if name == "get_all_records":
            return {ref: dict(record) for ref, record in table.items()}
        if name == "get_by_uuid":
            for ref, record in table.items():
                if record["uuid"] == args[0]:
                    return ref
            raise XapiError("UUID_INVALID", cls, args[0])
        if name == "get_by_name_label":
            return [ref for ref, record in table.items() if record.get("name_label") == args[0]]
        record = self._get(cls, args[0])
        if name == "get_record":
            return dict(record)
        if name.startswith("get_") and name[4:] in record:
            return record[name[4:]]
        if name.startswith("set_") and name[4:] in SETTABLE[cls]:
            field = name[4:]
            record[field] = self._typed(field, record[field], args[1])
            return ""
        for prefix in ("add_to_", "remove_from_"):
            field = name[len(prefix) :]
            if name.startswith(prefix) and field in SETTABLE[cls]:
                if not isinstance(record[field], dict):
                    raise XapiError("FIELD_TYPE_ERROR", field)
                if prefix == "add_to_":
                    if args[1] in record[field]:
                        raise XapiError("MAP_DUPLICATE_KEY", cls, field, args[0], args[1])
                    record[field][args[1]] = str(args[2])
                else:
                    record[field].pop(args[1], None)
                return ""
        raise XapiError("MESSAGE_METHOD_UNKNOWN", method)

    @staticmethod
    def _typed(field, old, new):
        if field in INT_FIELDS:
            _int(field, new)
        elif isinstance(old, bool) and not isinstance(new, bool):
            raise XapiError("FIELD_TYPE_ERROR", field)
        elif isinstance(old, dict):
            if not isinstance(new, dict):
                raise XapiError("FIELD_TYPE_ERROR", field)
            return {str(k): str(v) for k, v in new.items()}
        elif isinstance(old, str) and not isinstance(new, str):
            raise XapiError("FIELD_TYPE_ERROR", field)
        return new

    def _get(self, cls, ref):
        try:
            return self.objects[cls][ref]
        except (KeyError, TypeError):
            raise XapiError("HANDLE_INVALID", cls, ref) from None

    def _vm_in(self, vm, operation):
        record = self._get("VM", vm)
        allowed, expected = POWER_RULES[operation]
        if record["power_state"] not in allowed:
            raise XapiError("VM_BAD_POWER_STATE", vm, expected, record["power_state"].lower())
        return record

    # -- VM --------------------------------------------------------------------------------

    def _set_power(self, vm, record, state, host=NULL_REF):
        old = record["resident_on"]
        if old != NULL_REF:
            self.objects["host"][old]["resident_VMs"].remove(vm)
        record["power_state"] = state
        record["resident_on"] = host
        if host != NULL_REF:
            self.objects["host"][host]["resident_VMs"].append(vm)
        for vbd in record["VBDs"]:
            self.objects["VBD"][vbd]["currently_attached"] = state == "Running"
        for vif in record["VIFs"]:
            self.objects["VIF"][vif]["currently_attached"] = state == "Running"

    def _VM_start(self, vm, start_paused, force):
        record = self._get("VM", vm)
        if record["is_a_template"]:
            raise XapiError("VM_IS_TEMPLATE", vm)
        self._vm_in(vm, "start")
        master = self.objects["pool"][self.pool]["master"]
        self._set_power(vm, record, "Paused" if start_paused else "Running", master)
        return ""

    def _VM_clean_shutdown(self, vm):
        record = self._vm_in(vm, "clean_shutdown")
        if record["uuid"] in self.without_pv_drivers:
            raise XapiError("VM_LACKS_FEATURE", vm)
        self._set_power(vm, record, "Halted")
        return ""

    def _VM_hard_shutdown(self, vm):
        self._set_power(vm, self._vm_in(vm, "hard_shutdown"), "Halted")
        return ""

    def _VM_clean_reboot(self, vm):
        self._vm_in(vm, "clean_reboot")
        return ""

    def _VM_hard_reboot(self, vm):
        record = self._vm_in(vm, "hard_reboot")
        self._set_power(vm, record, "Running", record["resident_on"])
        return ""

    def _VM_pause(self, vm):
        record = self._vm_in(vm, "pause")
        self._set_power(vm, record, "Paused", record["resident_on"])
        return ""

    def _VM_unpause(self, vm):
        record = self._vm_in(vm, "unpause")
        self._set_power(vm, record, "Running", record["resident_on"])
        return ""

    def _VM_suspend(self, vm):
        self._set_power(vm, self._vm_in(vm, "suspend"), "Suspended")
        return ""

    def _VM_resume(self, vm, start_paused, force):
        self._vm_in(vm, "resume")
        master = self.objects["pool"][self.pool]["master"]
        self._set_power(vm, self._get("VM", vm), "Paused" if start_paused else "Running", master)
        return ""

    def _VM_pool_migrate(self, vm, host, options):
        self._get("host", host)
        self._set_power(vm, self._vm_in(vm, "pool_migrate"), "Running", host)
        return ""

    def _VM_destroy(self, vm):
        record = self._vm_in(vm, "destroy")
        for vbd in list(record["VBDs"]):
            self._VBD_destroy(vbd)
        for vif in list(record["VIFs"]):
            self._VIF_destroy(vif)
        del self.objects["VM"][vm]
        return ""

    def _VM_clone(self, vm, new_name):
        return self._duplicate(vm, new_name, sr=None, operation="clone")

    def _VM_copy(self, vm, new_name, sr):
        if sr != "" and sr != NULL_REF:
            self._get("SR", sr)
        return self._duplicate(vm, new_name, sr=sr or None, operation="copy")

    def _duplicate(self, vm, new_name, *, sr, operation):
        source = self._vm_in(vm, operation)
        fields = {
            key: (dict(value) if isinstance(value, dict) else value)
            for key, value in source.items()
            if key not in {"uuid", "VIFs", "VBDs", "resident_on", "power_state"}
        }
        fields["name_label"] = new_name
        # Sized up front so that a copy that does not fit leaves nothing behind.
        disks = [self.objects["VBD"][vbd] for vbd in source["VBDs"]]
        needed = Counter()
        for vbd in disks:
            if vbd["VDI"] != NULL_REF:
                vdi = self.objects["VDI"][vbd["VDI"]]
                needed[sr or vdi["SR"]] += int(vdi["virtual_size"])
        for target_sr, size in needed.items():
            self._reserve(target_sr, size, commit=False)
        new = self._add_vm(**fields)
        for vbd in disks:
            vdi = NULL_REF
            if vbd["VDI"] != NULL_REF:
                old = self.objects["VDI"][vbd["VDI"]]
                vdi = self._new_vdi(sr or old["SR"], old["virtual_size"], old["name_label"])
            self._attach(new, vdi, vbd["userdevice"], vbd["bootable"], vbd["type"])
        for vif in source["VIFs"]:
            old = self.objects["VIF"][vif]
            self._VIF_create({**old, "VM": new, "MAC": old["MAC"]})
        return new

    def _VM_provision(self, vm):
        record = self._vm_in(vm, "provision")
        xml = record["other_config"].get("disks")
        if not xml:
            return ""
        try:
            disks = ET.fromstring(xml).findall("disk")
        except ET.ParseError:
            raise XapiError("INTERNAL_ERROR", "other_config:disks is not valid XML") from None
        default_sr = self.objects["pool"][self.pool]["default_SR"]
        planned = Counter()
        for disk in disks:
            sr_uuid = disk.get("sr", "")
            sr = self.ref("SR", sr_uuid) if sr_uuid else default_sr
            planned[sr] += _int("size", disk.get("size", "0"))
        for sr, size in planned.items():
            self._reserve(sr, size, commit=False)
        for disk in disks:
            sr_uuid = disk.get("sr", "")
            sr = self.ref("SR", sr_uuid) if sr_uuid else default_sr
            vdi = self._new_vdi(sr, disk.get("size", "0"), f"{record['name_label']} disk")
            bootable = disk.get("bootable", "false") == "true"
            self._attach(vm, vdi, disk.get("device", "0"), bootable, "Disk")
        del record["other_config"]["disks"]
        return ""

    def _VM_set_memory_limits(self, vm, static_min, static_max, dynamic_min, dynamic_max):
        record = self._get("VM", vm)
        values = [
            _int("static_min", static_min),
            _int("dynamic_min", dynamic_min),
            _int("dynamic_max", dynamic_max),
            _int("static_max", static_max),
        ]
        if values != sorted(values) or values[0] <= 0:
            raise XapiError(
                "MEMORY_CONSTRAINT_VIOLATION",
                "Memory limits must satisfy: static_min <= dynamic_min <= dynamic_max <= "
                "static_max",
            )
        for field, value in zip(
            ("memory_static_min", "memory_dynamic_min", "memory_dynamic_max", "memory_static_max"),
            values,
            strict=True,
        ):
            record[field] = str(value)
        return ""

    def _VM_set_VCPUs_max(self, vm, value):
        record = self._vm_in(vm, "set_VCPUs_max")
        count = _int("VCPUs_max", value)
        if count < 1 or count < int(record["VCPUs_at_startup"]):
            raise XapiError(
                "VALUE_NOT_SUPPORTED", "VCPUs_max", value, "must be >= VCPUs_at_startup and > 0"
            )
        record["VCPUs_max"] = str(count)
        return ""

    def _VM_set_VCPUs_at_startup(self, vm, value):
        record = self._get("VM", vm)
        count = _int("VCPUs_at_startup", value)
        if count < 1 or count > int(record["VCPUs_max"]):
            raise XapiError(
                "VALUE_NOT_SUPPORTED",
                "VCPUs_at_startup",
                value,
                "must be > 0 and <= VCPUs_max",
            )
        record["VCPUs_at_startup"] = str(count)
        return ""

    # -- VIF -------------------------------------------------------------------------------

    def _VIF_create(self, args):
        vm = self._get("VM", args.get("VM"))
        network = self._get("network", args.get("network"))
        mac = args.get("MAC", "")
        if mac and not MAC.match(mac):
            raise XapiError("MAC_INVALID", mac)
        device = str(args.get("device", ""))
        for vif in vm["VIFs"]:
            if self.objects["VIF"][vif]["device"] == device:
                raise XapiError("DEVICE_ALREADY_EXISTS", device)
        if not mac:
            mac = "c6:" + ":".join(f"{b:02x}" for b in uuidlib.uuid4().bytes[:5])
        ref = self.add(
            "VIF",
            VM=args["VM"],
            network=args["network"],
            device=device,
            MAC=mac.lower(),
            MAC_autogenerated=not args.get("MAC"),
            MTU=str(args.get("MTU", network["MTU"])),
            currently_attached=False,
            qos_algorithm_type=args.get("qos_algorithm_type", ""),
            qos_algorithm_params=dict(args.get("qos_algorithm_params", {})),
            other_config=dict(args.get("other_config", {})),
        )
        vm["VIFs"].append(ref)
        network["VIFs"].append(ref)
        return ref

    def _VIF_destroy(self, vif):
        record = self._get("VIF", vif)
        self.objects["VM"][record["VM"]]["VIFs"].remove(vif)
        self.objects["network"][record["network"]]["VIFs"].remove(vif)
        del self.objects["VIF"][vif]
        return ""

    # -- VBD / VDI / SR --------------------------------------------------------------------

    def _attach(self, vm, vdi, userdevice, bootable, vbd_type):
        ref = self.add(
            "VBD",
            VM=vm,
            VDI=vdi,
            userdevice=str(userdevice),
            device="",
            bootable=bool(bootable),
            mode="RW" if vbd_type == "Disk" else "RO",
            type=vbd_type,
            empty=vdi == NULL_REF,
            currently_attached=False,
        )
        self.objects["VM"][vm]["VBDs"].append(ref)
        if vdi != NULL_REF:
            self.objects["VDI"][vdi]["VBDs"].append(ref)
        return ref

    def _VBD_create(self, args):
        self._get("VM", args.get("VM"))
        vdi = args.get("VDI", NULL_REF)
        if vdi != NULL_REF:
            self._get("VDI", vdi)
        return self._attach(
            args["VM"], vdi, args.get("userdevice", "0"), args.get("bootable", False),
            args.get("type", "Disk"),
        )  # fmt: skip

    def _VBD_destroy(self, vbd):
        record = self._get("VBD", vbd)
        self.objects["VM"][record["VM"]]["VBDs"].remove(vbd)
        if record["VDI"] != NULL_REF:
            self.objects["VDI"][record["VDI"]]["VBDs"].remove(vbd)
        del self.objects["VBD"][vbd]
        return ""

    def _reserve(self, sr, size, *, commit=True):
        record = self._get("SR", sr)
        free = int(record["physical_size"]) - int(record["physical_utilisation"])
        if size > free:
            raise XapiError("SR_FULL", size, free)
        if commit:
            record["physical_utilisation"] = str(int(record["physical_utilisation"]) + size)
            record["virtual_allocation"] = str(int(record["virtual_allocation"]) + size)

    def _new_vdi(self, sr, size, name):
        size = _int("virtual_size", str(size))
        self._reserve(sr, size)
        ref = self.add(
            "VDI",
            name_label=name,
            name_description="",
            SR=sr,
            virtual_size=str(size),
            physical_utilisation=str(size),
            type="system",
            sharable=False,
            read_only=False,
            VBDs=[],
        )
        self.objects["SR"][sr]["VDIs"].append(ref)
        return ref

    def _VDI_create(self, args):
        self._get("SR", args.get("SR"))
        return self._new_vdi(args["SR"], args.get("virtual_size", "0"), args.get("name_label", ""))

    def _VDI_resize(self, vdi, size):
        record = self._get("VDI", vdi)
        new = _int("size", size)
        growth = new - int(record["virtual_size"])
        if growth > 0:
            self._reserve(record["SR"], growth)
        record["virtual_size"] = record["physical_utilisation"] = str(new)
        return ""

    def _VDI_destroy(self, vdi):
        record = self._get("VDI", vdi)
        if record["VBDs"]:
            raise XapiError("VDI_IN_USE", vdi, "destroy")
        sr = self.objects["SR"][record["SR"]]
        size = int(record["virtual_size"])
        sr["physical_utilisation"] = str(int(sr["physical_utilisation"]) - size)
        sr["virtual_allocation"] = str(int(sr["virtual_allocation"]) - size)
        sr["VDIs"].remove(vdi)
        del self.objects["VDI"][vdi]
        return ""

"""KVM / QEMU / Xen through libvirt (PyPI `libvirt-python`, an optional install).

The portal installs and runs without libvirt-python; this driver is still registered and
answers NotSupported ("libvirt-python is not installed") once used. The target URL is a
libvirt URI (qemu+ssh://host/system, xen:///system, test:///default).

A template is a defined, shut-off domain carrying `<metadata><dcportal:template/></metadata>`
(namespace TEMPLATE_NS). A VM made from it gets the template's XML minus its identity, disks,
interfaces and consoles, then its own: memory, VCPUs, one new volume in the chosen storage pool
(spec.sr, else options["storage_pool"], else "default") when disk_bytes is given, one virtio
interface per (network, MAC) and a VNC console. All XML is built with ElementTree.
"""

import contextlib
import threading
import xml.etree.ElementTree as ET

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

try:
    import libvirt
except ImportError:  # optional: see requirements-libvirt.txt
    libvirt = None
else:
    # libvirt prints every error to stderr by default; errors reach callers as exceptions.
    libvirt.registerErrorHandler(lambda _context, _error: None, None)

TEMPLATE_NS = "urn:dcportal:virt:1"
KIB = 1024

ERROR_CLASSES = {
    "VIR_ERR_NO_DOMAIN": NotFound,
    "VIR_ERR_NO_NETWORK": NotFound,
    "VIR_ERR_NO_STORAGE_POOL": NotFound,
    "VIR_ERR_NO_STORAGE_VOL": NotFound,
    "VIR_ERR_OPERATION_INVALID": BadPowerState,
    "VIR_ERR_AUTH_FAILED": AuthFailed,
    "VIR_ERR_AUTH_CANCELLED": AuthFailed,
    "VIR_ERR_NO_CONNECT": Unreachable,
    "VIR_ERR_SYSTEM_ERROR": Unreachable,
    "VIR_ERR_RPC": Unreachable,
    "VIR_ERR_OPERATION_TIMEOUT": Unreachable,
    "VIR_ERR_NO_SUPPORT": NotSupported,
    "VIR_ERR_OPERATION_UNSUPPORTED": NotSupported,
    "VIR_ERR_ARGUMENT_UNSUPPORTED": NotSupported,
}

# virDomainState numbers (stable libvirt ABI) -> normalised state.
DOMAIN_STATES = {
    0: PowerState.HALTED,  # NOSTATE
    1: PowerState.RUNNING,
    2: PowerState.RUNNING,  # BLOCKED on I/O
    3: PowerState.PAUSED,
    4: PowerState.RUNNING,  # SHUTDOWN: still going down
    5: PowerState.HALTED,  # SHUTOFF
    6: PowerState.HALTED,  # CRASHED
    7: PowerState.SUSPENDED,  # PMSUSPENDED
}


def error_for(code_name, message) -> DriverError:
    """A typed error for a libvirt error code name (VIR_ERR_*) and its message."""
    cls = ERROR_CLASSES.get(code_name, DriverError)
    code = code_name.removeprefix("VIR_ERR_") if code_name else "LIBVIRT_ERROR"
    return cls(message, code=code)


def _code_name(number):
    for name in dir(libvirt):
        if name.startswith("VIR_ERR_") and getattr(libvirt, name) == number:
            return name
    return ""


def _translate(exc):
    return error_for(_code_name(exc.get_error_code()), str(exc.get_error_message() or exc))


def domain_xml(template_xml, spec: VmSpec, *, networks, disk_path=""):
    """The new domain's XML: the template's, minus identity, disks, NICs and consoles, plus
    the spec's. `networks` holds (libvirt network name, MAC) pairs."""
    root = parse_xml(template_xml)
    root.attrib.pop("id", None)
    for tag in ("uuid", "name", "memory", "currentMemory", "vcpu"):
        for element in root.findall(tag):
            root.remove(element)
    metadata = root.find("metadata")
    if metadata is not None:
        for element in metadata.findall(f"{{{TEMPLATE_NS}}}template"):
            metadata.remove(element)
        if not len(metadata):
            root.remove(metadata)
    name = ET.Element("name")
    name.text = spec.name
    memory = ET.Element("memory", unit="KiB")
    memory.text = str(spec.memory_bytes // KIB)
    current = ET.Element("currentMemory", unit="KiB")
    current.text = memory.text
    vcpu = ET.Element("vcpu", placement="static")
    vcpu.text = str(spec.vcpus)
    for position, element in enumerate((name, memory, current, vcpu)):
        root.insert(position, element)
    devices = root.find("devices")
    if devices is None:
        devices = ET.SubElement(root, "devices")
    for element in list(devices):
        if element.tag in ("interface", "graphics") or (
            element.tag == "disk" and element.get("device", "disk") == "disk"
        ):
            devices.remove(element)
    if disk_path:
        disk = ET.SubElement(devices, "disk", type="file", device="disk")
        ET.SubElement(disk, "driver", name="qemu", type="raw")
        ET.SubElement(disk, "source", file=disk_path)
        ET.SubElement(disk, "target", dev="vda", bus="virtio")
    for network, mac in networks:
        interface = ET.SubElement(devices, "interface", type="network")
        ET.SubElement(interface, "mac", address=mac.lower())
        ET.SubElement(interface, "source", network=network)
        ET.SubElement(interface, "model", type="virtio")
    graphics = ET.SubElement(devices, "graphics", type="vnc", listen="127.0.0.1")
    if spec.vnc_port is None:
        graphics.set("autoport", "yes")
    else:
        graphics.set("port", str(spec.vnc_port))
        graphics.set("autoport", "no")
    return ET.tostring(root, encoding="unicode")


def with_boot_order(xml_text, devices):
    """The domain XML booting from `devices` in order ("network", "hd"), replacing any
    per-device boot order (libvirt refuses both kinds at once)."""
    root = parse_xml(xml_text)
    for parent in root.iter():
        for boot in parent.findall("boot"):
            if parent.tag != "os":
                parent.remove(boot)
    os_element = root.find("os")
    if os_element is None:
        os_element = ET.SubElement(root, "os")
    for boot in os_element.findall("boot"):
        os_element.remove(boot)
    position = next(
        (i + 1 for i, child in enumerate(os_element) if child.tag == "type"), len(os_element)
    )
    for offset, device in enumerate(devices):
        os_element.insert(position + offset, ET.Element("boot", dev=device))
    return ET.tostring(root, encoding="unicode")


def volume_xml(name, capacity_bytes):
    volume = ET.Element("volume")
    ET.SubElement(volume, "name").text = name
    ET.SubElement(volume, "capacity", unit="bytes").text = str(capacity_bytes)
    return ET.tostring(volume, encoding="unicode")


def is_template(xml_text):
    return parse_xml(xml_text).find(f"metadata/{{{TEMPLATE_NS}}}template") is not None


def _macs(root):
    return tuple(
        element.get("address", "").lower() for element in root.findall("devices/interface/mac")
    )


@register
class LibvirtDriver(HypervisorDriver):
    name = "libvirt"
    description = "KVM / QEMU / Xen through libvirt"
    # A fixed port per VM, from the pool's range: consoles stay where firewalls expect them.
    needs_console_port = True

    def __init__(self, target):
        super().__init__(target)
        self._conn = None
        self._lock = threading.Lock()

    def _connection(self):
        if libvirt is None:
            raise NotSupported("libvirt-python is not installed (pip install -r "
                               "requirements-libvirt.txt).")  # fmt: skip
        with self._lock:
            if self._conn is None:
                self._conn = self._open()
            return self._conn

    def _open(self):
        try:
            if not self.target.username:
                return libvirt.open(self.target.url)
            credentials = {
                libvirt.VIR_CRED_AUTHNAME: self.target.username,
                libvirt.VIR_CRED_PASSPHRASE: self.target.password,
            }

            def answer(requests, _data):
                for request in requests:
                    request[4] = credentials.get(request[0], "")
                return 0

            auth = [list(credentials), answer, None]
            return libvirt.openAuth(self.target.url, auth, 0)
        except libvirt.libvirtError as exc:
            error = _translate(exc)
            if type(error) is DriverError:
                error = Unreachable(f"Cannot connect to {self.target.url}: {error}")
            raise error from None

    def _do(self, function, *args):
        try:
            return function(*args)
        except libvirt.libvirtError as exc:
            raise _translate(exc) from None

    def _domain(self, vm):
        conn = self._connection()
        lookup = conn.lookupByUUIDString if len(vm) == 36 else conn.lookupByName
        return self._do(lookup, vm)

    # -- reads -----------------------------------------------------------------------------

    def hosts(self):
        conn = self._connection()
        info = self._do(conn.getInfo)
        capabilities = parse_xml(self._do(conn.getCapabilities))
        hostname = self._do(conn.getHostname)
        return [
            HostInfo(
                uuid=capabilities.findtext("host/uuid", default=hostname),
                name=hostname,
                address=hostname,
                cpu_count=int(info[2]),
                memory_total_bytes=int(info[1]) * KIB * KIB,
                memory_free_bytes=int(self._do(conn.getFreeMemory)),
            )
        ]

    def _vm_info(self, domain):
        xml_text = self._do(domain.XMLDesc, 0)
        root = parse_xml(xml_text)
        state = self._do(domain.state)[0]
        power = DOMAIN_STATES.get(state, PowerState.HALTED)
        if power is PowerState.HALTED and self._do(domain.hasManagedSaveImage, 0):
            power = PowerState.SUSPENDED
        os_element = root.find("os")
        boot = [b.get("dev") for b in os_element.findall("boot")] if os_element is not None else []
        return VmInfo(
            uuid=self._do(domain.UUIDString),
            name=self._do(domain.name),
            power_state=power,
            vcpus=int(root.findtext("vcpu", default="0")),
            memory_bytes=int(self._do(domain.maxMemory)) * KIB,
            is_template=is_template(xml_text),
            macs=_macs(root),
            hvm_boot_policy="BIOS order" if boot else "",
            hvm_boot_params={
                "order": "".join({"network": "n", "hd": "c"}.get(b, "") for b in boot)
            },
        )

    def _all(self):
        return [self._vm_info(d) for d in self._do(self._connection().listAllDomains, 0)]

    def vms(self):
        return sorted((vm for vm in self._all() if not vm.is_template), key=lambda vm: vm.name)

    def vm(self, vm):
        return self._vm_info(self._domain(vm))

    def templates(self):
        return sorted(
            (
                TemplateInfo(
                    uuid=vm.uuid, name=vm.name, vcpus=vm.vcpus, memory_bytes=vm.memory_bytes
                )  # fmt: skip
                for vm in self._all()
                if vm.is_template
            ),
            key=lambda template: template.name,
        )

    def networks(self):
        result = []
        for network in self._do(self._connection().listAllNetworks, 0):
            root = parse_xml(self._do(network.XMLDesc, 0))
            bridge = root.find("bridge")
            result.append(
                NetworkInfo(
                    uuid=self._do(network.UUIDString),
                    name=self._do(network.name),
                    bridge=bridge.get("name", "") if bridge is not None else "",
                )
            )
        return sorted(result, key=lambda network: network.name)

    def storage(self):
        result = []
        for pool in self._do(self._connection().listAllStoragePools, 0):
            _state, capacity, allocation, _available = self._do(pool.info)
            root = parse_xml(self._do(pool.XMLDesc, 0))
            result.append(
                StorageInfo(
                    uuid=self._do(pool.UUIDString),
                    name=self._do(pool.name),
                    type=root.get("type", ""),
                    size_bytes=int(capacity),
                    used_bytes=int(allocation),
                )
            )
        return sorted(result, key=lambda sr: sr.name)

    # -- create / destroy ------------------------------------------------------------------

    def _network_name(self, network):
        conn = self._connection()
        lookup = conn.networkLookupByUUIDString if len(network) == 36 else conn.networkLookupByName
        return self._do(self._do(lookup, network).name)

    def _storage_pool(self, name):
        conn = self._connection()
        if len(name) == 36:
            return self._do(conn.storagePoolLookupByUUIDString, name)
        return self._do(conn.storagePoolLookupByName, name)

    def create_vm(self, spec: VmSpec) -> str:
        template = self._domain(spec.template)
        template_xml = self._do(template.XMLDesc, libvirt.VIR_DOMAIN_XML_INACTIVE)
        if not is_template(template_xml):
            raise NotFound(f"{spec.template} is not a template.", code="NOT_A_TEMPLATE")
        networks = [(self._network_name(net), mac) for net, mac in spec.networks]
        volume = None
        if spec.disk_bytes:
            pool = self._storage_pool(spec.sr or self.target.options.get("storage_pool", "default"))
            _state, _capacity, _allocation, available = self._do(pool.info)
            if spec.disk_bytes > available:
                raise StorageFull(
                    f"Storage pool full: {spec.disk_bytes} bytes needed, {available} free.",
                    details=(str(spec.disk_bytes), str(available)),
                )
            volume = self._do(pool.createXML, volume_xml(f"{spec.name}-disk0", spec.disk_bytes))
        try:
            xml_text = domain_xml(
                template_xml,
                spec,
                networks=networks,
                disk_path=self._do(volume.path) if volume is not None else "",
            )
            domain = self._do(self._connection().defineXML, xml_text)
        except DriverError:
            if volume is not None:
                self._do(volume.delete, 0)
            raise
        return self._do(domain.UUIDString)

    def destroy(self, vm):
        domain = self._in_state(vm, (PowerState.HALTED,))
        root = parse_xml(self._do(domain.XMLDesc, 0))
        paths = [d.get("file") for d in root.findall("devices/disk[@device='disk']/source")]
        self._do(domain.undefineFlags, libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
        conn = self._connection()
        for path in filter(None, paths):
            try:
                volume = conn.storageVolLookupByPath(path)
            except libvirt.libvirtError:
                continue  # not a managed volume (a plain file or the template's): left alone
            self._do(volume.delete, 0)

    # -- power -----------------------------------------------------------------------------

    def _in_state(self, vm, allowed):
        """The domain, checked up front: libvirt drivers differ in how they refuse a start of
        a running domain (operation invalid, internal error), XAPI's rules are the contract."""
        domain = self._domain(vm)
        state = DOMAIN_STATES.get(self._do(domain.state)[0], PowerState.HALTED)
        if state not in allowed:
            raise BadPowerState(
                f"VM {vm} is {state}; the operation needs it {allowed[0]}.",
                details=(vm, str(allowed[0]), str(state)),
            )
        return domain

    def start(self, vm):
        self._do(self._in_state(vm, (PowerState.HALTED,)).create)

    def shutdown(self, vm, mode=ShutdownMode.CLEAN):
        if ShutdownMode(mode) is ShutdownMode.HARD:
            allowed = (PowerState.RUNNING, PowerState.PAUSED, PowerState.SUSPENDED)
            self._do(self._in_state(vm, allowed).destroy)
        else:
            self._do(self._in_state(vm, (PowerState.RUNNING,)).shutdown)

    def reboot(self, vm, mode=ShutdownMode.CLEAN):
        domain = self._in_state(vm, (PowerState.RUNNING, PowerState.PAUSED))
        if ShutdownMode(mode) is ShutdownMode.HARD:
            self._do(domain.reset, 0)
        else:
            self._do(domain.reboot, 0)

    # -- boot ------------------------------------------------------------------------------

    def _set_boot(self, vm, devices):
        domain = self._domain(vm)
        xml_text = self._do(domain.XMLDesc, libvirt.VIR_DOMAIN_XML_INACTIVE)
        self._do(self._connection().defineXML, with_boot_order(xml_text, devices))

    def set_pxe_boot(self, vm):
        self._set_boot(vm, ("network", "hd"))

    def set_disk_boot(self, vm):
        self._set_boot(vm, ("hd",))

    def close(self):
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            # A connection whose daemon went away has nothing left to release.
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()

"""Driver plumbing without a hypervisor: error mapping, XML building, dataclasses, registry."""

import xml.etree.ElementTree as ET

import pytest

from virt.drivers import libvirt as libvirt_driver
from virt.drivers import xenapi
from virt.drivers.base import (
    AuthFailed,
    BadPowerState,
    DriverError,
    NotFound,
    NotSupported,
    PoolTarget,
    StorageFull,
    StorageInfo,
    VmSpec,
    get_driver,
    registered_drivers,
)

GIB = 1024**3


@pytest.mark.parametrize(
    ("details", "cls", "retryable"),
    [
        (["VM_BAD_POWER_STATE", "OpaqueRef:1", "halted", "running"], BadPowerState, False),
        (["HANDLE_INVALID", "VM", "OpaqueRef:1"], NotFound, False),
        (["UUID_INVALID", "VM", "abc"], NotFound, False),
        (["SR_FULL", "100", "10"], StorageFull, False),
        (["SESSION_AUTHENTICATION_FAILED", "root", "Authentication failure"], AuthFailed, False),
        (["MESSAGE_METHOD_UNKNOWN", "VM.frobnicate"], NotSupported, False),
        (["OTHER_OPERATION_IN_PROGRESS", "VM", "OpaqueRef:1"], DriverError, True),
        (["VM_IS_TEMPLATE", "OpaqueRef:1"], DriverError, False),
    ],
)
def test_xapi_failures_become_typed_errors(details, cls, retryable):
    error = xenapi.error_from_failure(details)
    assert type(error) is cls
    assert error.code == details[0]
    assert error.details == tuple(details[1:])
    assert error.retryable is retryable


def test_bad_power_state_message():
    error = xenapi.error_from_failure(["VM_BAD_POWER_STATE", "OpaqueRef:1", "halted", "running"])
    assert str(error) == "VM OpaqueRef:1 is running; the operation needs it halted."


def test_provision_disks_sets_sr_and_grows_root_only():
    xml = (
        '<provision><disk device="0" size="8589934592" sr="" bootable="true" type="system"/>'
        '<disk device="1" size="1073741824" sr="" bootable="false" type="system"/></provision>'
    )
    disks = ET.fromstring(xenapi.provision_disks(xml, sr_uuid="sr-1", disk_bytes=20 * GIB))
    assert [(d.get("sr"), d.get("size")) for d in disks] == [
        ("sr-1", str(20 * GIB)),
        ("sr-1", str(GIB)),
    ]
    smaller = ET.fromstring(xenapi.provision_disks(xml, disk_bytes=GIB))
    assert smaller[0].get("size") == "8589934592"  # never shrinks the template's disk
    with pytest.raises(DriverError):
        xenapi.provision_disks("<provision>")


TEMPLATE = f"""<domain type='kvm' id='3'><name>tpl</name><uuid>1-2</uuid>
<metadata><t:template xmlns:t='{libvirt_driver.TEMPLATE_NS}'/></metadata>
<memory unit='KiB'>1024</memory><vcpu>1</vcpu>
<os><type>hvm</type><boot dev='hd'/></os>
<devices><disk type='file' device='disk'><source file='/t.img'/><boot order='1'/></disk>
<disk type='file' device='cdrom'/><interface type='network'><mac address='aa:aa:aa:aa:aa:aa'/>
</interface><graphics type='spice'/></devices></domain>"""


def test_domain_xml_from_template():
    spec = VmSpec(
        name="web01", template="tpl", vcpus=2, memory_bytes=2 * GIB,
        networks=[("default", "52:54:00:AA:BB:CC")], vnc_port=5905,
    )  # fmt: skip
    assert libvirt_driver.is_template(TEMPLATE)
    root = ET.fromstring(libvirt_driver.domain_xml(TEMPLATE, spec, networks=[
        ("default", "52:54:00:AA:BB:CC")], disk_path="/pool/web01-disk0"))  # fmt: skip
    assert "id" not in root.attrib and root.find("uuid") is None
    assert not libvirt_driver.is_template(ET.tostring(root, encoding="unicode"))
    assert root.findtext("name") == "web01"
    assert root.findtext("memory") == str(2 * GIB // 1024)
    assert root.findtext("vcpu") == "2"
    disks = root.findall("devices/disk")
    assert [d.get("device") for d in disks] == ["cdrom", "disk"]
    assert disks[1].find("source").get("file") == "/pool/web01-disk0"
    (interface,) = root.findall("devices/interface")
    assert interface.find("mac").get("address") == "52:54:00:aa:bb:cc"
    assert interface.find("source").get("network") == "default"
    (graphics,) = root.findall("devices/graphics")
    assert (graphics.get("type"), graphics.get("port"), graphics.get("autoport")) == (
        "vnc", "5905", "no",
    )  # fmt: skip


def test_boot_order_replaces_device_boot_order():
    root = ET.fromstring(libvirt_driver.with_boot_order(TEMPLATE, ("network", "hd")))
    assert [b.get("dev") for b in root.findall("os/boot")] == ["network", "hd"]
    assert [child.tag for child in root.find("os")][0] == "type"
    assert root.findall("devices/disk/boot") == []


def test_libvirt_error_codes():
    assert type(libvirt_driver.error_for("VIR_ERR_NO_DOMAIN", "x")) is NotFound
    error = libvirt_driver.error_for("VIR_ERR_NO_CONNECT", "x")
    assert error.retryable and error.code == "NO_CONNECT"
    assert type(libvirt_driver.error_for("VIR_ERR_INTERNAL_ERROR", "x")) is DriverError


def test_libvirt_without_binding(monkeypatch):
    monkeypatch.setattr(libvirt_driver, "libvirt", None)
    driver = get_driver("libvirt", PoolTarget(url="test:///default"))
    with pytest.raises(NotSupported, match="libvirt-python is not installed"):
        driver.vms()


def test_registry():
    assert {"xenapi", "libvirt"} <= set(registered_drivers())
    with pytest.raises(NotSupported):
        get_driver("vmware")
    driver = get_driver("libvirt", PoolTarget(url="test:///default"))
    with pytest.raises(NotSupported):
        driver.migrate("vm", "host")


def test_password_stays_out_of_repr():
    target = PoolTarget(url="https://xen1", username="root", password="s3cret")
    assert "s3cret" not in repr(target) and "s3cret" not in str(target)


def test_spec_validation_and_storage_free():
    with pytest.raises(ValueError):
        VmSpec(name="a", template="t", vcpus=0, memory_bytes=GIB)
    with pytest.raises(ValueError):
        VmSpec(name="a", template="t", vcpus=1, memory_bytes=GIB, disk_bytes=-1)
    spec = VmSpec(name="a", template="t", vcpus=1, memory_bytes=GIB, networks=[["n", "m"]])
    assert spec.networks == (("n", "m"),)
    assert StorageInfo(uuid="u", name="n", size_bytes=10, used_bytes=4).free_bytes == 6

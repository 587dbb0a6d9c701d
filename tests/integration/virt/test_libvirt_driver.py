"""The libvirt driver against libvirt's in-memory `test:///default` hypervisor.

Without libvirt-python (it needs libvirt-dev to build) the tests skip, except under CI (the
CI variable set), where that is a failure.
"""

import os
import xml.etree.ElementTree as ET

import pytest

from virt.drivers import libvirt as driver_module
from virt.drivers.base import BadPowerState, NotFound, PoolTarget, PowerState, VmSpec, get_driver

GIB = 1024**3
TEMPLATE = f"""<domain type='test'>
  <name>tpl-debian</name>
  <metadata><dcportal:template xmlns:dcportal='{driver_module.TEMPLATE_NS}'/></metadata>
  <memory unit='KiB'>1048576</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type><boot dev='hd'/></os>
  <devices>
    <disk type='file' device='disk'><source file='/guest/template.img'/>
      <target dev='vda' bus='virtio'/></disk>
    <interface type='network'><mac address='aa:bb:cc:00:00:01'/>
      <source network='default'/></interface>
  </devices>
</domain>"""


@pytest.fixture
def driver():
    if driver_module.libvirt is None:
        message = "libvirt-python is not installed (pip install -r requirements-libvirt.txt)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and {message}", pytrace=False)
        pytest.skip(message)
    # Each test gets its own connection and therefore libvirt's fresh default state.
    drv = get_driver("libvirt", PoolTarget(url="test:///default"))
    conn = drv._connection()
    for domain in conn.listAllDomains(0):
        if domain.name() != "test":
            if domain.isActive():
                domain.destroy()
            domain.undefine()
    conn.defineXML(TEMPLATE)
    yield drv
    drv.close()


def spec(**overrides):
    values = {
        "name": "web01",
        "template": "tpl-debian",
        "vcpus": 2,
        "memory_bytes": 2 * GIB,
        "disk_bytes": GIB,
        "sr": "default-pool",
        "networks": [("default", "52:54:00:AA:00:01")],
        "vnc_port": 5911,
    }
    return VmSpec(**{**values, **overrides})


def test_listings(driver):
    assert [vm.name for vm in driver.vms()] == ["test"]
    assert driver.vms()[0].power_state is PowerState.RUNNING
    assert [t.name for t in driver.templates()] == ["tpl-debian"]
    assert [n.name for n in driver.networks()] == ["default"]
    pools = driver.storage()
    assert [p.name for p in pools] == ["default-pool"] and pools[0].size_bytes > 0
    (host,) = driver.hosts()
    assert host.cpu_count > 0 and host.memory_total_bytes > 0


def test_create_start_shutdown_destroy(driver):
    uuid = driver.create_vm(spec())
    vm = driver.vm(uuid)
    assert (vm.name, vm.power_state, vm.vcpus, vm.memory_bytes, vm.macs) == (
        "web01",
        PowerState.HALTED,
        2,
        2 * GIB,
        ("52:54:00:aa:00:01",),
    )
    root = ET.fromstring(driver._domain(uuid).XMLDesc(0))
    (disk,) = root.findall("devices/disk")
    assert disk.find("source").get("file") != "/guest/template.img"
    graphics = root.find("devices/graphics")
    assert (graphics.get("type"), graphics.get("port")) == ("vnc", "5911")
    pool = driver._connection().storagePoolLookupByName("default-pool")
    assert "web01-disk0" in pool.listVolumes()

    driver.start(uuid)
    assert driver.vm(uuid).power_state is PowerState.RUNNING
    with pytest.raises(BadPowerState):
        driver.start(uuid)
    with pytest.raises(BadPowerState):
        driver.destroy(uuid)
    driver.reboot(uuid)
    driver.shutdown(uuid)
    assert driver.vm(uuid).power_state is PowerState.HALTED
    with pytest.raises(BadPowerState):
        driver.shutdown(uuid)
    driver.start(uuid)
    driver.shutdown(uuid, "hard")
    assert driver.vm(uuid).power_state is PowerState.HALTED

    driver.destroy(uuid)
    assert "web01" not in [vm.name for vm in driver.vms()]
    assert "web01-disk0" not in pool.listVolumes()
    with pytest.raises(NotFound):
        driver.vm(uuid)


def test_pxe_boot_order_and_back(driver):
    uuid = driver.create_vm(spec())
    driver.set_pxe_boot(uuid)
    root = ET.fromstring(driver._domain(uuid).XMLDesc(0))
    assert [b.get("dev") for b in root.findall("os/boot")] == ["network", "hd"]
    assert driver.vm(uuid).hvm_boot_params == {"order": "nc"}
    driver.set_disk_boot(uuid)
    root = ET.fromstring(driver._domain(uuid).XMLDesc(0))
    assert [b.get("dev") for b in root.findall("os/boot")] == ["hd"]


def test_unknown_template_network_and_vm(driver):
    with pytest.raises(NotFound):
        driver.create_vm(spec(template="no-such-template"))
    with pytest.raises(NotFound) as excinfo:
        driver.create_vm(spec(template="test"))  # a domain, but not a template
    assert excinfo.value.code == "NOT_A_TEMPLATE"
    with pytest.raises(NotFound):
        driver.create_vm(spec(networks=[("no-such-net", "52:54:00:aa:00:02")]))
    with pytest.raises(NotFound):
        driver.start("00000000-0000-0000-0000-000000000000")

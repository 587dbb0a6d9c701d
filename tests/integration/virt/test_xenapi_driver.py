"""The XenAPI driver through the real `XenAPI` client against the project's XAPI server."""

import threading

import pytest

from tests.fakes.xapi_server import XapiServer
from virt.drivers import xenapi
from virt.drivers.base import (
    AuthFailed,
    BadPowerState,
    NotFound,
    PoolTarget,
    PowerState,
    StorageFull,
    Unreachable,
    VmSpec,
    get_driver,
)

GIB = 1024**3
MAC1, MAC2 = "52:54:00:12:34:01", "52:54:00:12:34:02"


@pytest.fixture
def server():
    with XapiServer() as running:
        yield running
    xenapi.close_all()


def target(server, **options):
    return PoolTarget(
        url=server.url, username="root", password="xapi-secret", options=options, label="pool0"
    )


@pytest.fixture
def driver(server):
    drv = get_driver("xenapi", target(server))
    yield drv
    drv.close()


def spec(server, **overrides):
    values = {
        "name": "web01",
        "template": server.record("VM", server.template)["uuid"],
        "vcpus": 4,
        "memory_bytes": 2 * GIB,
        "disk_bytes": 20 * GIB,
        "networks": [
            (server.record("network", server.network)["uuid"], MAC1),
            (server.record("network", server.network2)["uuid"], MAC2),
        ],
    }
    return VmSpec(**{**values, **overrides})


def test_listings(server, driver):
    assert [h.name for h in driver.hosts()] == ["xen1", "xen2"]
    assert driver.hosts()[0].cpu_count == 8
    assert [t.name for t in driver.templates()] == ["Debian Bookworm 12"]
    assert [n.bridge for n in driver.networks()] == ["xenbr0", "xenbr1"]
    storage = {sr.name: sr for sr in driver.storage()}
    assert storage["Small storage"].free_bytes == 4 * GIB
    assert driver.vms() == []  # control domains and templates are not guests


def test_create_from_template(server, driver):
    uuid = driver.create_vm(spec(server, vnc_port=5901))
    vm = driver.vm(uuid)
    assert (vm.name, vm.power_state, vm.vcpus, vm.memory_bytes, vm.is_template) == (
        "web01", PowerState.HALTED, 4, 2 * GIB, False,
    )  # fmt: skip
    assert vm.macs == (MAC1, MAC2)
    assert vm.other_config["dcportal_vnc_port"] == "5901"
    record = server.record("VM", uuid)
    assert record["VCPUs_max"] == record["VCPUs_at_startup"] == "4"
    assert record["memory_static_min"] == record["memory_dynamic_max"] == str(2 * GIB)
    (vbd,) = record["VBDs"]
    vdi = server.record("VDI", server.record("VBD", vbd)["VDI"])
    assert vdi["virtual_size"] == str(20 * GIB)
    assert server.record("SR", server.default_sr)["physical_utilisation"] == str(20 * GIB)
    devices = sorted(server.record("VIF", v)["device"] for v in record["VIFs"])
    assert devices == ["0", "1"]
    assert [v.uuid for v in driver.vms()] == [uuid]
    assert server.record("VM", server.template)["is_a_template"] is True


def test_create_on_chosen_sr_that_is_too_small(server, driver):
    small = server.record("SR", server.small_sr)["uuid"]
    with pytest.raises(StorageFull) as excinfo:
        driver.create_vm(spec(server, sr=small))
    assert excinfo.value.code == "SR_FULL"
    assert excinfo.value.details == (str(20 * GIB), str(4 * GIB))
    # Nothing half-made stays behind.
    assert driver.vms() == []
    assert server.objects["VDI"] == {}


def test_power_rules_and_typed_errors(server, driver):
    uuid = driver.create_vm(spec(server))
    with pytest.raises(BadPowerState) as excinfo:
        driver.shutdown(uuid)
    assert excinfo.value.details[1:] == ("running", "halted")
    driver.start(uuid)
    assert driver.vm(uuid).power_state is PowerState.RUNNING
    assert driver.vm(uuid).host_uuid == server.record("host", server.master)["uuid"]
    with pytest.raises(BadPowerState) as excinfo:
        driver.start(uuid)
    assert excinfo.value.code == "VM_BAD_POWER_STATE"
    assert excinfo.value.details[1:] == ("halted", "running")
    assert not excinfo.value.retryable
    with pytest.raises(BadPowerState):
        driver.destroy(uuid)
    driver.reboot(uuid)
    driver.reboot(uuid, "hard")
    driver.shutdown(uuid)
    assert driver.vm(uuid).power_state is PowerState.HALTED
    driver.start(uuid)
    driver.shutdown(uuid, "hard")
    assert driver.vm(uuid).host_uuid == ""
    driver.destroy(uuid)
    assert driver.vms() == []
    assert server.objects["VDI"] == {} and server.objects["VIF"] == {}
    assert server.record("SR", server.default_sr)["physical_utilisation"] == "0"


def test_unknown_objects(server, driver):
    with pytest.raises(NotFound) as excinfo:
        driver.start("00000000-0000-0000-0000-000000000000")
    assert excinfo.value.code == "UUID_INVALID"
    with pytest.raises(NotFound) as excinfo:
        driver._call("VM.start", "OpaqueRef:00000000-0000-0000-0000-000000000000", False, False)
    assert excinfo.value.code == "HANDLE_INVALID"
    assert excinfo.value.details[0] == "VM"


def test_migrate_within_pool(server, driver):
    uuid = driver.create_vm(spec(server))
    other = server.record("host", server.host2)["uuid"]
    with pytest.raises(BadPowerState):
        driver.migrate(uuid, other)
    driver.start(uuid)
    driver.migrate(uuid, other)
    assert driver.vm(uuid).host_uuid == other
    assert server.record("host", server.host2)["resident_VMs"][-1] == server.ref("VM", uuid)
    with pytest.raises(NotFound):
        driver.migrate(uuid, "11111111-1111-1111-1111-111111111111")


def test_pxe_then_pv_boot(server, driver):
    uuid = driver.create_vm(spec(server))
    driver.set_pxe_boot(uuid)
    record = server.record("VM", uuid)
    assert (record["HVM_boot_policy"], record["HVM_boot_params"]) == ("BIOS order", {"order": "n"})
    vbd = record["VBDs"][0]
    server.objects["VBD"][vbd]["bootable"] = False  # as an installer may leave it
    driver.set_pv_boot(uuid)
    record = server.record("VM", uuid)
    assert (record["HVM_boot_policy"], record["HVM_boot_params"], record["PV_bootloader"]) == (
        "", {}, "pygrub",
    )  # fmt: skip
    assert server.record("VBD", vbd)["bootable"] is True


def test_wrong_password(server):
    bad = PoolTarget(url=server.url, username="root", password="wrong")
    with pytest.raises(AuthFailed) as excinfo:
        get_driver("xenapi", bad).hosts()
    assert "wrong" not in str(excinfo.value)
    assert server.live_sessions == 0


def test_unreachable_is_retryable(server):
    url = server.url
    server.stop()
    with pytest.raises(Unreachable) as excinfo:
        get_driver("xenapi", PoolTarget(url=url, username="root", password="x")).hosts()
    assert excinfo.value.retryable


def test_session_reused_and_logged_out_on_close(server, driver):
    driver.hosts()
    driver.vms()
    driver.templates()
    assert server.logins == 1 and server.live_sessions == 1
    driver.close()
    assert server.logouts == 1 and server.live_sessions == 0
    driver.hosts()  # a closed driver logs in again on its next call
    assert server.logins == 2
    xenapi.close_all()
    assert server.live_sessions == 0


def test_relogin_after_session_invalid(server, driver):
    driver.hosts()
    server.expire_sessions()
    assert [h.name for h in driver.hosts()] == ["xen1", "xen2"]
    assert server.logins == 2 and server.live_sessions == 1


def test_session_bound_under_parallel_load(server):
    server.delay = 0.01  # each call stays in flight long enough for the threads to overlap
    big = server.record("SR", server.add_sr("Big storage", 1000 * GIB))["uuid"]
    errors = []

    def work(index):
        drv = get_driver("xenapi", target(server, max_sessions=3))
        try:
            uuid = drv.create_vm(spec(server, name=f"vm{index:02d}", sr=big))
            drv.start(uuid)
            drv.shutdown(uuid, "hard")
        except Exception as exc:  # collected: an assert in a thread would be lost
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert len(get_driver("xenapi", target(server, max_sessions=3)).vms()) == 20
    assert server.max_sessions <= 3
    assert server.max_active_calls <= 3
    assert server.logins <= 3
    assert server.max_active_calls >= 2  # the threads did run side by side


def test_pool_busy_is_retryable(server):
    pool = xenapi.session_pool(target(server, max_sessions=1, wait_timeout=0))
    held = pool.acquire()
    try:
        with pytest.raises(Unreachable) as excinfo:
            get_driver("xenapi", target(server, max_sessions=1, wait_timeout=0)).hosts()
        assert excinfo.value.code == "POOL_BUSY" and excinfo.value.retryable
    finally:
        pool.release(held)

"""Pure pieces of virt: sizes, boot modes, and how BMC power words map onto a hypervisor."""

import pytest
from django.core.exceptions import ValidationError

from inventory.power.base import BootDevice, FatalPowerError, PowerState, RetryablePowerError
from virt.drivers.base import (
    BadPowerState,
    HypervisorDriver,
    Unreachable,
    VmInfo,
)
from virt.drivers.base import PowerState as VmState
from virt.power import VmPower
from virt.services import boot_of, parse_size

GIB = 1024**3


@pytest.mark.parametrize(
    ("text", "size"),
    [("2G", 2 * GIB), ("512M", 512 * 1024**2), ("20GiB", 20 * GIB), ("1.5t", 1536 * GIB),
     ("4096", 4096), (8192, 8192), (" 1 g ", GIB), ("0", 0)],
)  # fmt: skip
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "two gigs", "2X", "-1G", "1e9", True, -5])
def test_bad_sizes_name_the_field(text):
    with pytest.raises(ValidationError) as error:
        parse_size(text, field="memory")
    assert "memory" in error.value.message_dict


def info(**fields):
    return VmInfo(uuid="u", name="n", power_state=VmState.HALTED, **fields)


def test_boot_modes():
    assert boot_of(info(pv_bootloader="pygrub")) == "pv"
    assert boot_of(info(hvm_boot_policy="BIOS order", hvm_boot_params={"order": "n"})) == "network"
    assert boot_of(info(hvm_boot_policy="BIOS order", hvm_boot_params={"order": "cd"})) == "disk"
    assert boot_of(info(hvm_boot_params={"order": "c"})) == "disk"


class Recorder(HypervisorDriver):
    """An in-memory guest that follows XAPI's power rules and records the calls made."""

    name = "recorder"

    def __init__(self, state=VmState.HALTED, fail=None):
        self.state, self.calls, self.fail = state, [], fail

    def vm(self, vm):
        if self.fail:
            raise self.fail
        return info() if self.state is VmState.HALTED else VmInfo("u", "n", self.state)

    def start(self, vm):
        if self.state is not VmState.HALTED:
            raise BadPowerState("not halted")
        self.calls.append("start")
        self.state = VmState.RUNNING

    def shutdown(self, vm, mode="clean"):
        self.calls.append(f"shutdown-{mode}")
        self.state = VmState.HALTED

    def reboot(self, vm, mode="clean"):
        self.calls.append(f"reboot-{mode}")

    def set_pxe_boot(self, vm):
        self.calls.append("pxe")

    def set_disk_boot(self, vm):
        self.calls.append("disk")

    hosts = vms = templates = networks = storage = lambda self: []
    create_vm = destroy = lambda self, *args: None


def test_bmc_words_on_a_vm():
    guest = Recorder()
    marked = []
    power = VmPower(guest, "u", on_network_boot=lambda: marked.append(True))
    assert power.status() == PowerState.OFF
    power.off()  # already off: nothing to do, like a BMC
    power.on()
    power.on()  # already on
    assert power.status() == PowerState.ON
    power.soft_off()
    power.cycle()  # off: cycle switches it on
    power.cycle()  # on: a hard reboot
    power.reset()
    power.set_boot_device(BootDevice.PXE, once=False)
    power.set_boot_device(BootDevice.PXE, once=True)
    power.set_boot_device(BootDevice.DISK)
    assert guest.calls == [
        "start", "shutdown-clean", "start", "reboot-hard", "reboot-hard", "pxe", "pxe", "disk",
    ]  # fmt: skip
    assert marked == [True]  # only the one-time network boot starts an install


def test_driver_errors_keep_their_kind():
    with pytest.raises(RetryablePowerError, match="busy"):
        VmPower(Recorder(fail=Unreachable("pool busy")), "u").status()
    with pytest.raises(FatalPowerError, match="halted"):
        VmPower(Recorder(fail=BadPowerState("VM is halted")), "u").status()

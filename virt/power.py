"""Power of VMs through their hypervisor: inventory's power actions (rpower, rsetboot, the
server page, rinstall) on a server that is a VM go to its pool's driver, within the pool's
limit, instead of a BMC.

BMC words map onto XAPI's: on = start, off = hard shutdown, softoff = clean shutdown, cycle =
hard reboot (start when halted), reset = hard reboot. A one-time network boot marks the VM as
installing, so that the installer's `done` returns it to disk (PV) boot like a VM installed
from the virt pages.
"""

from django.db.models import Q

from inventory import power_services
from inventory.power.base import (
    BootDevice,
    FatalPowerError,
    PowerDriver,
    PowerState,
    RetryablePowerError,
)
from virt.drivers.base import DriverError, ShutdownMode
from virt.drivers.base import PowerState as VmPowerState

ON_STATES = (VmPowerState.RUNNING, VmPowerState.PAUSED)


class VmPower(PowerDriver):
    """A PowerDriver over one guest of an open hypervisor driver."""

    name = "hypervisor"
    description = "A VM, through its hypervisor"

    def __init__(self, driver, uuid, *, on_network_boot=None):
        self.driver, self.uuid, self.on_network_boot = driver, uuid, on_network_boot

    def _do(self, function, *args):
        try:
            return function(*args)
        except DriverError as exc:
            kind = RetryablePowerError if exc.retryable else FatalPowerError
            raise kind(str(exc)) from None

    def _state(self):
        return self._do(self.driver.vm, self.uuid).power_state

    def status(self):
        return PowerState.ON if self._state() in ON_STATES else PowerState.OFF

    def on(self):
        if self._state() not in ON_STATES:
            self._do(self.driver.start, self.uuid)

    def off(self):
        if self._state() in ON_STATES:
            self._do(self.driver.shutdown, self.uuid, ShutdownMode.HARD)

    def soft_off(self):
        if self._state() in ON_STATES:
            self._do(self.driver.shutdown, self.uuid, ShutdownMode.CLEAN)

    def cycle(self):
        if self._state() in ON_STATES:
            self._do(self.driver.reboot, self.uuid, ShutdownMode.HARD)
        else:
            self._do(self.driver.start, self.uuid)

    def reset(self):
        self._do(self.driver.reboot, self.uuid, ShutdownMode.HARD)

    def set_boot_device(self, device, once=True):
        if BootDevice(device) is BootDevice.PXE:
            self._do(self.driver.set_pxe_boot, self.uuid)
            if once and self.on_network_boot is not None:
                self.on_network_boot()
        else:
            self._do(self.driver.set_disk_boot, self.uuid)


def _in_job():
    # An RQ work horse ends with its job: its sessions are logged out, not kept.
    from rq import get_current_job

    return get_current_job() is not None


def _vms():
    from virt.models import Vm

    return Vm.objects.exclude(uuid="").exclude(state=Vm.State.DESTROYING)


def endpoint(server):
    from virt import services
    from virt.models import Vm

    vm = _vms().select_related("pool").filter(server_id=server.pk).first()
    if vm is None:
        return None

    def network_boot():
        # Only while a build is under way: the installer's `done` then returns it to disk.
        Vm.objects.filter(pk=vm.pk).filter(Q(server__deploy__state="building")).update(
            state=Vm.State.INSTALLING, boot="network"
        )

    class Session:
        def __enter__(self):
            self.context = services.pool_driver(vm.pool, close=_in_job())
            try:
                driver = self.context.__enter__()
            except DriverError as exc:
                raise RetryablePowerError(str(exc)) from None
            return VmPower(driver, vm.uuid, on_network_boot=network_boot)

        def __exit__(self, *exc):
            return self.context.__exit__(*exc)

    def record(state):
        power = Vm.PowerState.RUNNING if state == PowerState.ON else Vm.PowerState.HALTED
        Vm.objects.filter(pk=vm.pk).update(power_state=power)

    return power_services.PowerEndpoint(
        driver_name=f"{vm.pool.driver} (pool {vm.pool.name})",
        where=f"the {vm.pool.driver} pool {vm.pool.name}",
        session=Session,
        record=record,
        secret=services.pool_target(vm.pool).password,
    )


def covers(ids):
    return set(_vms().filter(server_id__in=ids).values_list("server_id", flat=True))


def register():
    power_services.register_source(endpoint=endpoint, covers=covers)

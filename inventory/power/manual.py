"""The `manual` driver: nothing to talk to. The service records each request for a person."""

from inventory.power.base import PowerDriver, PowerState, register_driver


@register_driver
class ManualDriver(PowerDriver):
    name = "manual"
    description = "Records the request; a person carries it out."
    manual = True

    def status(self):
        return PowerState.UNKNOWN

    def on(self):
        pass

    def off(self):
        pass

    def soft_off(self):
        pass

    def cycle(self):
        pass

    def reset(self):
        pass

    def set_boot_device(self, device, once=True):
        pass

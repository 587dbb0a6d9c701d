"""`manage.py rvitals NODERANGE`, as xCAT's rvitals: the sensors of every node's BMC (one line
per sensor), every node in parallel within the power limits."""

from inventory.management.power import PowerCommand


class Command(PowerCommand):
    help = "Show the sensor readings (temperatures, fans, voltages…) of servers' BMCs."

    def add_arguments(self, parser):
        self.add_noderange_argument(parser)

    def handle(self, *args, noderange, **options):
        self.run_range(options, noderange, "sensors")

    def format_result(self, result):
        if not result["ok"]:
            return super().format_result(result)
        host = result["hostname"]
        sensors = result.get("sensors") or []
        if not sensors:
            return [f"{host}: no sensors"]
        lines = []
        for sensor in sensors:
            value = "n/a" if sensor["value"] is None else f"{sensor['value']}"
            unit = f" {sensor['unit']}" if sensor["unit"] else ""
            state = f" ({sensor['state']})" if sensor["state"] else ""
            lines.append(f"{host}: {sensor['name']}: {value}{unit}{state}")
        return lines

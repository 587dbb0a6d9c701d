"""The virtualization lists as portal tables (dcportal.tables): pools and VMs."""

from django.urls import reverse

from dcportal.tables import BulkAction, Column, Table
from virt import forms, services
from virt.filtersets import PoolFilterSet, VmFilterSet


def pool_tenant(pool):
    return pool.tenant.name if pool.tenant_id else "shared"


def sync_status(pool):
    if pool.last_sync_error:
        return "error"
    return pool.sync_job.status if pool.sync_job_id else ""


class PoolTable(Table):
    name = "virt-pools"
    filterset_class = PoolFilterSet
    search_fields = ("name", "url", "description")
    default_sort = "name"
    empty_text = "No pools match."
    row_template = "virt/_pool_row_actions.html"
    columns = (
        Column("name", "Name", sort="name", link=lambda p: reverse("virt:pool", args=[p.pk])),
        Column("driver", "Driver", value="get_driver_display", sort="driver"),
        Column("url", "URL", sort="url", cell="mono"),
        Column("tenant", "Tenant", value=pool_tenant),
        Column("hosts", "Hosts", value="host_count", sort="host_count"),
        # A shared pool holds other tenants' VMs too: the view counts only those the user sees.
        Column("vms", "VMs", value="visible_vms", sort="visible_vms"),
        Column("last_sync", "Last sync", value="last_sync"),
        Column("sync", "Sync", value=sync_status, cell="badge"),
        Column(
            "sync_job",
            "Sync job",
            value=lambda p: f"#{p.sync_job_id}" if p.sync_job_id else "",
            link=lambda p: reverse("job", args=[p.sync_job_id]) if p.sync_job_id else "",
        ),
        Column("sync_error", "Sync error", value="last_sync_error", css="errors"),
        Column("sync_interval", "Sync every (min)", sort="sync_interval", default=False),
        Column("description", "Description", default=False),
    )


def vm_macs(vm):
    return [vif.interface.mac for vif in vm.vifs.all()]


def vm_memory(vm):
    return forms.human_size(vm.memory_bytes)


class VmTable(Table):
    name = "virt-vms"
    filterset_class = VmFilterSet
    search_fields = ("server__hostname", "uuid")
    default_sort = "hostname"
    empty_text = "No VMs match."
    columns = (
        Column(
            "hostname",
            "Host name",
            value="server.hostname",
            sort="server__hostname",
            link=lambda vm: reverse("virt:vm", args=[vm.pk]),
        ),
        Column("pool", "Pool", value="pool.name", sort="pool__name"),
        Column("state", "State", sort="state", cell="badge"),
        Column("power_state", "Power", sort="power_state", cell="badge"),
        Column("boot", "Boot", sort="boot"),
        Column("vcpus", "VCPUs", sort="vcpus"),
        Column("memory", "Memory", value=vm_memory, sort="memory_bytes"),
        Column("host", "Host", value="host.name"),
        Column("macs", "MACs", value=vm_macs, cell="mono"),
        Column("tenant", "Tenant", value="server.tenant.name", sort="server__tenant__name"),
        Column("uuid", "UUID", default=False, cell="mono"),
        Column("template", "Template", value="template.name", default=False),
        Column("job", "Last job", value="job.status", default=False, cell="badge"),
        Column("created", "Created", sort="created", default=False),
    )

    @property
    def bulk_actions(self):
        url = reverse("virt:vm-bulk")
        return [
            BulkAction(
                action,
                services.VM_ACTIONS[action][1],
                url,
                permission=services.VM_ACTIONS[action][0],
                danger=action != "start",
            )
            for action in forms.BULK_POWER_ACTIONS
        ]

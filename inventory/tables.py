"""The inventory's lists as portal tables (dcportal.tables)."""

from django.core.exceptions import ObjectDoesNotExist
from django.urls import reverse

from dcportal.tables import BulkAction, Column, Table
from inventory.filtersets import ServerFilterSet
from inventory.forms import BULK_ACTIONS
from inventory.models import Server


def _related(obj, name):
    try:
        return getattr(obj, name)
    except ObjectDoesNotExist:
        return None


def boot_mac(server):
    return next((i.mac for i in server.interfaces.all() if i.boot), "")


def power_state(server):
    """The last known power state: the hypervisor's for a VM, the BMC's otherwise."""
    vm = _related(server, "vm")
    if vm is not None:
        return vm.power_state
    bmc = _related(server, "bmc")
    return bmc.power_state if bmc is not None else ""


def deploy_state(server):
    deploy = _related(server, "deploy")
    if deploy is None:
        return ""
    return deploy.stage if deploy.state == "building" else deploy.state


class ServerTable(Table):
    name = "servers"
    filterset_class = ServerFilterSet
    default_sort = "hostname"
    empty_text = "No servers match."
    row_template = "inventory/_server_row_actions.html"
    columns = (
        Column(
            "hostname",
            "Host name",
            sort="hostname",
            link=lambda s: reverse("inventory:server", args=[s.pk]),
        ),
        Column("status", "Status", sort="status", cell="badge"),
        Column("kind", "Kind", sort="kind"),
        Column("tenant", "Tenant", value="tenant.name", sort="tenant__name"),
        Column("vendor", "Vendor", sort="vendor"),
        Column("model", "Model", sort="model"),
        Column("serial", "Serial", sort="serial", default=False, cell="mono"),
        Column("uuid", "UUID", default=False, cell="mono"),
        Column("boot_mac", "Boot MAC", value=boot_mac, cell="mono"),
        Column("power", "Power", value=power_state, cell="badge"),
        Column("deploy", "Deploy", value=deploy_state, cell="badge"),
        Column("rack", "Rack", value="rack", default=False),
        Column("tags", "Tags", cell="tags"),
        Column("updated", "Updated", sort="updated"),
        Column("created", "Created", sort="created", default=False),
        Column("last_inventory", "Last inventory", default=False),
    )

    @property
    def bulk_actions(self):
        actions = [
            BulkAction(
                value,
                label,
                reverse("inventory:server-bulk"),
                permission=_bulk_permission(value),
                danger=value == "delete",
                fields=_bulk_fields(value),
            )
            for value, label in BULK_ACTIONS
        ]
        actions.append(
            BulkAction(
                "deploy",
                "Deploy (nodeset / rinstall)",
                reverse("deploy:server-bulk"),
                permission="deploy.nodeset_server",
            )
        )
        return actions

    @property
    def actions(self):
        from inventory import power_views

        return [
            action
            for action in self.bulk_actions
            if (action.name == "deploy" and self.user.has_perm(action.permission))
            or (action.name != "deploy" and power_views.may_bulk(self.user, action.name))
        ]


def _bulk_permission(value):
    return "inventory.delete_server" if value == "delete" else "inventory.change_server"


def _bulk_fields(value):
    if value == "status":
        return (("status", "to", Server.Status.choices),)
    if value == "tag":
        return (("tags", "tags", None),)
    return ()

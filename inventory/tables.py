"""The inventory's lists as portal tables (dcportal.tables)."""

from django.core.exceptions import ObjectDoesNotExist
from django.urls import reverse
from django.utils import timezone

from dcportal.tables import BulkAction, Column, Table
from inventory import ipam, registration
from inventory.filtersets import ServerFilterSet
from inventory.forms import BULK_ACTIONS
from inventory.ipam_filtersets import (
    InterfaceTableFilterSet,
    SubnetAddressFilterSet,
    SubnetFilterSet,
)
from inventory.models import Server
from inventory.registration_filters import ConflictFilterSet, EnrolmentTokenFilterSet


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


# IPAM -------------------------------------------------------------------------------------------


def subnet_usage(subnet):
    """Usage figures of a subnet annotated by ipam.with_used."""
    return ipam.usage_figures(ipam.usable_size(subnet.network), subnet.used)


def _server_link(server):
    return reverse("inventory:server", args=[server.pk]) if server is not None else ""


def _address_server(ip):
    return ip.interface.server if ip.interface_id else None


class SubnetTable(Table):
    """Subnets; the queryset must be annotated with ipam.with_used."""

    name = "subnets"
    filterset_class = SubnetFilterSet
    default_sort = "network"
    empty_text = "No subnets match."
    row_template = "inventory/_subnet_row_actions.html"
    columns = (
        Column(
            "network",
            "Network",
            sort="network",
            link=lambda s: reverse("inventory:subnet", args=[s.pk]),
            cell="mono",
        ),
        Column("name", "Name", sort="name"),
        Column("vlan", "VLAN"),
        Column("tenant", "Tenant", value="tenant.name", sort="tenant__name"),
        Column("gateway", "Gateway", cell="mono"),
        Column("usage", "Usage", value=lambda s: subnet_usage(s)["percent"], cell="progress"),
        Column(
            "used",
            "Used",
            value=lambda s: "{used} / {size}".format(**subnet_usage(s)),
            sort="used",
        ),
        Column("free", "Free", value=lambda s: subnet_usage(s)["free"], default=False),
        Column("domain", "Domain", sort="domain", default=False),
        Column("dns_servers", "DNS servers", default=False, cell="mono"),
        Column("description", "Description", default=False),
    )


class AddressTable(Table):
    """The addresses of one subnet."""

    name = "subnet-addresses"
    filterset_class = SubnetAddressFilterSet
    default_sort = "address"
    empty_text = "No addresses match."
    row_template = "inventory/_address_row_actions.html"
    columns = (
        Column("address", "Address", sort="address", cell="mono"),
        Column("status", "Status", sort="status", cell="badge"),
        Column("dns_name", "DNS name", sort="dns_name"),
        Column(
            "server",
            "Server",
            value=lambda ip: _address_server(ip) and _address_server(ip).hostname,
            link=lambda ip: _server_link(_address_server(ip)),
        ),
        Column("interface", "Interface", value="interface.name"),
        Column("description", "Description", sort="description"),
        Column("created", "Created", sort="created"),
    )

    @property
    def bulk_actions(self):
        return (
            BulkAction(
                "release",
                "Release",
                reverse("inventory:address-bulk"),
                permission="inventory.delete_ipaddress",
                danger=True,
            ),
        )


class InterfaceTable(Table):
    name = "interfaces"
    filterset_class = InterfaceTableFilterSet
    default_sort = "server__hostname"
    empty_text = "No interfaces match."
    row_template = "inventory/_interface_row_actions.html"
    columns = (
        Column(
            "host",
            "Host",
            value="server.hostname",
            sort="server__hostname",
            link=lambda i: _server_link(i.server),
        ),
        Column("name", "Name", sort="name"),
        Column("mac", "MAC", sort="mac", cell="mono"),
        Column("boot", "Boot", sort="boot", cell="bool"),
        Column(
            "addresses",
            "Addresses",
            value=lambda i: [str(ip.address) for ip in i.addresses.all()],
            cell="mono",
        ),
        Column("description", "Description", sort="description", default=False),
        Column("tenant", "Tenant", value="server.tenant.name", default=False),
    )


# Auto-inventory ---------------------------------------------------------------------------------


def _conflict_servers(conflict):
    names = [s.hostname for s in (conflict.server, conflict.other_server) if s is not None]
    return " ↔ ".join(names)


def _conflict_state(conflict):
    if conflict.resolved is None:
        return "open"
    who = conflict.resolved_by.username if conflict.resolved_by_id else "?"
    when = timezone.localtime(conflict.resolved).strftime("%Y-%m-%d %H:%M")
    return f"resolved {when} by {who}: {conflict.resolution}"


class ConflictTable(Table):
    """Registration conflicts; without a state filter only the open ones."""

    name = "conflicts"
    filterset_class = ConflictFilterSet
    search_fields = ("detail", "server__hostname", "other_server__hostname")
    default_sort = "-created"
    empty_text = "No conflicts match."
    row_template = "inventory/_conflict_row_actions.html"
    columns = (
        Column(
            "id",
            "#",
            value="pk",
            sort="id",
            link=lambda c: reverse("inventory:conflict", args=[c.pk]),
        ),
        Column("created", "When", sort="created"),
        Column("tenant", "Tenant", value="tenant.slug", sort="tenant__slug"),
        Column("kind", "Kind", sort="kind", cell="badge"),
        Column("server", "Server", value=_conflict_servers),
        Column("detail", "Detail", sort="detail"),
        Column("state", "State", value=_conflict_state),
    )

    @property
    def bulk_actions(self):
        return (
            BulkAction(
                "dismiss",
                "Dismiss",
                reverse("inventory:conflict-bulk"),
                permission="inventory.resolve_conflict",
            ),
        )

    def _filtered(self, queryset):
        if "state" not in self.params:
            queryset = queryset.filter(resolved__isnull=True)
        return super()._filtered(queryset)

    def _build(self):
        rows = super()._build()
        may_resolve = self.user.has_perm("inventory.resolve_conflict")
        for row in rows:
            row.obj.choices = registration.resolutions_for(row.obj) if may_resolve else []
        return rows


def _enrolment_state(token):
    if token.revoked:
        return "revoked"
    return "active" if token.is_active else "expired"


class EnrolmentTokenTable(Table):
    name = "enrolment-tokens"
    filterset_class = EnrolmentTokenFilterSet
    search_fields = ("name", "prefix", "tenant__slug")
    default_sort = "-created"
    empty_text = "No enrolment tokens yet."
    row_template = "inventory/_enrolment_token_row_actions.html"
    columns = (
        Column("tenant", "Tenant", value="tenant.slug", sort="tenant__slug"),
        Column("name", "Name", sort="name"),
        Column("prefix", "Prefix", sort="prefix", cell="mono"),
        Column("created", "Created", sort="created"),
        Column("expires", "Expires", value=lambda t: t.expires or "never"),
        Column("last_used", "Last used", value=lambda t: t.last_used or "never"),
        Column("state", "State", value=_enrolment_state, cell="badge"),
    )

    @property
    def bulk_actions(self):
        return (
            BulkAction(
                "revoke",
                "Revoke",
                reverse("inventory:enrolment-token-bulk"),
                permission="inventory.change_enrolmenttoken",
                danger=True,
            ),
        )

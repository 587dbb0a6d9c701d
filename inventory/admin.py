from django.contrib import admin

from dcportal.admin import AuditedAdmin, ReadOnlyAdmin
from inventory.models import (
    Bmc,
    Conflict,
    EnrolmentToken,
    Interface,
    IPAddress,
    IPRange,
    Rack,
    Server,
    Site,
    Subnet,
)


@admin.register(Site)
class SiteAdmin(AuditedAdmin):
    list_display = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name"]


@admin.register(Rack)
class RackAdmin(AuditedAdmin):
    list_display = ["name", "site", "units"]
    list_filter = ["site"]
    search_fields = ["name"]


class InterfaceInline(admin.TabularInline):
    model = Interface
    extra = 0


@admin.register(Server)
class ServerAdmin(AuditedAdmin):
    list_display = [
        "hostname",
        "tenant",
        "kind",
        "status",
        "vendor",
        "model",
        "serial",
        "uuid",
        "last_inventory",
    ]
    list_filter = ["status", "kind", "tenant", "vendor"]
    search_fields = ["hostname", "serial", "uuid", "interfaces__mac"]
    inlines = [InterfaceInline]


@admin.register(Interface)
class InterfaceAdmin(AuditedAdmin):
    list_display = ["server", "name", "mac", "boot"]
    search_fields = ["mac", "server__hostname", "name"]


@admin.register(Subnet)
class SubnetAdmin(AuditedAdmin):
    list_display = ["network", "name", "tenant", "vlan", "gateway", "domain"]
    list_filter = ["tenant"]
    search_fields = ["name", "domain", "description"]


@admin.register(IPRange)
class IPRangeAdmin(AuditedAdmin):
    list_display = ["start", "end", "subnet", "kind"]
    list_filter = ["kind"]


@admin.register(IPAddress)
class IPAddressAdmin(AuditedAdmin):
    list_display = ["address", "subnet", "interface", "status", "dns_name"]
    list_filter = ["status"]
    search_fields = ["dns_name", "description"]


@admin.register(EnrolmentToken)
class EnrolmentTokenAdmin(ReadOnlyAdmin):
    list_display = ["name", "tenant", "prefix", "created", "expires", "last_used", "revoked"]
    exclude = ["key_hash"]


@admin.register(Conflict)
class ConflictAdmin(ReadOnlyAdmin):
    list_display = ["created", "kind", "tenant", "server", "detail", "resolved"]
    list_filter = ["kind", "resolved"]


@admin.register(Bmc)
class BmcAdmin(AuditedAdmin):
    list_display = ["server", "driver", "address", "port", "power_state", "power_state_checked"]
    list_filter = ["driver", "power_state"]
    search_fields = ["server__hostname", "address"]

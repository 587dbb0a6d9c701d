"""Django admin of virtualization (admins only, like every admin page; edits are audited).

A pool's password box is write-only: it never shows the stored password, left empty it keeps
it, and "clear password" removes it. What the sync reads from a hypervisor (hosts, templates,
networks, storage, VIFs) is read-only here: the hypervisor is the truth, the next sync would
undo an edit. VMs are created and destroyed through the portal's services (MACs, jobs, the
hypervisor); the admin may correct a VM's recorded state or forget a VM row.
"""

from django import forms
from django.contrib import admin

from dcportal.admin import AuditedAdmin, ReadOnlyAdmin
from virt.models import Host, Network, Pool, StorageRepository, Vif, Vm, VmTemplate


class PoolAdminForm(forms.ModelForm):
    clear_password = forms.BooleanField(
        required=False, help_text="Remove the stored password (an empty box keeps it)."
    )

    def clean(self):
        data = super().clean()
        # As virt.services.update_pool: a stored password is never sent to an address or
        # user name it was not typed for.
        moved = {"url", "username"} & set(self.changed_data)
        kept = not data.get("password") and not data.get("clear_password")
        if moved and kept and self.instance.pk and self.instance.password:
            self.add_error("password", "Enter the password again: the URL or user name changed.")
        return data

    class Meta:
        model = Pool
        fields = [
            "name",
            "driver",
            "url",
            "username",
            "password",
            "clear_password",
            "verify_tls",
            "ca_bundle",
            "tenant",
            "import_tenant",
            "max_sessions",
            "sync_interval",
            "vnc_port_min",
            "vnc_port_max",
            "options",
            "description",
        ]


@admin.register(Pool)
class PoolAdmin(AuditedAdmin):
    form = PoolAdminForm
    list_display = ["name", "driver", "url", "tenant", "max_sessions", "last_sync"]
    list_filter = ["driver", "tenant"]
    search_fields = ["name", "url", "description"]
    readonly_fields = ["last_sync", "last_sync_error", "sync_job"]

    def save_model(self, request, obj, form, change):
        if form.cleaned_data.get("clear_password"):
            obj.password = ""
        super().save_model(request, obj, form, change)


class SyncedAdmin(ReadOnlyAdmin):
    list_filter = ["pool"]
    search_fields = ["name", "uuid"]


@admin.register(Host)
class HostAdmin(SyncedAdmin):
    list_display = ["name", "pool", "address", "enabled", "cpu_count", "synced"]


@admin.register(VmTemplate)
class VmTemplateAdmin(SyncedAdmin):
    list_display = ["name", "pool", "vcpus", "memory_bytes", "synced"]


@admin.register(Network)
class NetworkAdmin(SyncedAdmin):
    list_display = ["name", "pool", "bridge", "synced"]


@admin.register(StorageRepository)
class StorageRepositoryAdmin(SyncedAdmin):
    list_display = ["name", "pool", "type", "size_bytes", "used_bytes", "shared", "synced"]


class VifInline(admin.TabularInline):
    model = Vif
    extra = 0
    can_delete = False
    readonly_fields = ["device", "interface", "network"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Vm)
class VmAdmin(AuditedAdmin):
    list_display = ["server", "pool", "state", "power_state", "host", "vcpus", "last_sync"]
    list_filter = ["state", "power_state", "pool"]
    search_fields = ["server__hostname", "uuid", "vifs__interface__mac"]
    list_select_related = ["server", "pool", "host"]
    readonly_fields = [
        "server",
        "pool",
        "uuid",
        "power_state",
        "host",
        "template",
        "storage",
        "vcpus",
        "memory_bytes",
        "disk_bytes",
        "vnc_port",
        "boot",
        "last_error",
        "job",
        "last_sync",
    ]
    inlines = [VifInline]

    def has_add_permission(self, request):
        return False


@admin.register(Vif)
class VifAdmin(ReadOnlyAdmin):
    list_display = ["vm", "device", "interface", "network"]
    search_fields = ["vm__server__hostname", "interface__mac"]
    list_select_related = ["vm__server", "interface", "network__pool"]

"""Forms of the virtualization pages. They only parse input: virt.services validates and writes,
and its field errors are put back on these forms (add_service_errors).

Memory and disk sizes are typed as text ("2G", "512M") and read by services.parse_size, the
same reading the API and the command line use.
"""

import json

from django import forms
from django.core.exceptions import ValidationError

from dcportal import rbac
from dcportal.forms import SecretFormField
from dcportal.models import Tenant
from deploy.models import Profile
from virt import services
from virt.models import Pool, Vm

SHARED = "Shared by every tenant"
# The power actions the VM list offers on a selection; the force reboot stays a button of the
# VM's page, where the user sees the one guest it hits.
BULK_POWER_ACTIONS = ("start", "shutdown", "hard-shutdown", "reboot")


def add_service_errors(form, exc: ValidationError):
    """Show a service's ValidationError on the form: on its field when the form has one."""
    if hasattr(exc, "error_dict"):
        for name, errors in exc.message_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


def tenants_for(user):
    """The tenants a user may place things in (every tenant for an admin)."""
    return rbac.restrict(Tenant.objects.all(), user, "view").order_by("name")


def profiles_for(user):
    """The deploy profiles a user may install with (their tenants' and the shared ones)."""
    return rbac.restrict(Profile.objects.select_related("os"), user, "view").order_by("name")


def human_size(value):
    """Bytes as the shortest exact text parse_size reads back ("2G", "512M")."""
    for suffix, factor in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if value and value % factor == 0:
            return f"{value // factor}{suffix}"
    return str(value)


class SizeField(forms.CharField):
    """A size in bytes typed as "2G", "512M", "20GiB" or a plain number of bytes."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 32)
        kwargs.setdefault("widget", forms.TextInput(attrs={"size": 8, "class": "mono"}))
        super().__init__(**kwargs)

    def prepare_value(self, value):
        return human_size(value) if isinstance(value, int) else value

    def clean(self, value):
        text = super().clean(value).strip()
        if not text:
            return 0
        try:
            return services.parse_size(text)
        except ValidationError as exc:
            raise ValidationError(exc.messages) from None


class JSONObjectField(forms.CharField):
    """A JSON object typed in a text box."""

    def __init__(self, **kwargs):
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 4, "class": "mono"}))
        kwargs.setdefault("required", False)
        super().__init__(strip=False, **kwargs)

    def prepare_value(self, value):
        if value is None or isinstance(value, str):
            return value
        return json.dumps(value, indent=2, sort_keys=True)

    def clean(self, value):
        text = super().clean(value)
        if not text.strip():
            return {}
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"Line {exc.lineno}, column {exc.colno}: {exc.msg}.") from None
        if not isinstance(data, dict):
            raise ValidationError('A JSON object is needed, e.g. {"timeout": 30}.')
        return data


class PoolTenantField(forms.ModelChoiceField):
    """The tenant of a pool. Empty means shared, which only an admin may pick."""

    def __init__(self, *, user, **kwargs):
        shared = rbac.is_global(user)
        super().__init__(
            queryset=tenants_for(user),
            required=not shared,
            empty_label=SHARED if shared else None,
            help_text="Empty: shared by every tenant (admins only)." if shared else "",
            **kwargs,
        )


class PoolForm(forms.Form):
    """A pool. The password box never shows the stored password: left empty it keeps it, and
    "clear password" removes it."""

    name = forms.CharField(max_length=100)
    driver = forms.ChoiceField(choices=Pool.Driver.choices, initial=Pool.Driver.XENAPI)
    url = forms.CharField(
        max_length=500, label="URL", help_text=Pool._meta.get_field("url").help_text
    )
    username = forms.CharField(max_length=150, required=False)
    password = SecretFormField(required=False)
    clear_password = forms.BooleanField(
        required=False, label="Clear password", help_text="Remove the stored password."
    )
    verify_tls = forms.BooleanField(
        required=False, initial=True, label="Verify TLS", help_text="Check the certificate."
    )
    ca_bundle = forms.CharField(
        required=False,
        label="CA bundle",
        widget=forms.Textarea(attrs={"rows": 4, "class": "mono"}),
        help_text=Pool._meta.get_field("ca_bundle").help_text,
    )
    max_sessions = forms.IntegerField(
        min_value=1,
        max_value=64,
        initial=4,
        help_text=Pool._meta.get_field("max_sessions").help_text,
    )
    sync_interval = forms.IntegerField(
        min_value=0, initial=15, help_text=Pool._meta.get_field("sync_interval").help_text
    )
    vnc_port_min = forms.IntegerField(
        min_value=1024, max_value=65535, initial=5900, label="First VNC port"
    )
    vnc_port_max = forms.IntegerField(
        min_value=1024, max_value=65535, initial=6899, label="Last VNC port"
    )
    options = JSONObjectField(help_text=Pool._meta.get_field("options").help_text)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))

    FIELDS = (
        "name",
        "driver",
        "url",
        "username",
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
    )

    def __init__(self, *args, user, pool=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tenant"] = PoolTenantField(user=user)
        self.fields["import_tenant"] = forms.ModelChoiceField(
            queryset=tenants_for(user),
            required=False,
            label="Tenant of found VMs",
            help_text=Pool._meta.get_field("import_tenant").help_text,
        )
        self.order_fields(
            [
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
            ]
        )
        if pool is None or not pool.password:
            del self.fields["clear_password"]
        else:
            self.fields["password"].help_text = "A password is stored; leave empty to keep it."

    @classmethod
    def initial_for(cls, pool):
        initial = {name: getattr(pool, name) for name in cls.FIELDS if "tenant" not in name}
        initial["tenant"] = pool.tenant_id
        initial["import_tenant"] = pool.import_tenant_id
        return initial

    def values(self, *, changed_only=False):
        """The service's keyword arguments: `password` only when it is set or cleared."""
        names = self.changed_data if changed_only else self.FIELDS
        data = {name: self.cleaned_data[name] for name in names if name in self.FIELDS}
        if self.cleaned_data.get("clear_password"):
            data["password"] = ""
        elif self.cleaned_data.get("password"):
            data["password"] = self.cleaned_data["password"]
        return data


class PoolFilterForm(forms.Form):
    """The filters of the pool list; PoolFilterSet does the filtering."""

    driver = forms.ChoiceField(required=False, choices=[("", "any"), *Pool.Driver.choices])
    tenant = forms.ChoiceField(required=False)
    shared = forms.ChoiceField(
        required=False, label="Shared", choices=[("", "any"), ("true", "yes"), ("false", "no")]
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tenant"].choices = [("", "any")] + [
            (tenant.slug, tenant.name) for tenant in tenants_for(user)
        ]


class VmFilterForm(forms.Form):
    """The filters of the VM list; VmFilterSet does the filtering (the search box covers the
    host name)."""

    pool = forms.ChoiceField(required=False)
    state = forms.ChoiceField(required=False, choices=[("", "any"), *Vm.State.choices])
    power_state = forms.ChoiceField(
        required=False, label="Power", choices=[("", "any"), *Vm.PowerState.choices]
    )
    tenant = forms.ChoiceField(required=False)

    def __init__(self, *args, pools, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["pool"].choices = [("", "any")] + [(pool.pk, pool.name) for pool in pools]
        self.fields["tenant"].choices = [("", "any")] + [
            (tenant.slug, tenant.name) for tenant in tenants_for(user)
        ]


class VmBulkForm(forms.Form):
    """A power action on the VMs selected in the list; `confirm` is set by the confirmation
    page."""

    action = forms.ChoiceField(
        choices=[(name, services.VM_ACTIONS[name][1]) for name in BULK_POWER_ACTIONS]
    )
    ids = forms.TypedMultipleChoiceField(coerce=int, choices=())
    confirm = forms.BooleanField(required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Any id is accepted here; which of them the user may operate is the view's business.
        self.fields["ids"].valid_value = lambda value: str(value).isdigit()


class PoolChoiceForm(forms.Form):
    """Step one of a new VM: the pool it goes to."""

    pool = forms.ModelChoiceField(queryset=Pool.objects.none(), empty_label=None)

    def __init__(self, *args, pools, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["pool"].queryset = pools


class VmCreateForm(forms.Form):
    """Step two of a new VM: what it is made of, out of what the pool offers."""

    name = forms.CharField(max_length=253, help_text="The host name; the inventory server's too.")
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.none(), empty_label=None)
    template = forms.ModelChoiceField(queryset=Pool.objects.none(), empty_label=None)
    storage = forms.ModelChoiceField(
        queryset=Pool.objects.none(),
        required=False,
        empty_label="The template's (or the pool's default)",
    )
    networks = forms.ModelMultipleChoiceField(
        queryset=Pool.objects.none(),
        required=False,
        help_text="One network interface on each; the portal assigns the MAC addresses.",
    )
    vcpus = forms.IntegerField(min_value=1, max_value=512, initial=1, label="VCPUs")
    memory_bytes = SizeField(label="Memory", initial="1G", help_text="e.g. 2G, 512M")
    disk_bytes = SizeField(
        label="Disk",
        required=False,
        help_text="e.g. 20G; empty keeps the template's disk size.",
    )
    install_profile = forms.ModelChoiceField(
        queryset=Profile.objects.none(),
        required=False,
        empty_label="None: boot the template's system",
        help_text="Installs the VM through the network (PXE) with this deploy profile.",
    )
    start = forms.BooleanField(required=False, initial=True, label="Start after creation")

    def __init__(self, *args, user, pool, **kwargs):
        super().__init__(*args, **kwargs)
        tenants = tenants_for(user)
        if pool.tenant_id is not None:
            tenants = tenants.filter(pk=pool.tenant_id)
        self.fields["tenant"].queryset = tenants
        self.fields["template"].queryset = pool.templates.order_by("name")
        self.fields["storage"].queryset = pool.storage.order_by("name")
        self.fields["storage"].label_from_instance = _storage_label
        self.fields["networks"].queryset = pool.networks.order_by("name")
        self.fields["networks"].label_from_instance = lambda network: network.name
        self.fields["template"].label_from_instance = lambda template: template.name
        if user.has_perm("virt.install_vm"):
            self.fields["install_profile"].queryset = profiles_for(user)
        else:
            del self.fields["install_profile"]


def _storage_label(storage):
    free = human_size(storage.free_bytes)
    return f"{storage.name} ({free} free of {human_size(storage.size_bytes)})"


class VmActionForm(forms.Form):
    action = forms.ChoiceField(
        choices=[(name, label) for name, (_, label) in services.VM_ACTIONS.items()]
    )


class InstallForm(forms.Form):
    profile = forms.ModelChoiceField(queryset=Profile.objects.none(), empty_label=None)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["profile"].queryset = profiles_for(user)


class MigrateForm(forms.Form):
    host = forms.ModelChoiceField(queryset=Pool.objects.none(), empty_label=None)

    def __init__(self, *args, vm, **kwargs):
        super().__init__(*args, **kwargs)
        hosts = vm.pool.hosts.order_by("name")
        if vm.host_id is not None:
            hosts = hosts.exclude(pk=vm.host_id)
        self.fields["host"].queryset = hosts
        self.fields["host"].label_from_instance = lambda host: host.name


class DestroyForm(forms.Form):
    confirm = forms.CharField(
        max_length=253,
        label="Host name",
        widget=forms.TextInput(attrs={"autocomplete": "off", "class": "mono"}),
        help_text="Type the VM's host name to confirm.",
    )

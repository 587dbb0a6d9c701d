"""Forms of the server pages. They only parse input: inventory.services normalises, validates and
writes, and its field errors are put back on these forms (add_service_errors)."""

import json

from django import forms
from django.core.exceptions import ValidationError

from dcportal import rbac
from dcportal.forms import SecretFormField
from dcportal.models import Credential, Tenant
from inventory import attrquery, power_services
from inventory.models import Bmc, Rack, Server

# Power actions offered as buttons and bulk actions (sensors are for the CLI and the API).
POWER_ACTIONS = (
    ("status", "Power status"),
    ("on", "Power on"),
    ("off", "Power off"),
    ("softoff", "Soft off"),
    ("cycle", "Power cycle"),
    ("reset", "Reset"),
    ("bootdev-pxe", "PXE boot once"),
)
# Power actions that interrupt a running machine: their buttons ask for confirmation.
DISRUPTIVE_POWER_ACTIONS = frozenset({"off", "softoff", "cycle", "reset"})
POWER_PREFIX = "power:"
BULK_ACTIONS = (
    ("status", "Set status"),
    ("tag", "Add tags"),
    ("delete", "Delete"),
    # A status check changes nothing: it stays a button of the server page, so the list's
    # bulk bar remains for those who may change servers.
    *((POWER_PREFIX + value, label) for value, label in POWER_ACTIONS if value != "status"),
)


def tenants_for(user):
    """The tenants a user may place servers in (every tenant for an admin)."""
    return rbac.restrict(Tenant.objects.all(), user, "view").order_by("name")


def add_service_errors(form, exc: ValidationError):
    """Show a service's ValidationError on the form: on its field when the form has one."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


class ServerFilterForm(forms.Form):
    """The filter bar of the server list; ServerFilterSet does the validation."""

    q = forms.CharField(required=False, label="Search", help_text="host, serial, UUID, MAC, tag")
    status = forms.ChoiceField(required=False, choices=[("", "any"), *Server.Status.choices])
    kind = forms.ChoiceField(required=False, choices=[("", "any"), *Server.Kind.choices])
    tenant = forms.ChoiceField(required=False)
    vendor = forms.CharField(required=False)
    tag = forms.CharField(required=False)
    power = forms.ChoiceField(
        required=False, choices=[("", "any"), ("on", "on"), ("off", "off"), ("unknown", "unknown")]
    )
    attr = forms.CharField(
        required=False,
        label="Attributes",
        widget=forms.Textarea(
            attrs={"rows": 1, "cols": 30, "placeholder": "cpu.cores__gte=8", "class": "mono"}
        ),
        help_text="One expression per line, all must hold. Lookups: "
        + ", ".join(attrquery.LOOKUPS),
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tenant"].choices = [("", "any")] + [
            (tenant.slug, tenant.name) for tenant in tenants_for(user)
        ]


class TagsField(forms.CharField):
    def prepare_value(self, value):
        return ", ".join(value) if isinstance(value, list | tuple) else value


class AttributesField(forms.JSONField):
    def __init__(self, **kwargs):
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 10, "class": "mono"}))
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, str):
            return value
        return json.dumps(value or {}, indent=2, sort_keys=True)

    def to_python(self, value):
        value = super().to_python(value)
        return {} if value in (None, "") else value


class ServerForm(forms.Form):
    hostname = forms.CharField(max_length=253, help_text="Fully qualified; stored in lowercase.")
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.none())
    status = forms.ChoiceField(choices=Server.Status.choices, initial=Server.Status.NEW)
    kind = forms.ChoiceField(choices=Server.Kind.choices, initial=Server.Kind.PHYSICAL)
    uuid = forms.CharField(
        max_length=64, required=False, label="UUID", help_text="SMBIOS system UUID"
    )
    serial = forms.CharField(max_length=100, required=False)
    vendor = forms.CharField(max_length=100, required=False)
    model = forms.CharField(max_length=100, required=False)
    rack = forms.ModelChoiceField(queryset=Rack.objects.select_related("site"), required=False)
    position = forms.IntegerField(required=False, min_value=1, help_text="Lowest rack unit")
    tags = TagsField(required=False, help_text="Separated by commas or spaces")
    attributes = AttributesField(required=False, help_text="A JSON object of facts")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tenant"].queryset = tenants_for(user)

    @staticmethod
    def initial_for(server):
        return {
            "hostname": server.hostname,
            "tenant": server.tenant_id,
            "status": server.status,
            "kind": server.kind,
            "uuid": "" if server.uuid is None else str(server.uuid),
            "serial": server.serial,
            "vendor": server.vendor,
            "model": server.model,
            "rack": server.rack_id,
            "position": server.position,
            "tags": server.tags,
            "attributes": server.attributes,
        }

    def clean_attributes(self):
        value = self.cleaned_data["attributes"]
        if not isinstance(value, dict):
            raise ValidationError('Attributes must be a JSON object: {"key": value, …}.')
        return value

    def clean_uuid(self):
        return self.cleaned_data["uuid"].strip() or None


class BulkForm(forms.Form):
    """A bulk action on the selected servers; `confirm` is set by the confirmation page."""

    action = forms.ChoiceField(choices=BULK_ACTIONS)
    ids = forms.TypedMultipleChoiceField(coerce=int, choices=())
    status = forms.ChoiceField(required=False, choices=Server.Status.choices)
    tags = forms.CharField(required=False, max_length=500)
    confirm = forms.BooleanField(required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Any id is accepted here; which of them the user may touch is the service's business.
        self.fields["ids"].valid_value = lambda value: str(value).isdigit()

    def clean(self):
        data = super().clean()
        action = data.get("action") or ""
        data["power_action"] = (
            action.removeprefix(POWER_PREFIX) if action.startswith(POWER_PREFIX) else None
        )
        if data.get("action") == "status" and not data.get("status"):
            self.add_error("status", "Choose the new status.")
        if data.get("action") == "tag" and not (data.get("tags") or "").strip():
            self.add_error("tags", "Name the tags to add.")
        return data


class PowerForm(forms.Form):
    """A power button of the server page."""

    action = forms.ChoiceField(choices=[(name, name) for name in power_services.ACTIONS])
    persistent = forms.BooleanField(required=False)


class BmcForm(forms.Form):
    """A server's BMC. The password box never shows the stored password; left empty, it keeps
    it. inventory.power_services validates and writes."""

    driver = forms.ChoiceField(choices=Bmc.Driver.choices, initial=Bmc.Driver.IPMI)
    address = forms.CharField(
        max_length=255, required=False, help_text="Host name or IP address of the BMC."
    )
    port = forms.IntegerField(
        required=False, min_value=1, max_value=65535, help_text="Empty: the driver's default."
    )
    username = forms.CharField(max_length=150, required=False)
    password = SecretFormField(required=False)
    credential = forms.ModelChoiceField(
        queryset=Credential.objects.none(),
        required=False,
        help_text="Used when no username and password are set here.",
    )
    options = AttributesField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "class": "mono"}),
        help_text='Driver options as JSON, e.g. {"cipher_suite": 17} or '
        '{"system_id": "/redfish/v1/Systems/1", "verify_tls": true}.',
    )

    def __init__(self, *args, user, server, bmc=None, **kwargs):
        super().__init__(*args, **kwargs)
        credentials = rbac.restrict(Credential.objects.all(), user, "view")
        self.fields["credential"].queryset = credentials.filter(
            tenant_id=server.tenant_id, kind=Credential.Kind.PASSWORD
        )
        if bmc is not None and bmc.password:
            self.fields["password"].help_text = "A password is stored; leave empty to keep it."

    @staticmethod
    def initial_for(bmc):
        return {
            "driver": bmc.driver,
            "address": bmc.address,
            "port": bmc.port,
            "username": bmc.username,
            "credential": bmc.credential_id,
            "options": bmc.options,
        }

    def clean_options(self):
        value = self.cleaned_data["options"]
        if not isinstance(value, dict):
            raise ValidationError('Options must be a JSON object: {"key": value, …}.')
        return value

"""Forms of the deploy catalogue pages. They only parse input: deploy.catalogue validates and
writes, and its field errors are put back on these forms (add_service_errors)."""

import json

from django import forms
from django.core.exceptions import ValidationError

from dcportal import rbac
from dcportal.models import Tenant
from deploy.models import OperatingSystem, ServerDeploy, Template

SHARED = "Shared by every tenant"


def add_service_errors(form, exc: ValidationError):
    """Show a service's ValidationError on the form: on its field when the form has one."""
    if hasattr(exc, "error_dict"):
        for name, errors in exc.message_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


class TenantChoiceField(forms.ModelChoiceField):
    """The tenant of a catalogue object. Empty means shared, which only an admin may pick."""

    def __init__(self, *, user, **kwargs):
        shared = rbac.is_global(user)
        tenants = (
            Tenant.objects.all() if shared else Tenant.objects.filter(pk__in=rbac.tenant_ids(user))
        )
        super().__init__(
            queryset=tenants,
            required=not shared,
            empty_label=SHARED if shared else None,
            help_text="Empty: shared by every tenant (admins only)." if shared else "",
            **kwargs,
        )


def usable(queryset, user):
    """The catalogue objects the user may pick (their tenants' and the shared ones)."""
    return rbac.restrict(queryset.select_related("tenant"), user, "view")


class JSONFormField(forms.CharField):
    """A JSON value typed in a text box; `object_only` demands a JSON object."""

    def __init__(self, *, object_only=False, plain_text_ok=False, **kwargs):
        self.object_only = object_only
        self.plain_text_ok = plain_text_ok
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 6, "class": "mono"}))
        kwargs.setdefault("required", False)
        super().__init__(strip=False, **kwargs)

    def prepare_value(self, value):
        # Strings are what the user typed (or initial_for already wrote as text).
        if value is None or isinstance(value, str):
            return value
        return json.dumps(value, indent=2, sort_keys=True)

    def clean(self, value):
        text = super().clean(value)
        if not text.strip():
            return {} if self.object_only else ""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            if self.plain_text_ok:
                return text
            raise ValidationError(
                f"Line {exc.lineno}, column {exc.colno}: {exc.msg}.", code="invalid"
            ) from None
        if self.object_only and not isinstance(data, dict):
            raise ValidationError('A JSON object is needed, e.g. {"timezone": "UTC"}.')
        return data


class OperatingSystemForm(forms.Form):
    name = forms.CharField(max_length=100)
    family = forms.ChoiceField(choices=OperatingSystem.Family.choices)
    version = forms.CharField(max_length=32)
    architecture = forms.ChoiceField(
        choices=OperatingSystem.Architecture.choices,
        initial=OperatingSystem.Architecture.X86_64,
    )
    kernel = forms.CharField(
        max_length=500,
        help_text="http(s) URL, or a path inside the boot files directory (served at "
        "/boot/files/).",
    )
    initrd = forms.CharField(max_length=500, required=False)
    install_url = forms.CharField(
        max_length=500, required=False, label="Install URL", help_text="The install tree."
    )
    boot_args = forms.CharField(
        max_length=1000, required=False, help_text="Appended to the kernel command line."
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tenant"] = TenantChoiceField(user=user)

    @staticmethod
    def initial_for(os):
        return {name: getattr(os, name) for name in OperatingSystemForm.base_fields} | {
            "tenant": os.tenant_id
        }


class TemplateForm(forms.Form):
    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=Template.Kind.choices)
    content = forms.CharField(
        strip=False,
        widget=forms.Textarea(
            attrs={"rows": 28, "class": "mono", "style": "width: 100%", "spellcheck": "false"}
        ),
        help_text="Jinja2, rendered in the portal's sandbox: see the template reference.",
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tenant"] = TenantChoiceField(user=user)

    @staticmethod
    def initial_for(template):
        return {name: getattr(template, name) for name in TemplateForm.base_fields} | {
            "tenant": template.tenant_id
        }


class ProfileForm(forms.Form):
    name = forms.CharField(max_length=100)
    os = forms.ModelChoiceField(queryset=OperatingSystem.objects.none(), label="Operating system")
    install_template = forms.ModelChoiceField(queryset=Template.objects.none())
    ipxe_template = forms.ModelChoiceField(
        queryset=Template.objects.none(), required=False, empty_label="Shipped default"
    )
    pxelinux_template = forms.ModelChoiceField(
        queryset=Template.objects.none(), required=False, empty_label="Shipped default"
    )
    grub_template = forms.ModelChoiceField(
        queryset=Template.objects.none(), required=False, empty_label="Shipped default"
    )
    partitioning = forms.CharField(
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 6, "class": "mono"}),
        help_text="Given to templates as profile.partitioning.",
    )
    parameters = JSONFormField(
        object_only=True, help_text='A JSON object, e.g. {"timezone": "Europe/Paris"}.'
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["os"].queryset = usable(OperatingSystem.objects.all(), user)
        templates = usable(Template.objects.all(), user)
        self.fields["install_template"].queryset = templates.filter(kind__in=Template.INSTALL_KINDS)
        for kind in Template.BOOT_KINDS:
            self.fields[f"{kind}_template"].queryset = templates.filter(kind=kind)
        self.fields["tenant"] = TenantChoiceField(user=user)

    @staticmethod
    def initial_for(profile):
        names = [name for name in ProfileForm.base_fields if name not in ("parameters",)]
        initial = {
            name: getattr(profile, f"{name}_id")
            if name in ("os", "install_template", *(f"{k}_template" for k in Template.BOOT_KINDS))
            else getattr(profile, name)
            for name in names
        }
        return initial | {"parameters": profile.parameters, "tenant": profile.tenant_id}


class ParameterForm(forms.Form):
    name = forms.CharField(max_length=64)
    value = JSONFormField(
        plain_text_ok=True,
        help_text="JSON (a number, true, a list, an object…); other text is kept as a string. "
        'A string that looks like JSON needs quotes: "42".',
    )
    description = forms.CharField(max_length=200, required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tenant"] = TenantChoiceField(user=user)

    @staticmethod
    def initial_for(parameter):
        return {
            "name": parameter.name,
            "value": value_text(parameter.value),
            "description": parameter.description,
            "tenant": parameter.tenant_id,
        }


def value_text(value):
    """A parameter value as typed in the form: plain text stays plain unless it would read
    back as another JSON value ("42" is shown quoted), anything else is JSON."""
    if isinstance(value, str):
        try:
            json.loads(value)
        except json.JSONDecodeError:
            return value
    return json.dumps(value, indent=2, sort_keys=True)


class PreviewForm(forms.Form):
    server = forms.CharField(
        max_length=253, label="Server", help_text="Host name of the server to render for."
    )


# Filter bars of the lists (dcportal.tables): the FilterSet validates, these only draw the
# controls, and a choice never names another tenant's object.

ANY = ("", "any")
YES_NO = (ANY, ("true", "yes"), ("false", "no"))


def _tenant_choices(user):
    tenants = (
        Tenant.objects.all()
        if rbac.is_global(user)
        else Tenant.objects.filter(pk__in=rbac.tenant_ids(user))
    )
    return [ANY, *tenants.order_by("name").values_list("slug", "name")]


def catalogue_filter_form(filterset_class, data, *, user):
    """The filter bar of a catalogue list: its FilterSet's fields, the tenant picked among the
    user's own, yes/no questions as yes/no."""
    form = filterset_class(data).form
    form.fields["tenant"] = forms.ChoiceField(
        required=False, label="Tenant", choices=_tenant_choices(user)
    )
    form.fields["shared"] = forms.ChoiceField(required=False, label=SHARED, choices=YES_NO)
    if "kind" in form.fields:
        form.fields["kind"] = forms.ChoiceField(
            required=False, label="Kind", choices=[ANY, *Template.Kind.choices]
        )
    if "builtin" in form.fields:
        form.fields["builtin"] = forms.ChoiceField(
            required=False, label="Shipped with dcportal", choices=YES_NO
        )
    if "family" in form.fields:
        choices = OperatingSystem.Family.choices
        form.fields["family"] = forms.ChoiceField(
            required=False, label=form.fields["family"].label, choices=[ANY, *choices]
        )
    return form


class BuildFilterForm(forms.Form):
    """The filter bar of the builds list (deploy.filtersets.BuildFilterSet validates)."""

    state = forms.ChoiceField(
        required=False,
        choices=[("", "Building or failed"), ("all", "All"), *ServerDeploy.State.choices],
    )
    stage = forms.ChoiceField(
        required=False,
        choices=[ANY, *((v, label) for v, label in ServerDeploy.Stage.choices if v)],
    )
    next_boot = forms.ChoiceField(
        required=False, label="Next boot", choices=[ANY, *ServerDeploy.NextBoot.choices]
    )
    profile = forms.ChoiceField(required=False)

    def __init__(self, *args, profiles, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["profile"].choices = [ANY, *((p.name, p.name) for p in profiles)]

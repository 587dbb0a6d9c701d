"""Forms of the build pages: a server's profile and parameters, nodeset and rinstall."""

from django import forms

from dcportal import rbac
from deploy.models import Profile, ServerDeploy

BULK_ACTIONS = [
    ("install", "Install at next boot (nodeset install)"),
    ("rinstall", "Reinstall now (network boot + power cycle)"),
    ("localboot", "Boot the local disk (nodeset localboot)"),
    ("rescue", "Boot the rescue system (nodeset rescue)"),
    ("discovery", "Boot discovery (nodeset discovery)"),
]
NEEDS_PROFILE = ("install",)


def profiles_for(user, tenant_id=None):
    """Profiles the user may see, limited to those a server of `tenant_id` may use."""
    profiles = rbac.restrict(Profile.objects.select_related("os"), user, "view")
    if tenant_id is not None:
        profiles = profiles.usable_by_tenant(tenant_id)
    return profiles.order_by("name")


class DeployForm(forms.Form):
    profile = forms.ModelChoiceField(
        queryset=Profile.objects.none(), required=False, empty_label="(none)"
    )
    parameters = forms.JSONField(
        required=False,
        initial=dict,
        help_text='Template parameters of this server, a JSON object: {"timezone": "UTC"}. '
        "They override the profile's, the tenant's and the global ones.",
        widget=forms.Textarea(attrs={"rows": 5, "class": "mono"}),
    )

    def __init__(self, *args, user, server, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["profile"].queryset = profiles_for(user, server.tenant_id)

    def clean_parameters(self):
        value = self.cleaned_data["parameters"]
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise forms.ValidationError("Parameters must be a JSON object.")
        return value


class NodesetForm(forms.Form):
    next_boot = forms.ChoiceField(choices=ServerDeploy.NextBoot.choices)
    profile = forms.ModelChoiceField(queryset=Profile.objects.none(), required=False)

    def __init__(self, *args, user, tenant_id=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["profile"].queryset = profiles_for(user, tenant_id)


class RinstallForm(forms.Form):
    profile = forms.ModelChoiceField(
        queryset=Profile.objects.none(), required=False, empty_label="(its own)"
    )

    def __init__(self, *args, user, tenant_id=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["profile"].queryset = profiles_for(user, tenant_id)


class BulkDeployForm(forms.Form):
    ids = forms.TypedMultipleChoiceField(coerce=int, choices=(), required=True)
    deploy_action = forms.ChoiceField(choices=BULK_ACTIONS, required=False)
    profile = forms.ModelChoiceField(
        queryset=Profile.objects.none(), required=False, empty_label="(each server's own)"
    )
    confirm = forms.BooleanField(required=False)
    next = forms.CharField(required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["profile"].queryset = profiles_for(user)
        ids = self.data.getlist("ids") if hasattr(self.data, "getlist") else []
        self.fields["ids"].choices = [(value, value) for value in ids if str(value).isdigit()]

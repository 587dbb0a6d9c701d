"""Forms of the CA pages. They only parse input: ca.services checks and writes, and its field
errors are put back on these forms (add_service_errors)."""

from django import forms
from django.core.exceptions import ValidationError

from ca import crypto, selectors
from ca.models import CertificateRequest, CertificateStatus, KeyType, Profile, RevocationReason
from dcportal import rbac
from dcportal.forms import SecretFormField
from dcportal.models import Tenant

PEM_WIDGET = forms.Textarea(attrs={"rows": 8, "cols": 66, "class": "mono", "spellcheck": "false"})


class SecretTextarea(forms.Textarea):
    """A box for a pasted key that, like a password box, never sends it back to the browser."""

    def format_value(self, value):
        return None


def add_service_errors(form, exc: ValidationError):
    """Show a service's ValidationError on the form: on its field when the form has one."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


def tenants_for(user):
    return rbac.restrict(Tenant.objects.all(), user).order_by("name")


class PemUpload(forms.FileField):
    """A PEM file; its text goes where a pasted PEM would."""

    def clean(self, data, initial=None):
        upload = super().clean(data, initial)
        if not upload:
            return ""
        raw = upload.read(crypto.MAX_PEM_CHARS + 1)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise ValidationError("This file is not PEM text.") from None


class AuthorityForm(forms.Form):
    name = forms.CharField(max_length=100)
    slug = forms.SlugField(
        max_length=50, help_text="Names its public files: /pki/<slug>.pem, .crt, .crl"
    )
    tenant = forms.ModelChoiceField(
        queryset=Tenant.objects.none(),
        required=False,
        empty_label="(shared by every tenant; admins only)",
    )
    parent = forms.ModelChoiceField(
        queryset=None, required=False, empty_label="(none: a root)", to_field_name="slug"
    )
    key_type = forms.ChoiceField(choices=KeyType.choices, initial="ec-p384")
    common_name = forms.CharField(max_length=64, required=False, help_text="Default: the name.")
    organization = forms.CharField(max_length=64, required=False)
    days = forms.IntegerField(
        min_value=1,
        max_value=36500,
        required=False,
        help_text="Validity; default 3650 days for a root, 1825 for an intermediate.",
    )
    path_length = forms.IntegerField(
        min_value=0, max_value=10, required=False, help_text="How many CAs may follow below."
    )
    default_validity_days = forms.IntegerField(min_value=1, max_value=3650, initial=365)
    crl_validity_hours = forms.IntegerField(min_value=1, max_value=8760, initial=168)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tenant"].queryset = tenants_for(user)
        self.fields["parent"].queryset = selectors.authorities_for(user).filter(
            revoked_at__isnull=True
        )


class AuthorityImportForm(forms.Form):
    name = forms.CharField(max_length=100)
    slug = forms.SlugField(max_length=50)
    tenant = forms.ModelChoiceField(
        queryset=Tenant.objects.none(),
        required=False,
        empty_label="(shared by every tenant; admins only)",
    )
    parent = forms.ModelChoiceField(
        queryset=None,
        required=False,
        empty_label="(not held here: self-signed, or its issuers follow in the chain)",
        to_field_name="slug",
    )
    certificate = forms.CharField(
        widget=PEM_WIDGET,
        required=False,
        help_text="PEM: its certificate, optionally followed by its issuers' certificates.",
    )
    certificate_file = PemUpload(required=False, label="…or a certificate file")
    private_key = SecretFormField(
        widget=SecretTextarea(attrs={"rows": 4, "cols": 66, "class": "mono"}),
        required=False,
        help_text="PEM private key; stored encrypted, never shown again.",
    )
    private_key_file = PemUpload(required=False, label="…or a key file")
    password = SecretFormField(required=False, help_text="If the key is encrypted.")
    default_validity_days = forms.IntegerField(min_value=1, max_value=3650, initial=365)
    crl_validity_hours = forms.IntegerField(min_value=1, max_value=8760, initial=168)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tenant"].queryset = tenants_for(user)
        self.fields["parent"].queryset = selectors.authorities_for(user)

    def clean(self):
        data = super().clean()
        data["certificate"] = data.get("certificate_file") or data.get("certificate") or ""
        data["private_key"] = data.get("private_key_file") or data.get("private_key") or ""
        if not data["certificate"]:
            self.add_error("certificate", "Paste the certificate or choose its file.")
        if not data["private_key"]:
            self.add_error("private_key", "Paste the private key or choose its file.")
        return data


class AuthorityEditForm(forms.Form):
    name = forms.CharField(max_length=100)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    default_validity_days = forms.IntegerField(min_value=1, max_value=3650)
    crl_validity_hours = forms.IntegerField(min_value=1, max_value=8760)


class RequestForm(forms.Form):
    authority = forms.ModelChoiceField(queryset=None, to_field_name="slug")
    server = forms.CharField(
        max_length=253,
        required=False,
        help_text="Host name of the server it is for: its own names need no approval.",
    )
    tenant = forms.ModelChoiceField(
        queryset=Tenant.objects.none(),
        required=False,
        empty_label="(the server's, or your only tenant)",
    )
    subject = forms.CharField(max_length=253, required=False, help_text="Without a server.")
    csr = forms.CharField(
        widget=PEM_WIDGET, required=False, label="CSR", help_text="PEM, made elsewhere."
    )
    csr_file = PemUpload(required=False, label="…or a CSR file")
    generate_key = forms.BooleanField(required=False, label="Generate the key and CSR here instead")
    key_type = forms.ChoiceField(choices=KeyType.choices, initial="ec-p256")
    names = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono"}),
        required=False,
        help_text="When generating: one name or address per line (default: the server's).",
    )
    profile = forms.ChoiceField(choices=Profile.choices, initial=Profile.SERVER)
    validity_days = forms.IntegerField(
        min_value=1, max_value=3650, required=False, help_text="Default: the authority's."
    )
    sign = forms.BooleanField(required=False, label="Sign at once")
    approve_names = forms.BooleanField(
        required=False, label="Approve names the server does not own"
    )

    def __init__(self, *args, user, can_sign, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["authority"].queryset = selectors.authorities_for(user).filter(
            revoked_at__isnull=True
        )
        self.fields["tenant"].queryset = tenants_for(user)
        if not can_sign:
            del self.fields["sign"]
            del self.fields["approve_names"]

    def clean(self):
        data = super().clean()
        data["csr"] = data.get("csr_file") or data.get("csr") or ""
        data["names"] = [line.strip() for line in data.get("names", "").splitlines()]
        data["names"] = [name for name in data["names"] if name]
        if data.get("generate_key") == bool(data["csr"]):
            self.add_error("csr", "Paste or upload a CSR, or tick “generate” (not both).")
        return data


class SignForm(forms.Form):
    approve_names = forms.BooleanField(
        required=False, label="Approve the names the server does not own"
    )


class RejectForm(forms.Form):
    reason = forms.CharField(max_length=300, required=False)


class RevokeForm(forms.Form):
    reason = forms.ChoiceField(choices=RevocationReason.choices)


class RenewForm(forms.Form):
    validity_days = forms.IntegerField(min_value=1, max_value=3650, required=False)
    approve_names = forms.BooleanField(required=False, label="Approve names no longer owned")
    revoke_old = forms.BooleanField(required=False, label="Revoke the old one (superseded)")


def _slug_choices(queryset):
    return [("", "any")] + [(obj.slug, obj.name) for obj in queryset]


class AuthorityFilterForm(forms.Form):
    """The filters of the authority list; AuthorityFilterSet does the filtering."""

    tenant = forms.ChoiceField(required=False)
    root = forms.ChoiceField(
        required=False, label="Root", choices=[("", "any"), ("true", "roots"), ("false", "below")]
    )
    key_type = forms.ChoiceField(
        required=False, label="Key", choices=[("", "any"), *KeyType.choices]
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tenant"].choices = _slug_choices(tenants_for(user))


class CertificateFilterForm(forms.Form):
    """The filters of the certificate list; CertificateFilterSet does the filtering (its `q`
    is the table's search box)."""

    status = forms.ChoiceField(required=False, choices=[("", "any"), *CertificateStatus.choices])
    expiring_within = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=3650,
        label="Expiring within (days)",
        widget=forms.NumberInput(attrs={"size": 5}),
    )
    authority = forms.ChoiceField(required=False)
    tenant = forms.ChoiceField(required=False)
    profile = forms.ChoiceField(required=False, choices=[("", "any"), *Profile.choices])

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["authority"].choices = _slug_choices(
            selectors.authorities_for(user).order_by("name")
        )
        self.fields["tenant"].choices = _slug_choices(tenants_for(user))


class RequestFilterForm(forms.Form):
    status = forms.ChoiceField(
        required=False, choices=[("", "any"), *CertificateRequest.Status.choices]
    )
    source = forms.ChoiceField(
        required=False, choices=[("", "any"), *CertificateRequest.Source.choices]
    )
    authority = forms.ChoiceField(required=False)
    tenant = forms.ChoiceField(required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["authority"].choices = _slug_choices(
            selectors.authorities_for(user).order_by("name")
        )
        self.fields["tenant"].choices = _slug_choices(tenants_for(user))


class CertificateBulkForm(forms.Form):
    """A bulk action on the certificates selected in the list; `confirm` is set by the
    confirmation page."""

    action = forms.ChoiceField(choices=[("revoke", "Revoke")])
    ids = forms.TypedMultipleChoiceField(coerce=int, choices=())
    reason = forms.ChoiceField(choices=RevocationReason.choices)
    confirm = forms.BooleanField(required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Any id is accepted here; which of them the user may revoke is the view's business.
        self.fields["ids"].valid_value = lambda value: str(value).isdigit()

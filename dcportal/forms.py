from django import forms

from dcportal.models import AuditEvent, Job


class SecretFormField(forms.CharField):
    """A password box that never shows the stored value; left empty on edit, it keeps it."""

    widget = forms.PasswordInput(render_value=False)

    def __init__(self, **kwargs):
        kwargs.setdefault("strip", False)
        super().__init__(**kwargs)


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100)
    expires = forms.DateTimeField(
        required=False,
        help_text="Optional, e.g. 2027-01-31 00:00",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    write = forms.BooleanField(
        required=False,
        initial=True,
        label="May write",
        help_text="Without it the token can only read.",
    )


class JobFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, choices=[("", "any")] + Job.Status.choices)
    queue = forms.CharField(required=False)
    kind = forms.CharField(required=False)


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False)
    action = forms.ChoiceField(required=False, choices=[("", "any")] + AuditEvent.Action.choices)
    object_type = forms.CharField(required=False, help_text="app_label.model")
    request_id = forms.CharField(required=False)


YES_NO_ANY = [("", "any"), ("true", "yes"), ("false", "no")]


class TokenFilterForm(forms.Form):
    active = forms.ChoiceField(required=False, choices=YES_NO_ANY, label="Not revoked")
    write = forms.ChoiceField(required=False, choices=YES_NO_ANY, label="May write")

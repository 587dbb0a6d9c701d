import datetime

import django_filters as filters
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField

from dcportal.models import ApiToken, AuditEvent, Credential, Job, Tenant


class UtcIsoDateTimeField(IsoDateTimeField):
    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        # Python accepts UTC offsets up to ±23:59, PostgreSQL only ±15:59: compare in UTC.
        try:
            return value.astimezone(datetime.UTC)
        except OverflowError:
            raise ValidationError("Date and time out of range.", code="overflow") from None


class IsoDateTimeFilter(filters.IsoDateTimeFilter):
    """An ISO 8601 date and time (offset or Z), any offset Python reads."""

    field_class = UtcIsoDateTimeField


class TenantFilterSet(filters.FilterSet):
    name = filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Tenant
        fields = ["name", "slug"]


class CredentialFilterSet(filters.FilterSet):
    name = filters.CharFilter(lookup_expr="icontains")
    tenant = filters.CharFilter(field_name="tenant__slug")

    class Meta:
        model = Credential
        fields = ["name", "tenant", "kind", "username"]


class ApiTokenFilterSet(filters.FilterSet):
    user = filters.CharFilter(field_name="user__username")
    active = filters.BooleanFilter(field_name="revoked", lookup_expr="isnull")

    class Meta:
        model = ApiToken
        fields = ["user", "active", "write"]


class AuditEventFilterSet(filters.FilterSet):
    actor = filters.CharFilter(field_name="actor_name")
    object_type = filters.CharFilter(method="filter_object_type", label="app_label.model")
    since = IsoDateTimeFilter(field_name="time", lookup_expr="gte")
    until = IsoDateTimeFilter(field_name="time", lookup_expr="lt")
    tenant = filters.CharFilter(field_name="tenant__slug")
    # By id, not a choice among every token: a choice would answer differently for another
    # user's token than for one that does not exist.
    token = filters.NumberFilter(field_name="token_id")

    class Meta:
        model = AuditEvent
        fields = [
            "actor",
            "action",
            "verb",
            "object_type",
            "object_id",
            "request_id",
            "via",
            "since",
            "until",
            "tenant",
            "token",
        ]

    def filter_object_type(self, queryset, name, value):
        app_label, _, model = value.lower().partition(".")
        return queryset.filter(content_type__app_label=app_label, content_type__model=model)


class JobFilterSet(filters.FilterSet):
    user = filters.CharFilter(field_name="user__username")
    since = IsoDateTimeFilter(field_name="created", lookup_expr="gte")
    tenant = filters.CharFilter(field_name="tenant__slug")

    class Meta:
        model = Job
        fields = ["kind", "queue", "status", "user", "since", "tenant", "object_id"]


class OwnTokenFilterSet(filters.FilterSet):
    """The portal's list of a user's own tokens (the view scopes it to the user)."""

    active = filters.BooleanFilter(field_name="revoked", lookup_expr="isnull", label="Not revoked")
    write = filters.BooleanFilter(label="May write")

    class Meta:
        model = ApiToken
        fields = ["active", "write"]

import django_filters as filters

from dcportal.models import ApiToken, AuditEvent, Credential, Job, Tenant


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
    since = filters.IsoDateTimeFilter(field_name="time", lookup_expr="gte")
    until = filters.IsoDateTimeFilter(field_name="time", lookup_expr="lt")
    tenant = filters.CharFilter(field_name="tenant__slug")

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
    since = filters.IsoDateTimeFilter(field_name="created", lookup_expr="gte")
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

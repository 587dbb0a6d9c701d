"""Filters for registration conflicts and enrolment tokens, shared by the API and the portal."""

import django_filters as filters
from django.db.models import Q
from django.utils import timezone

from dcportal.filtersets import IsoDateTimeFilter
from inventory.models import Conflict, EnrolmentToken


class ConflictFilterSet(filters.FilterSet):
    state = filters.ChoiceFilter(
        choices=[("open", "open"), ("resolved", "resolved")],
        method="filter_state",
        label="State",
    )
    kind = filters.ChoiceFilter(choices=Conflict.Kind.choices)
    tenant = filters.CharFilter(field_name="tenant__slug")
    server = filters.CharFilter(field_name="server__hostname")
    since = IsoDateTimeFilter(field_name="created", lookup_expr="gte")

    class Meta:
        model = Conflict
        fields = ["state", "kind", "tenant", "server", "since"]

    def filter_state(self, queryset, name, value):
        return queryset.filter(resolved__isnull=value == "open")


class EnrolmentTokenFilterSet(filters.FilterSet):
    name = filters.CharFilter(lookup_expr="icontains")
    tenant = filters.CharFilter(field_name="tenant__slug")
    active = filters.BooleanFilter(method="filter_active", label="Active")

    class Meta:
        model = EnrolmentToken
        fields = ["name", "tenant", "active"]

    def filter_active(self, queryset, name, value):
        active = Q(revoked__isnull=True) & (Q(expires__isnull=True) | Q(expires__gt=timezone.now()))
        return queryset.filter(active if value else ~active)

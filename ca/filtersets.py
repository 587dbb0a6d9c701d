"""django-filter classes of the CA, shared by the API lists and the portal pages."""

import django_filters as filters

from ca import crypto, selectors
from ca.models import (
    Authority,
    Certificate,
    CertificateRequest,
    CertificateStatus,
    KeyType,
    Profile,
)


class AuthorityFilterSet(filters.FilterSet):
    name = filters.CharFilter(lookup_expr="icontains")
    tenant = filters.CharFilter(field_name="tenant__slug", label="Tenant (slug)")
    shared = filters.BooleanFilter(field_name="tenant", lookup_expr="isnull", label="Shared")
    parent = filters.CharFilter(field_name="parent__slug", label="Parent (slug)")
    root = filters.BooleanFilter(field_name="parent", lookup_expr="isnull", label="Root")
    key_type = filters.ChoiceFilter(choices=KeyType.choices)

    class Meta:
        model = Authority
        fields = ["name", "slug", "tenant", "shared", "parent", "root", "key_type"]


class CertificateFilterSet(filters.FilterSet):
    q = filters.CharFilter(method="filter_q", label="Search")
    status = filters.ChoiceFilter(
        choices=CertificateStatus.choices, method="filter_status", label="Status"
    )
    expiring_within = filters.NumberFilter(
        method="filter_expiring",
        label="Expiring within (days)",
        min_value=0,
        max_value=3650,
        help_text="Not revoked, expiring within this many days (or expired), not yet renewed.",
    )
    authority = filters.CharFilter(field_name="authority__slug", label="Authority (slug)")
    tenant = filters.CharFilter(field_name="tenant__slug", label="Tenant (slug)")
    server = filters.CharFilter(field_name="server__hostname", label="Server (host name)")
    serial = filters.CharFilter(method="filter_serial", label="Serial (hex)")
    profile = filters.ChoiceFilter(choices=Profile.choices)

    class Meta:
        model = Certificate
        fields = [
            "q",
            "status",
            "expiring_within",
            "authority",
            "tenant",
            "server",
            "serial",
            "profile",
        ]

    def filter_q(self, queryset, name, value):
        return selectors.search(queryset, value)

    def filter_status(self, queryset, name, value):
        return selectors.with_status(queryset, value)

    def filter_expiring(self, queryset, name, value):
        return selectors.expiring(queryset, float(value))

    def filter_serial(self, queryset, name, value):
        try:
            return queryset.filter(serial=crypto.serial_hex(crypto.parse_serial(value)))
        except crypto.CryptoError:
            return queryset.none()


class CertificateRequestFilterSet(filters.FilterSet):
    status = filters.ChoiceFilter(choices=CertificateRequest.Status.choices)
    source = filters.ChoiceFilter(choices=CertificateRequest.Source.choices)
    authority = filters.CharFilter(field_name="authority__slug", label="Authority (slug)")
    tenant = filters.CharFilter(field_name="tenant__slug", label="Tenant (slug)")
    server = filters.CharFilter(field_name="server__hostname", label="Server (host name)")
    common_name = filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = CertificateRequest
        fields = ["status", "source", "authority", "tenant", "server", "common_name"]

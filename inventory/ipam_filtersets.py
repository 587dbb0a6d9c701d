"""django-filter classes for subnets, ranges and addresses: the API lists and the portal pages."""

import django_filters as filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import F, Func, IntegerField, Q, TextField
from django.db.models.functions import Cast

from inventory import ipam
from inventory.filtersets import InterfaceFilterSet
from inventory.models import IPAddress, IPRange, Subnet


class AddressFormField(forms.CharField):
    """An IPv4 or IPv6 address; a malformed one is a field error (a 400), never 'no filter'."""

    def clean(self, value):
        value = super().clean(value)
        if value in (None, ""):
            return value
        try:
            return ipam.as_address(value, "value")
        except ValidationError:
            raise ValidationError(f"{value!r} is not an IP address.", code="invalid") from None


class AddressFilter(filters.CharFilter):
    field_class = AddressFormField


class SubnetFilterSet(filters.FilterSet):
    tenant = filters.CharFilter(field_name="tenant__slug", label="Tenant (slug)")
    vlan = filters.NumberFilter(label="VLAN")
    family = filters.ChoiceFilter(
        choices=[("4", "IPv4"), ("6", "IPv6")],
        method="filter_family",
        label="Family",
        empty_label="any",
    )
    contains = AddressFilter(method="filter_contains", label="Contains address")
    q = filters.CharFilter(method="filter_q", label="Search")

    class Meta:
        model = Subnet
        fields = ["q", "tenant", "vlan", "family", "contains"]

    def filter_family(self, queryset, name, value):
        family = Func(F("network"), function="family", output_field=IntegerField())
        return queryset.annotate(_family=family).filter(_family=int(value))

    def filter_contains(self, queryset, name, value):
        return queryset.filter(ipam.containing(value))

    def filter_q(self, queryset, name, value):
        value = value.strip()
        return queryset.annotate(_network=Cast("network", TextField())).filter(
            Q(name__icontains=value)
            | Q(description__icontains=value)
            | Q(domain__icontains=value)
            | Q(_network__startswith=value)
        )


class IPRangeFilterSet(filters.FilterSet):
    subnet = filters.NumberFilter(field_name="subnet_id", label="Subnet (id)")
    kind = filters.ChoiceFilter(choices=IPRange.Kind.choices, empty_label="any")

    class Meta:
        model = IPRange
        fields = ["subnet", "kind"]


class IPAddressFilterSet(filters.FilterSet):
    subnet = filters.NumberFilter(field_name="subnet_id", label="Subnet (id)")
    status = filters.ChoiceFilter(choices=IPAddress.Status.choices, empty_label="any")
    interface = filters.NumberFilter(field_name="interface_id", label="Interface (id)")
    server = filters.CharFilter(field_name="interface__server__hostname", label="Server hostname")
    tenant = filters.CharFilter(field_name="subnet__tenant__slug", label="Tenant (slug)")
    q = filters.CharFilter(method="filter_q", label="Search")

    class Meta:
        model = IPAddress
        fields = ["q", "subnet", "status", "interface", "server", "tenant"]

    def filter_q(self, queryset, name, value):
        value = value.strip()
        host = Func(F("address"), function="host", output_field=TextField())
        return queryset.annotate(_host=host).filter(
            Q(dns_name__icontains=value)
            | Q(description__icontains=value)
            | Q(_host__startswith=value)
        )


class SubnetAddressFilterSet(filters.FilterSet):
    """The address table of a subnet page (the view gives it that subnet's addresses)."""

    status = filters.ChoiceFilter(choices=IPAddress.Status.choices, empty_label="any")
    server = filters.CharFilter(
        field_name="interface__server__hostname", lookup_expr="icontains", label="Server"
    )
    q = filters.CharFilter(method="filter_q", label="Search")

    class Meta:
        model = IPAddress
        fields = ["q", "status", "server"]

    filter_q = IPAddressFilterSet.filter_q


class InterfaceTableFilterSet(InterfaceFilterSet):
    """The portal's interface list: the API's filters plus a free-text search."""

    q = filters.CharFilter(method="filter_q", label="Search")

    class Meta(InterfaceFilterSet.Meta):
        fields = ["q", *InterfaceFilterSet.Meta.fields]

    def filter_q(self, queryset, name, value):
        # A MAC is searched as text: a part of one is not a MAC the field would accept.
        value = value.strip()
        return queryset.annotate(_mac=Cast("mac", TextField())).filter(
            Q(name__icontains=value)
            | Q(server__hostname__icontains=value)
            | Q(description__icontains=value)
            | Q(_mac__icontains=value.lower())
        )

"""django-filter classes for servers, interfaces, sites and racks: the API lists, the portal
pages and `manage.py nodels` filter through the same classes, so `attr` means the same everywhere.
"""

import re

import django_filters as filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Exists, F, OuterRef, Q, Value
from django.db.models.functions import Replace
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from inventory import attrquery
from inventory.fields import normalise_mac
from inventory.models import Interface, Rack, Server, Site

SERVER_ORDERING = ("hostname", "created", "updated", "status", "vendor", "model", "kind")
_MAC_LIKE = re.compile(r"[0-9a-f]{2}([:.-]?[0-9a-f]{1,2})+")


class AttrFormField(forms.Field):
    """Every `attr` value of the query (repeat the parameter to AND them; in a text box, one
    expression per line), parsed into attrquery conditions. Nonsense is a field error."""

    widget = forms.MultipleHiddenInput  # reads all values of the parameter, not the last one

    def to_python(self, value):
        if value in (None, "", []):
            return []
        values = [value] if isinstance(value, str) else list(value)
        return [line.strip() for text in values for line in str(text).splitlines() if line.strip()]

    def clean(self, value):
        return attrquery.parse_all(self.to_python(value))


@extend_schema_field(serializers.ListField(child=serializers.CharField()))
class AttrFilter(filters.Filter):
    field_class = AttrFormField

    def filter(self, queryset, value):
        if not value:
            return queryset
        return queryset.filter(attrquery.to_q(value, field=self.field_name))


class MacFormField(forms.CharField):
    def clean(self, value):
        value = super().clean(value)
        return normalise_mac(value) if value else value


@extend_schema_field(serializers.CharField())
class MacFilter(filters.CharFilter):
    field_class = MacFormField


POWER_CHOICES = (("on", "on"), ("off", "off"), ("unknown", "unknown"))
# How a VM's hypervisor power states count as a BMC's on and off.
VM_ON = ("running", "paused")
VM_OFF = ("halted", "suspended")


class ServerFilterSet(filters.FilterSet):
    q = filters.CharFilter(method="filter_q", label="Search")
    hostname = filters.CharFilter(method="filter_hostname", label="Host name")
    uuid = filters.UUIDFilter()
    serial = filters.CharFilter()
    status = filters.MultipleChoiceFilter(choices=Server.Status.choices)
    kind = filters.ChoiceFilter(choices=Server.Kind.choices)
    tenant = filters.CharFilter(field_name="tenant__slug", label="Tenant (slug)")
    vendor = filters.CharFilter(lookup_expr="icontains")
    model = filters.CharFilter(lookup_expr="icontains")
    tag = filters.CharFilter(method="filter_tag", label="Tag")
    site = filters.CharFilter(field_name="rack__site__slug", label="Site (slug)")
    rack = filters.CharFilter(method="filter_rack", label="Rack (id or name)")
    mac = MacFilter(method="filter_mac", label="MAC address")
    power = filters.ChoiceFilter(
        choices=POWER_CHOICES,
        method="filter_power",
        label="Power",
        help_text="The last known power state: the BMC's, or the hypervisor's for a VM.",
    )
    bmc_power = filters.ChoiceFilter(
        field_name="bmc__power_state",
        choices=POWER_CHOICES,
        label="BMC power",
        help_text="The power state last read from the server's BMC.",
    )
    attr = AttrFilter(
        field_name="attributes",
        label="Attributes",
        help_text="Repeatable, all must hold: cpu.cores__gte=8, vendor=Dell, rack__exists, "
        'disks__contains={"model": "X"}, role__in=web,db. Lookups: '
        + " ".join(attrquery.LOOKUPS)
        + ".",
    )
    ordering = filters.OrderingFilter(fields=SERVER_ORDERING)

    class Meta:
        model = Server
        fields = [
            "q",
            "hostname",
            "uuid",
            "serial",
            "status",
            "kind",
            "tenant",
            "vendor",
            "model",
            "tag",
            "site",
            "rack",
            "mac",
            "power",
            "bmc_power",
            "attr",
        ]

    def filter_q(self, queryset, name, value):
        """Host name, serial, UUID, tag or MAC (any spelling, or a part of one)."""
        text = value.strip().lower()
        if not text:
            return queryset
        q = (
            Q(hostname__icontains=text)
            | Q(serial__icontains=text)
            | Q(uuid__icontains=text)
            | Q(tags__contains=[text])
        )
        if _MAC_LIKE.fullmatch(text):
            digits = re.sub(r"[^0-9a-f]", "", text)
            macs = Interface.objects.annotate(
                digits=Replace(F("mac"), Value(":"), Value(""))
            ).filter(server=OuterRef("pk"), digits__contains=digits)
            q |= Exists(macs)
        return queryset.filter(q)

    def filter_hostname(self, queryset, name, value):
        return queryset.filter(hostname=value.strip().lower().rstrip("."))

    def filter_tag(self, queryset, name, value):
        return queryset.filter(tags__contains=[value.strip().lower()])

    def filter_rack(self, queryset, name, value):
        value = value.strip()
        return (
            queryset.filter(rack_id=int(value))
            if value.isdigit()
            else queryset.filter(rack__name=value)
        )

    def filter_power(self, queryset, name, value):
        on = Q(bmc__power_state="on") | Q(vm__power_state__in=VM_ON)
        off = Q(bmc__power_state="off") | Q(vm__power_state__in=VM_OFF)
        if value == "on":
            return queryset.filter(on)
        if value == "off":
            return queryset.filter(off)
        return queryset.exclude(on | off)

    def filter_mac(self, queryset, name, value):
        return queryset.filter(Exists(Interface.objects.filter(server=OuterRef("pk"), mac=value)))


class InterfaceFilterSet(filters.FilterSet):
    server = filters.NumberFilter(field_name="server_id", label="Server id")
    hostname = filters.CharFilter(field_name="server__hostname", label="Server host name")
    tenant = filters.CharFilter(field_name="server__tenant__slug", label="Tenant (slug)")
    mac = MacFilter()
    attr = AttrFilter(field_name="server__attributes", label="Server attributes")

    class Meta:
        model = Interface
        fields = ["server", "hostname", "tenant", "name", "mac", "boot", "attr"]


class SiteFilterSet(filters.FilterSet):
    name = filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Site
        fields = ["name", "slug"]


class RackFilterSet(filters.FilterSet):
    site = filters.CharFilter(field_name="site__slug", label="Site (slug)")
    name = filters.CharFilter()

    class Meta:
        model = Rack
        fields = ["site", "name"]


def filter_servers(queryset, params):
    """Apply ServerFilterSet to `params` (a dict or QueryDict); ValidationError on bad input.
    For the CLI and other callers that are not a view."""
    filterset = ServerFilterSet(params, queryset=queryset)
    if not filterset.is_valid():
        raise ValidationError(
            {name: [str(m) for m in messages] for name, messages in filterset.errors.items()}
        )
    return filterset.qs

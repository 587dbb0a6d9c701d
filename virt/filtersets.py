"""django-filter classes for pools, what the sync reads from them, and VMs: the API lists and
the portal pages filter through the same classes.

A pool is named by its name or its id; a host by its name or the hypervisor's UUID.
"""

import django_filters as filters
from django.db.models import Q

from virt.models import Host, Network, Pool, StorageRepository, Vm, VmTemplate


def pool_q(value, prefix=""):
    """Pools (or objects through `prefix`, e.g. "pool__") whose name or id is `value`."""
    value = value.strip()
    condition = Q(**{f"{prefix}name": value})
    if value.isdigit():
        condition |= Q(**{f"{prefix}pk": int(value)})
    return condition


def host_q(value, prefix="host__"):
    value = value.strip()
    return Q(**{f"{prefix}name": value}) | Q(**{f"{prefix}uuid": value})


class PoolFilterSet(filters.FilterSet):
    name = filters.CharFilter(lookup_expr="icontains")
    driver = filters.ChoiceFilter(choices=Pool.Driver.choices)
    tenant = filters.CharFilter(field_name="tenant__slug", label="Tenant (slug)")
    shared = filters.BooleanFilter(
        field_name="tenant", lookup_expr="isnull", label="Shared by every tenant"
    )

    class Meta:
        model = Pool
        fields = ["name", "driver", "tenant", "shared"]


class PoolObjectFilterSet(filters.FilterSet):
    """What every synced object filters on: its pool, a name part, the hypervisor's UUID."""

    pool = filters.CharFilter(method="filter_pool", label="Pool (name or id)")
    name = filters.CharFilter(lookup_expr="icontains")
    uuid = filters.CharFilter()

    def filter_pool(self, queryset, name, value):
        return queryset.filter(pool_q(value, "pool__"))


class HostFilterSet(PoolObjectFilterSet):
    class Meta:
        model = Host
        fields = ["pool", "name", "uuid", "enabled"]


class VmTemplateFilterSet(PoolObjectFilterSet):
    class Meta:
        model = VmTemplate
        fields = ["pool", "name", "uuid"]


class NetworkFilterSet(PoolObjectFilterSet):
    class Meta:
        model = Network
        fields = ["pool", "name", "uuid"]


class StorageRepositoryFilterSet(PoolObjectFilterSet):
    class Meta:
        model = StorageRepository
        fields = ["pool", "name", "uuid", "shared"]


class VmFilterSet(filters.FilterSet):
    pool = filters.CharFilter(method="filter_pool", label="Pool (name or id)")
    state = filters.MultipleChoiceFilter(choices=Vm.State.choices)
    power_state = filters.MultipleChoiceFilter(choices=Vm.PowerState.choices)
    tenant = filters.CharFilter(field_name="server__tenant__slug", label="Tenant (slug)")
    hostname = filters.CharFilter(
        field_name="server__hostname", lookup_expr="icontains", label="Host name"
    )
    host = filters.CharFilter(method="filter_host", label="Host (name or UUID)")
    uuid = filters.CharFilter()

    class Meta:
        model = Vm
        fields = ["pool", "state", "power_state", "tenant", "hostname", "host", "uuid"]

    def filter_pool(self, queryset, name, value):
        return queryset.filter(pool_q(value, "pool__"))

    def filter_host(self, queryset, name, value):
        return queryset.filter(host_q(value))

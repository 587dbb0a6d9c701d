"""Reads of the virt app, scoped to the user; lists load what they show up front, so the
number of queries stays the same whatever the number of rows."""

from django.db.models import Count, Prefetch

from dcportal import rbac
from virt.models import Pool, Vif, Vm


def pools_for(user, action="view"):
    pools = Pool.objects.select_related("tenant", "import_tenant", "sync_job").annotate(
        host_count=Count("hosts", distinct=True), vm_count=Count("vms", distinct=True)
    )
    return rbac.restrict(pools, user, action)


def vms_for(user, action="view"):
    vifs = Vif.objects.select_related("interface", "network").order_by("device")
    vms = Vm.objects.select_related(
        "server__tenant", "pool", "host", "template", "storage", "install_profile", "job"
    ).prefetch_related(Prefetch("vifs", queryset=vifs))
    return rbac.restrict(vms, user, action)


def pool_objects(model, user, action="view"):
    """Hosts, templates, networks or storage repositories of the pools the user sees."""
    return rbac.restrict(model.objects.select_related("pool"), user, action)

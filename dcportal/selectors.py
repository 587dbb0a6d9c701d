"""Reads of platform objects scoped to a user, beyond what restrict() alone expresses."""

from datetime import timedelta

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.db.models import (
    BigIntegerField,
    Count,
    Exists,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from dcportal import rbac
from dcportal.models import AuditEvent, Job


def jobs_for(user):
    """Jobs in the user's tenants (with view_job), plus the jobs the user started."""
    jobs = Job.objects.select_related("user", "tenant", "content_type")
    if not user.is_authenticated:
        return jobs.none()
    if not user.has_perm("dcportal.view_job"):
        return jobs.filter(user=user)
    if rbac.is_global(user):
        return jobs
    return jobs.filter(Q(tenant_id__in=rbac.tenant_ids(user)) | Q(user=user))


def audit_events_for(user):
    """Events about objects the user can see: types they may view, in their tenants."""
    events = AuditEvent.objects.select_related("content_type")
    if not user.has_perm("dcportal.view_auditevent"):
        return events.none()
    if rbac.is_global(user):
        return events
    tenant_owned, shared = [], []
    for model in apps.get_models():
        if not hasattr(model, "tenancy") or not user.has_perm(rbac.permission_code(model, "view")):
            continue
        content_type = ContentType.objects.get_for_model(model, for_concrete_model=False)
        (shared if model.tenancy is None else tenant_owned).append(content_type.pk)
    return events.filter(
        Q(content_type_id__in=tenant_owned, tenant_id__in=rbac.tenant_ids(user))
        | Q(content_type_id__in=shared)
    )


# The dashboard ----------------------------------------------------------------------------------
# Each figure is one aggregate query over a queryset scoped by rbac.restrict, so the dashboard
# costs the same number of queries whatever the size of the fleet, and a tenant's figures never
# include another tenant's rows. A section the user may not view is None.


def _model(label):
    return apps.get_model(label)


def _grouped(queryset, field):
    """{value of `field`: number of rows} in one GROUP BY query."""
    return dict(queryset.order_by().values_list(field).annotate(n=Count("pk")))


def job_counts(user, since):
    jobs = jobs_for(user).order_by()
    return jobs.aggregate(
        running=Count("pk", filter=Q(status=Job.Status.RUNNING)),
        queued=Count("pk", filter=Q(status=Job.Status.QUEUED)),
        failed_24h=Count("pk", filter=Q(status=Job.Status.FAILED, finished__gte=since)),
    )


def fleet_counts(user):
    """Servers by status and by kind: {"status": {...}, "kind": {...}}."""
    if not user.has_perm("inventory.view_server"):
        return None
    servers = rbac.restrict(_model("inventory.Server").objects.all(), user)
    by_status, by_kind = {}, {}
    rows = servers.order_by().values_list("status", "kind").annotate(n=Count("pk"))
    for status, kind, count in rows:
        by_status[status] = by_status.get(status, 0) + count
        by_kind[kind] = by_kind.get(kind, 0) + count
    return {"status": by_status, "kind": by_kind}


def build_counts(user, since):
    """Builds running now, failed (and how many of those failed since `since`)."""
    if not user.has_perm("deploy.view_serverdeploy"):
        return None
    model = _model("deploy.ServerDeploy")
    rows = rbac.restrict(model.objects.all(), user).order_by()
    return rows.aggregate(
        building=Count("pk", filter=Q(state=model.State.BUILDING)),
        failed=Count("pk", filter=Q(state=model.State.FAILED)),
        failed_recent=Count("pk", filter=Q(state=model.State.FAILED, finished__gte=since)),
    )


def bmc_power_counts(user):
    if not user.has_perm("inventory.view_bmc"):
        return None
    return _grouped(rbac.restrict(_model("inventory.Bmc").objects.all(), user), "power_state")


def vm_power_counts(user):
    if not user.has_perm("virt.view_vm"):
        return None
    return _grouped(rbac.restrict(_model("virt.Vm").objects.all(), user), "power_state")


def certificate_counts(user, days, now=None):
    """Valid, revoked, and expiring within `days` days (or expired) without a live renewal:
    the same rows as ca.selectors.expiring, counted in one query."""
    if not user.has_perm("ca.view_certificate"):
        return None
    model = _model("ca.Certificate")
    now = now or timezone.now()
    live_renewal = model.objects.filter(
        renewal_of=OuterRef("pk"), revoked_at__isnull=True, not_after__gt=now
    )
    rows = rbac.restrict(model.objects.all(), user).order_by()
    return rows.annotate(renewed=Exists(live_renewal)).aggregate(
        valid=Count("pk", filter=Q(revoked_at__isnull=True, not_after__gt=now)),
        revoked=Count("pk", filter=Q(revoked_at__isnull=False)),
        expiring=Count(
            "pk",
            filter=Q(
                revoked_at__isnull=True, not_after__lte=now + timedelta(days=days), renewed=False
            ),
        ),
    )


def _sum_of(queryset, field):
    """A correlated subquery: the sum of `field` over the rows of `queryset` in the pool."""
    sums = (
        queryset.filter(pool=OuterRef("pk"))
        .order_by()
        .values("pool")
        .annotate(total=Sum(field))
        .values("total")
    )
    return Coalesce(Subquery(sums), Value(0), output_field=BigIntegerField())


def _count_of(queryset):
    counts = (
        queryset.filter(pool=OuterRef("pk"))
        .order_by()
        .values("pool")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counts), Value(0), output_field=BigIntegerField())


def pool_capacity(user):
    """The pools the user sees with what the last sync read of them: hosts, memory
    (total and free, summed over hosts), storage (size and used, summed over repositories)
    and the number of VMs *the user sees* in it (a shared pool holds other tenants' VMs)."""
    if not user.has_perm("virt.view_pool"):
        return None
    pool, host = _model("virt.Pool"), _model("virt.Host")
    storage, vm = _model("virt.StorageRepository"), _model("virt.Vm")
    hosts = host.objects.all()
    return (
        rbac.restrict(pool.objects.all(), user)
        .annotate(
            host_count=_count_of(hosts),
            memory_total=_sum_of(hosts, "memory_total_bytes"),
            memory_free=_sum_of(hosts, "memory_free_bytes"),
            storage_size=_sum_of(storage.objects.all(), "size_bytes"),
            storage_used=_sum_of(storage.objects.all(), "used_bytes"),
            visible_vms=_count_of(rbac.restrict(vm.objects.all(), user)),
        )
        .order_by("name")
    )


def certificates_of_server(server, *, user):
    """The certificates the user may see that were issued for `server`: linked to it, or
    linked to no server and naming one of the names it owns (host name, qualified names,
    addresses) in its tenant. A certificate linked to another server stays with that one."""
    if not user.has_perm("ca.view_certificate"):
        return None
    from ca import autosign
    from ca import selectors as ca_selectors

    names = autosign.names_of_server(server.pk)
    by_name = Q(dns_names__overlap=sorted(names.dns_names)) | Q(
        ip_addresses__overlap=sorted(names.ip_addresses)
    )
    return (
        ca_selectors.certificates_for(user)
        .filter(Q(server=server) | Q(by_name, server__isnull=True, tenant_id=server.tenant_id))
        .order_by("-not_after", "-pk")
    )

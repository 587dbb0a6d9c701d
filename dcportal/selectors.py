"""Reads of platform objects scoped to a user, beyond what restrict() alone expresses."""

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.db.models import Q

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

"""Reads of the certificate authority, scoped to the user (dcportal.rbac.restrict)."""

from datetime import timedelta

from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from ca.models import Authority, Certificate, CertificateRequest
from dcportal import rbac


def authorities_for(user, action="view"):
    return rbac.restrict(
        Authority.objects.select_related("tenant", "parent", "crl").annotate(
            certificate_count=Count("certificates", distinct=True)
        ),
        user,
        action,
    )


def certificates_for(user, action="view"):
    return rbac.restrict(
        Certificate.objects.select_related("tenant", "authority", "server"), user, action
    )


def requests_for(user, action="view"):
    return rbac.restrict(
        CertificateRequest.objects.select_related(
            "tenant", "authority", "server", "requested_by", "decided_by"
        ),
        user,
        action,
    )


def pending_requests(user):
    return requests_for(user).filter(status=CertificateRequest.Status.PENDING)


def expiring(queryset, days, now=None):
    """Certificates of `queryset` that are not revoked, expire within `days` days (or have
    expired) and have no live renewal yet, soonest first."""
    now = now or timezone.now()
    live_renewal = Certificate.objects.filter(
        renewal_of=OuterRef("pk"), revoked_at__isnull=True, not_after__gt=now
    )
    return (
        queryset.filter(revoked_at__isnull=True, not_after__lte=now + timedelta(days=days))
        .annotate(renewed=Exists(live_renewal))
        .filter(renewed=False)
        .order_by("not_after", "id")
    )


def with_status(queryset, status, now=None):
    """valid / expired / revoked, as Certificate.status tells it."""
    now = now or timezone.now()
    if status == "revoked":
        return queryset.filter(revoked_at__isnull=False)
    if status == "expired":
        return queryset.filter(revoked_at__isnull=True, not_after__lte=now)
    if status == "valid":
        return queryset.filter(revoked_at__isnull=True, not_after__gt=now)
    return queryset


def search(queryset, text):
    text = text.strip()
    if not text:
        return queryset
    serial = text.lower().replace(":", "")
    return queryset.filter(
        Q(common_name__icontains=text)
        | Q(subject__icontains=text)
        | Q(dns_names__contains=[text.lower().rstrip(".")])
        | Q(serial=serial)
    )

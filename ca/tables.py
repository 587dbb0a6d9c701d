"""The CA's lists as portal tables (dcportal.tables): authorities, certificates (also as the
expiry report) and certificate requests."""

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from ca.filtersets import AuthorityFilterSet, CertificateFilterSet, CertificateRequestFilterSet
from ca.models import RevocationReason
from dcportal.tables import BulkAction, Column, Table


def authority_status(authority):
    if authority.revoked_at is not None:
        return "revoked"
    return "expired" if authority.not_after <= timezone.now() else "valid"


def authority_role(authority):
    return "hosts" if authority.slug == settings.CA_HOST_AUTHORITY else ""


def authority_crl(authority):
    crl = getattr(authority, "crl", None)
    if crl is None:
        return ""
    return f"#{crl.number}, next {timezone.localtime(crl.next_update):%Y-%m-%d %H:%M}"


def names_of(obj):
    return [*obj.dns_names, *obj.ip_addresses]


class AuthorityTable(Table):
    name = "ca-authorities"
    filterset_class = AuthorityFilterSet
    search_fields = ("name", "slug", "subject")
    default_sort = "name"
    empty_text = "No authorities match."
    row_template = "ca/_authority_row_actions.html"
    columns = (
        Column("name", "Name", sort="name", link=lambda a: reverse("ca:authority", args=[a.pk])),
        Column("slug", "Slug", sort="slug", cell="mono"),
        Column("status", "Status", value=authority_status, cell="badge"),
        Column("role", "Signs", value=authority_role, cell="badge"),
        Column(
            "parent",
            "Issued by",
            value=lambda a: a.parent.name if a.parent_id else "root",
        ),
        Column("tenant", "Tenant", value=lambda a: a.tenant.name if a.tenant_id else "shared"),
        Column("key_type", "Key", value="get_key_type_display", sort="key_type"),
        Column("not_after", "Valid until", sort="not_after"),
        Column("crl", "CRL", value=authority_crl),
        # Of a shared authority, only the certificates of the user's tenants are counted.
        Column("certificates", "Certificates", value="visible_certificates"),
        Column("subject", "Subject", default=False, cell="mono"),
        Column("fingerprint", "SHA-256", default=False, cell="mono"),
        Column("default_validity_days", "Issues for (days)", default=False),
        Column("crl_validity_hours", "CRL valid (h)", default=False),
    )


class CertificateTable(Table):
    name = "ca-certificates"
    filterset_class = CertificateFilterSet  # its `q` is the search box
    default_sort = "-not_after"
    empty_text = "No certificates match."
    columns = (
        Column(
            "common_name",
            "Common name",
            sort="common_name",
            link=lambda c: reverse("ca:certificate", args=[c.pk]),
        ),
        Column("subject", "Subject", default=False),
        Column("names", "Names", value=names_of, cell="mono"),
        Column("serial", "Serial", sort="serial", cell="mono"),
        Column("authority", "Authority", value="authority.name", sort="authority__name"),
        Column("status", "Status", cell="badge"),
        Column("not_after", "Not after", sort="not_after"),
        Column("profile", "Profile", value="get_profile_display", sort="profile"),
        Column("tenant", "Tenant", value="tenant.name", sort="tenant__name"),
        Column("server", "Server", value="server.hostname", default=False),
        Column("not_before", "Not before", sort="not_before", default=False),
        Column("key_type", "Key", value="get_key_type_display", default=False),
        Column("revoked_at", "Revoked", default=False),
        Column("fingerprint", "SHA-256", default=False, cell="mono"),
    )

    @property
    def bulk_actions(self):
        return [
            BulkAction(
                "revoke",
                "Revoke",
                reverse("ca:certificate-bulk"),
                permission="ca.revoke_certificate",
                fields=(("reason", "Reason", RevocationReason.choices),),
                danger=True,
            )
        ]


class ExpiringCertificateTable(CertificateTable):
    """The expiry report: the certificate list with `expiring_within`, soonest first."""

    name = "ca-expiring"
    default_sort = "not_after"
    empty_text = "Nothing expires in that time."


class RequestTable(Table):
    name = "ca-requests"
    filterset_class = CertificateRequestFilterSet
    search_fields = ("common_name", "subject", "server__hostname")
    default_sort = "-created"
    empty_text = "No requests match."
    columns = (
        Column("id", "#", value="pk", sort="id", link=lambda r: reverse("ca:request", args=[r.pk])),
        Column("created", "Received", sort="created"),
        Column("common_name", "Common name", sort="common_name"),
        Column("names", "Names", value=names_of, cell="mono"),
        Column("unowned_names", "Needs approval", cell="mono"),
        Column(
            "owner",
            "For",
            value=lambda r: r.server.hostname if r.server_id else r.subject,
        ),
        Column("tenant", "Tenant", value="tenant.name", sort="tenant__name"),
        Column("authority", "Authority", value="authority.name", sort="authority__name"),
        Column("source", "Source", value="get_source_display", sort="source"),
        Column("status", "Status", sort="status", cell="badge"),
        Column("profile", "Profile", value="get_profile_display", default=False),
        Column("requested_by", "Requested by", value="requested_by.username", default=False),
        Column("decided", "Decided", default=False),
        Column("decided_by", "Decided by", value="decided_by.username", default=False),
    )

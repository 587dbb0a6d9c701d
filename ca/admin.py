"""Django admin of the CA: read-only. Keys, certificates and CRLs change only through
ca.services (signing, revocation and publication are audited actions, not field edits)."""

from django.contrib import admin

from ca.models import Authority, Certificate, CertificateRequest, RevocationList
from dcportal.admin import ReadOnlyAdmin


@admin.register(Authority)
class AuthorityAdmin(ReadOnlyAdmin):
    list_display = ["name", "slug", "tenant", "parent", "key_type", "not_after", "revoked_at"]
    list_filter = ["key_type", "imported"]
    search_fields = ["name", "slug", "subject"]
    exclude = ["private_key"]


@admin.register(RevocationList)
class RevocationListAdmin(ReadOnlyAdmin):
    list_display = ["authority", "number", "this_update", "next_update", "entries"]


@admin.register(CertificateRequest)
class CertificateRequestAdmin(ReadOnlyAdmin):
    list_display = ["common_name", "tenant", "authority", "server", "status", "source", "created"]
    list_filter = ["status", "source"]
    search_fields = ["common_name", "subject"]
    exclude = ["private_key"]


@admin.register(Certificate)
class CertificateAdmin(ReadOnlyAdmin):
    list_display = ["common_name", "serial", "tenant", "authority", "not_after", "revoked_at"]
    list_filter = ["revocation_reason", "profile"]
    search_fields = ["common_name", "serial", "subject"]

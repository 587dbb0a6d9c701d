"""Serializers of the CA API. They parse and present; ca.services checks and writes.

Private keys are write-only (an import's key and password) and never part of a response:
exports are admin actions of the portal and the CLI, audited there.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ca import services
from ca.models import (
    Authority,
    Certificate,
    CertificateRequest,
    CertificateStatus,
    KeyType,
    Profile,
    RevocationList,
    RevocationReason,
)
from dcportal import rbac
from dcportal.api.serializers import PortalModelSerializer, ScopedRelatedField, SecretField
from dcportal.models import Tenant


@extend_schema_field(OpenApiTypes.INT)
class ScopedServerField(serializers.PrimaryKeyRelatedField):
    """A server by id among those the requesting user may see (another tenant's: not found)."""

    def get_queryset(self):
        request = self.context.get("request")
        servers = CertificateRequest._meta.get_field("server").related_model.objects.all()
        return rbac.restrict(servers, request.user, "view") if request else servers.none()


class PublicUrlsSerializer(serializers.Serializer):
    pem = serializers.URLField(help_text="Certificate chain, PEM")
    der = serializers.URLField(help_text="Certificate, DER (AIA caIssuers)")
    crl = serializers.URLField(help_text="CRL, DER (CRL distribution point)")
    crl_pem = serializers.URLField(help_text="CRL, PEM")


class RevocationListSerializer(serializers.ModelSerializer):
    class Meta:
        model = RevocationList
        fields = ["number", "this_update", "next_update", "entries"]
        read_only_fields = fields


# Authorities ------------------------------------------------------------------------------------


class RevocationReasonField(serializers.ChoiceField):
    """The stored reason: empty while not revoked. (DRF drops allow_blank from read-only model
    fields, so the schema would leave "" out of the enum.)"""

    def __init__(self, **kwargs):
        super().__init__(
            choices=RevocationReason.choices,
            allow_blank=True,
            read_only=True,
            help_text="Empty while not revoked.",
            **kwargs,
        )


class AuthoritySerializer(PortalModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    parent = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    crl = RevocationListSerializer(read_only=True, allow_null=True)
    urls = serializers.SerializerMethodField()
    certificate_count = serializers.IntegerField(read_only=True)
    revocation_reason = RevocationReasonField()

    class Meta:
        model = Authority
        fields = [
            "id",
            "name",
            "slug",
            "description",
            "tenant",
            "parent",
            "key_type",
            "subject",
            "serial",
            "fingerprint",
            "not_before",
            "not_after",
            "path_length",
            "imported",
            "default_validity_days",
            "crl_validity_hours",
            "revoked_at",
            "revocation_reason",
            "certificate",
            "crl",
            "urls",
            "certificate_count",
            "created",
            "updated",
        ]
        read_only_fields = fields

    @extend_schema_field(PublicUrlsSerializer)
    def get_urls(self, authority):
        return services.public_urls(authority.slug)


class AuthorityFieldsSerializer(serializers.Serializer):
    """What a new and an imported authority both have."""

    name = serializers.CharField(max_length=100)
    slug = serializers.SlugField(max_length=50)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    tenant = ScopedRelatedField(
        slug_field="slug",
        queryset=Tenant.objects.all(),
        required=False,
        allow_null=True,
        default=None,
        help_text="Empty: shared by every tenant (admins only).",
    )


class AuthorityCreateSerializer(AuthorityFieldsSerializer):
    parent = ScopedRelatedField(
        slug_field="slug",
        queryset=Authority.objects.all(),
        required=False,
        allow_null=True,
        default=None,
        help_text="The signing authority (slug); empty for a root.",
    )
    key_type = serializers.ChoiceField(choices=KeyType.choices, default=services.DEFAULT_KEY_TYPE)
    common_name = serializers.CharField(max_length=64, required=False, default="")
    organization = serializers.CharField(max_length=64, required=False, default="")
    days = serializers.IntegerField(
        min_value=1,
        max_value=36500,
        required=False,
        allow_null=True,
        default=None,
        help_text="Validity; default 3650 for a root, 1825 for an intermediate.",
    )
    path_length = serializers.IntegerField(
        min_value=0, max_value=10, required=False, allow_null=True, default=None
    )
    default_validity_days = serializers.IntegerField(min_value=1, max_value=3650, default=365)
    crl_validity_hours = serializers.IntegerField(min_value=1, max_value=8760, default=168)


class AuthorityImportSerializer(AuthorityFieldsSerializer):
    parent = ScopedRelatedField(
        slug_field="slug",
        queryset=Authority.objects.all(),
        required=False,
        allow_null=True,
        default=None,
        help_text="The authority that signed it, when the portal holds it.",
    )
    certificate = serializers.CharField(
        trim_whitespace=False,
        help_text="PEM: the authority's certificate, optionally followed by its issuers'.",
    )
    private_key = SecretField(allow_blank=False, help_text="PEM private key (write-only).")
    password = SecretField(required=False, help_text="If the key is encrypted.")
    default_validity_days = serializers.IntegerField(min_value=1, max_value=3650, default=365)
    crl_validity_hours = serializers.IntegerField(min_value=1, max_value=8760, default=168)


class AuthorityUpdateSerializer(PortalModelSerializer):
    class Meta:
        model = Authority
        fields = ["name", "description", "default_validity_days", "crl_validity_hours"]


class RevokeSerializer(serializers.Serializer):
    reason = serializers.ChoiceField(
        choices=RevocationReason.choices, default=RevocationReason.UNSPECIFIED
    )


# Requests ---------------------------------------------------------------------------------------


class CertificateSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Certificate
        fields = ["id", "serial", "not_after", "revoked_at"]
        read_only_fields = fields


class CertificateRequestSerializer(PortalModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    authority = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    server_hostname = serializers.CharField(
        source="server.hostname", read_only=True, allow_null=True
    )
    requested_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    decided_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    has_private_key = serializers.SerializerMethodField()
    certificates = CertificateSummarySerializer(many=True, read_only=True)

    class Meta:
        model = CertificateRequest
        fields = [
            "id",
            "tenant",
            "authority",
            "server",
            "server_hostname",
            "subject",
            "csr",
            "common_name",
            "dns_names",
            "ip_addresses",
            "unowned_names",
            "key_type",
            "profile",
            "validity_days",
            "status",
            "source",
            "has_private_key",
            "requested_by",
            "created",
            "decided",
            "decided_by",
            "reason",
            "certificates",
        ]
        read_only_fields = fields

    def get_has_private_key(self, request) -> bool:
        return bool(request.private_key)


class CertificateRequestCreateSerializer(serializers.Serializer):
    authority = ScopedRelatedField(slug_field="slug", queryset=Authority.objects.all())
    tenant = ScopedRelatedField(
        slug_field="slug",
        queryset=Tenant.objects.all(),
        required=False,
        allow_null=True,
        default=None,
        help_text="Defaults to the server's tenant, or your only tenant.",
    )
    server = ScopedServerField(required=False, allow_null=True, default=None)
    subject = serializers.CharField(max_length=253, required=False, default="")
    csr = serializers.CharField(
        required=False, trim_whitespace=False, help_text="PEM CSR made elsewhere."
    )
    generate_key = serializers.BooleanField(
        default=False, help_text="Generate the key and CSR on the portal instead of `csr`."
    )
    key_type = serializers.ChoiceField(choices=KeyType.choices, default="ec-p256")
    names = serializers.ListField(
        child=serializers.CharField(max_length=253),
        required=False,
        default=list,
        help_text="With generate_key: names to certify (default: the server's own).",
    )
    profile = serializers.ChoiceField(choices=Profile.choices, default=Profile.SERVER)
    validity_days = serializers.IntegerField(
        min_value=1, max_value=3650, required=False, allow_null=True, default=None
    )
    sign = serializers.BooleanField(default=False, help_text="Sign at once.")
    approve_names = serializers.BooleanField(
        default=False, help_text="Approve names the server does not own (with sign)."
    )

    def validate(self, attrs):
        if attrs["generate_key"] == bool(attrs.get("csr")):
            raise serializers.ValidationError(
                {"csr": ["Give a CSR, or generate_key: true (not both)."]}
            )
        return attrs


class SignSerializer(serializers.Serializer):
    approve_names = serializers.BooleanField(
        default=False, help_text="Approve names the server does not own."
    )


class RejectSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300, required=False, default="")


# Certificates -----------------------------------------------------------------------------------


class CertificateSerializer(PortalModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    authority = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    server_hostname = serializers.CharField(
        source="server.hostname", read_only=True, allow_null=True
    )
    issued_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    revocation_reason = RevocationReasonField()
    status = serializers.SerializerMethodField()
    chain_url = serializers.SerializerMethodField()

    class Meta:
        model = Certificate
        fields = [
            "id",
            "tenant",
            "authority",
            "server",
            "server_hostname",
            "subject",
            "serial",
            "common_name",
            "dns_names",
            "ip_addresses",
            "key_type",
            "profile",
            "status",
            "not_before",
            "not_after",
            "revoked_at",
            "revocation_reason",
            "fingerprint",
            "request",
            "renewal_of",
            "issued_by",
            "created",
            "certificate",
            "chain_url",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=CertificateStatus.choices))
    def get_status(self, certificate):
        return certificate.status

    def get_chain_url(self, certificate) -> str:
        return services.public_urls(certificate.authority.slug)["pem"]


class RenewSerializer(serializers.Serializer):
    validity_days = serializers.IntegerField(
        min_value=1, max_value=3650, required=False, allow_null=True, default=None
    )
    approve_names = serializers.BooleanField(default=False)
    revoke_old = serializers.BooleanField(
        default=False, help_text="Revoke the old certificate as superseded."
    )

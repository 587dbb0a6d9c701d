"""The certificate authority: authorities (roots and intermediates), their CRLs, certificate
requests (CSRs) and the certificates issued from them.

An authority with no tenant is shared: every tenant may have its hosts' certificates signed by
it, and only a global admin changes it (dcportal.rbac.is_shared). Requests and certificates
always belong to a tenant. Private keys are encrypted at rest (EncryptedTextField) and leave the
portal only through the audited, admin-only exports in ca.services.

Servers are referenced by a nullable foreign key: the CA works without one (a `subject` label
names what a certificate is for), and a linked server only adds the names it owns.
"""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from dcportal.models import Tenant
from dcportal.secrets import EncryptedTextField


class KeyType(models.TextChoices):
    RSA_2048 = "rsa-2048", "RSA 2048"
    RSA_3072 = "rsa-3072", "RSA 3072"
    RSA_4096 = "rsa-4096", "RSA 4096"
    EC_P256 = "ec-p256", "EC P-256"
    EC_P384 = "ec-p384", "EC P-384"
    ED25519 = "ed25519", "Ed25519"


class Profile(models.TextChoices):
    SERVER = "server", "TLS server"
    CLIENT = "client", "TLS client"
    BOTH = "both", "TLS server and client"


class RevocationReason(models.TextChoices):
    UNSPECIFIED = "unspecified", "Unspecified"
    KEY_COMPROMISE = "key_compromise", "Key compromise"
    CA_COMPROMISE = "ca_compromise", "CA compromise"
    AFFILIATION_CHANGED = "affiliation_changed", "Affiliation changed"
    SUPERSEDED = "superseded", "Superseded"
    CESSATION_OF_OPERATION = "cessation_of_operation", "Cessation of operation"
    PRIVILEGE_WITHDRAWN = "privilege_withdrawn", "Privilege withdrawn"


class CertificateStatus(models.TextChoices):
    """What Certificate.status says (derived from revocation and notAfter, not stored)."""

    VALID = "valid"
    EXPIRED = "expired"
    REVOKED = "revoked"


class Authority(models.Model):
    """A certificate authority: a root (no parent) or an intermediate signed by its parent."""

    tenancy = "tenant"
    shared_tenancy = True

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(
        max_length=50,
        unique=True,
        help_text="Names its public files: /pki/<slug>.pem, .crt, .crl and .crl.pem.",
    )
    description = models.TextField(blank=True)
    tenant = models.ForeignKey(
        Tenant,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Empty: shared by every tenant (only an admin manages it).",
    )
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="children",
        help_text="The authority that signed this one; empty for a root.",
    )
    key_type = models.CharField(max_length=16, choices=KeyType.choices)
    private_key = EncryptedTextField(editable=False)
    certificate = models.TextField(editable=False, help_text="PEM")
    external_chain = models.TextField(
        blank=True,
        editable=False,
        help_text="PEM of the issuers above an imported authority that the portal does not hold.",
    )
    serial = models.CharField(max_length=64, editable=False)
    subject = models.CharField(max_length=500, editable=False)
    fingerprint = models.CharField(max_length=95, editable=False)
    not_before = models.DateTimeField(editable=False)
    not_after = models.DateTimeField(editable=False)
    path_length = models.PositiveSmallIntegerField(null=True, blank=True, editable=False)
    imported = models.BooleanField(default=False, editable=False)
    default_validity_days = models.PositiveIntegerField(
        default=365,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text="Validity of the certificates it issues, unless a request says otherwise.",
    )
    crl_validity_hours = models.PositiveIntegerField(
        default=168,
        validators=[MinValueValidator(1), MaxValueValidator(8760)],
        help_text="How long each CRL it publishes stays valid (its nextUpdate).",
    )
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    revocation_reason = models.CharField(
        max_length=32, choices=RevocationReason.choices, blank=True, editable=False
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "authorities"
        permissions = [
            ("export_authority", "Can export an authority's private key"),
            ("publish_crl", "Can regenerate and publish an authority's CRL"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(parent=models.F("id")), name="authority_not_its_own_parent"
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def is_root(self):
        return self.parent_id is None

    @property
    def is_revoked(self):
        return self.revoked_at is not None

    @property
    def is_expired(self):
        return self.not_after <= timezone.now()


class RevocationList(models.Model):
    """The current CRL of an authority, regenerated on every revocation and before it expires.

    Kept apart from Authority so that a publish is one audit event of its own, not a diff that
    carries the whole CRL."""

    tenancy = "authority__tenant"
    shared_tenancy = True

    authority = models.OneToOneField(Authority, on_delete=models.CASCADE, related_name="crl")
    number = models.PositiveBigIntegerField()
    this_update = models.DateTimeField()
    next_update = models.DateTimeField(db_index=True)
    entries = models.PositiveIntegerField(default=0)
    pem = models.TextField()

    class Meta:
        ordering = ["authority__name"]
        verbose_name = "certificate revocation list"

    def __str__(self):
        return f"{self.authority} CRL #{self.number}"


class CertificateRequest(models.Model):
    """A CSR: uploaded, sent through the API, made by the portal with a key it generated, or
    sent by a server in build mode with its build token (autosign)."""

    tenancy = "tenant"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending approval"
        SIGNED = "signed", "Signed"
        REJECTED = "rejected", "Rejected"

    class Source(models.TextChoices):
        PORTAL = "portal", "Key generated by the portal"
        UPLOAD = "upload", "Uploaded CSR"
        API = "api", "API"
        CLI = "cli", "Command line"
        AUTOSIGN = "autosign", "Build-token autosign"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    authority = models.ForeignKey(Authority, on_delete=models.PROTECT, related_name="requests")
    server = models.ForeignKey(
        "inventory.Server",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="certificate_requests",
    )
    subject = models.CharField(
        max_length=253, blank=True, help_text="What the certificate is for (a host, a service)."
    )
    csr = models.TextField(help_text="PEM")
    private_key = EncryptedTextField(
        blank=True, editable=False, help_text="Only when the portal generated the key."
    )
    common_name = models.CharField(max_length=253)
    dns_names = ArrayField(models.CharField(max_length=253), default=list, blank=True)
    ip_addresses = ArrayField(models.GenericIPAddressField(), default=list, blank=True)
    unowned_names = ArrayField(
        models.CharField(max_length=253),
        default=list,
        blank=True,
        help_text="Names the subject does not own: signing needs them approved.",
    )
    key_type = models.CharField(max_length=16, choices=KeyType.choices)
    profile = models.CharField(max_length=16, choices=Profile.choices, default=Profile.SERVER)
    validity_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text="Empty: the authority's default.",
    )
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    source = models.CharField(max_length=16, choices=Source.choices)
    autosign_key = models.CharField(
        max_length=64,
        blank=True,
        editable=False,
        help_text="Digest of the build token that sent it: one certificate per build.",
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    decided = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    reason = models.CharField(max_length=300, blank=True, help_text="Why it was rejected.")

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name = "certificate request"
        permissions = [
            (
                "sign_certificaterequest",
                "Can sign or reject certificate requests and approve names outside a subject's own",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["autosign_key"],
                condition=~Q(autosign_key=""),
                name="certificaterequest_one_per_build",
            ),
        ]

    def __str__(self):
        return f"CSR {self.common_name}"

    @property
    def names(self):
        return [*self.dns_names, *self.ip_addresses]


class Certificate(models.Model):
    """An issued end-entity certificate."""

    tenancy = "tenant"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    authority = models.ForeignKey(Authority, on_delete=models.PROTECT, related_name="certificates")
    request = models.ForeignKey(
        CertificateRequest,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="certificates",
        help_text="The CSR it was signed from (renewals sign the same CSR again).",
    )
    server = models.ForeignKey(
        "inventory.Server",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="certificates",
    )
    subject = models.CharField(max_length=253, blank=True)
    serial = models.CharField(max_length=64, help_text="Hexadecimal, as openssl shows it.")
    common_name = models.CharField(max_length=253)
    dns_names = ArrayField(models.CharField(max_length=253), default=list, blank=True)
    ip_addresses = ArrayField(models.GenericIPAddressField(), default=list, blank=True)
    key_type = models.CharField(max_length=16, choices=KeyType.choices)
    profile = models.CharField(max_length=16, choices=Profile.choices)
    certificate = models.TextField(help_text="PEM")
    fingerprint = models.CharField(max_length=95)
    not_before = models.DateTimeField()
    not_after = models.DateTimeField(db_index=True)
    revoked_at = models.DateTimeField(null=True, blank=True, db_index=True)
    revocation_reason = models.CharField(
        max_length=32, choices=RevocationReason.choices, blank=True
    )
    renewal_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="renewals"
    )
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]
        permissions = [
            ("revoke_certificate", "Can revoke a certificate"),
            ("export_key", "Can export a private key the portal generated for a host"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["authority", "serial"], name="certificate_unique_serial"
            ),
            models.CheckConstraint(
                condition=Q(revoked_at__isnull=True) | ~Q(revocation_reason=""),
                name="certificate_revocation_has_reason",
            ),
        ]

    def __str__(self):
        return f"{self.common_name} ({self.serial[:12]}…)"

    @property
    def status(self):
        if self.revoked_at is not None:
            return CertificateStatus.REVOKED
        if self.not_after <= timezone.now():
            return CertificateStatus.EXPIRED
        return CertificateStatus.VALID

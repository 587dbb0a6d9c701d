"""Every write of the certificate authority: authorities (create, import, change, revoke,
export), certificate requests (submit, generate, sign, reject), certificates (revoke, renew,
export of a portal-made key), CRLs (publish, refresh) and build-token autosign.

Each function takes the acting user (keyword-only), checks permission and tenant, runs in one
transaction and writes the audit trail. Refused input is a ValidationError keyed by the field it
concerns, so the portal, the API (400) and the CLI all show the same message; nothing is stored
when a step fails. ca.crypto does the cryptography on plain PEM text.
"""

import hashlib
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from ca import autosign as registry
from ca import crypto
from ca.models import Authority, Certificate, CertificateRequest, Profile, RevocationList
from dcportal import audit, jobs, rbac
from dcportal.models import Job, Tenant
from dcportal.services import create_object, delete_object, each_or_none, update_object

DEFAULT_KEY_TYPE = "ec-p384"
ROOT_DAYS = 3650
INTERMEDIATE_DAYS = 1825
REFRESH_JOB = "ca.refresh_crls"
# A host's own certificate serves its TLS services and identifies it as a client (a Puppet
# agent, an IPA client): autosign issues both usages.
AUTOSIGN_PROFILE = Profile.BOTH
EDITABLE_AUTHORITY_FIELDS = frozenset(
    {"name", "description", "default_validity_days", "crl_validity_hours"}
)


class AutosignRefused(Exception):
    """A build-token CSR the public endpoint refuses; `status` is the HTTP answer."""

    status = 403


class AlreadyIssued(AutosignRefused):
    status = 409


class HostAuthorityMissing(AutosignRefused):
    status = 503


@contextmanager
def _refusing(field):
    """ca.crypto's refusals become field errors of the caller's input."""
    try:
        yield
    except crypto.CryptoError as exc:
        raise ValidationError({field: str(exc)}) from None


# Public URLs and chains -----------------------------------------------------------------------


def public_base_url():
    """Where hosts reach the CA's public files: DCPORTAL_CA_PUBLIC_URL, else the boot URL."""
    base = settings.CA_PUBLIC_URL or settings.BOOT_URL or "http://127.0.0.1:8000"
    return base.rstrip("/")


def public_urls(slug):
    """The public URLs of an authority's files (for install templates, pages and docs)."""
    base = public_base_url()
    return {
        "pem": base + reverse("pki:authority-pem", args=[slug]),
        "der": base + reverse("pki:authority-der", args=[slug]),
        "crl": base + reverse("pki:crl-der", args=[slug]),
        "crl_pem": base + reverse("pki:crl-pem", args=[slug]),
    }


def links_for(authority):
    """CDP and AIA of what `authority` signs: its own CRL and certificate, over plain HTTP."""
    urls = public_urls(authority.slug)
    return crypto.Links(crl_url=urls["crl"], issuer_url=urls["der"])


def signer_of(authority):
    return crypto.Signer(authority.certificate, authority.private_key.reveal())


def chain_of(authority):
    """The authority and its issuers up to the root, nearest first."""
    chain, seen = [], set()
    current = authority
    while current is not None and current.pk not in seen:
        chain.append(current)
        seen.add(current.pk)
        current = current.parent
    return chain


def chain_pem(authority):
    """PEM of the authority's certificate and every issuer above it (external ones included)."""
    chain = chain_of(authority)
    return "".join(a.certificate for a in chain) + chain[-1].external_chain


def autosign_key(token):
    """What a request keeps of the build token that sent it: enough to refuse a second CSR
    of the same build, nothing that would let anyone use the token."""
    return hashlib.sha256(b"dcportal.ca.autosign:" + token.encode()).hexdigest()


# Authorities ------------------------------------------------------------------------------------


def _certificate_fields(info):
    return {
        "certificate": info.pem,
        "serial": info.serial_hex,
        "subject": info.subject[:500],
        "fingerprint": info.fingerprint,
        "not_before": info.not_before,
        "not_after": info.not_after,
    }


def _check_can_issue(authority, field="authority"):
    if authority.is_revoked:
        raise ValidationError({field: f"The authority {authority} is revoked."})
    if authority.is_expired:
        raise ValidationError({field: f"The authority {authority} has expired."})


def _check_parent(user, parent, tenant, path_length):
    """A new authority under `parent`: visible, usable, same tenant, path length respected.
    Returns the path length the new authority gets."""
    if not rbac.restrict(Authority.objects.filter(pk=parent.pk), user, "view").exists():
        raise ValidationError({"parent": "No such authority."})
    if parent.tenant_id is None and not rbac.is_global(user):
        # A sub-CA of a shared root is trusted wherever the root is: every tenant.
        raise PermissionDenied("Only an admin may create an authority under a shared one.")
    if parent.tenant_id is not None and parent.tenant_id != getattr(tenant, "pk", None):
        raise ValidationError({"parent": f"{parent} belongs to another tenant."})
    _check_can_issue(parent, "parent")
    if parent.path_length is not None:
        if parent.path_length == 0:
            raise ValidationError({"parent": f"{parent} may not sign further authorities."})
        if path_length is None:
            return parent.path_length - 1
        if path_length >= parent.path_length:
            raise ValidationError(
                {"path_length": f"Must be below the parent's path length ({parent.path_length})."}
            )
    return path_length


def _check_new_names(name, slug):
    errors = {}
    if Authority.objects.filter(name=name).exists():
        errors["name"] = "An authority with this name already exists."
    if Authority.objects.filter(slug=slug).exists():
        errors["slug"] = "An authority with this slug already exists."
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def create_authority(
    *,
    user,
    name,
    slug,
    tenant=None,
    parent=None,
    key_type=DEFAULT_KEY_TYPE,
    common_name="",
    organization="",
    days=None,
    path_length=None,
    default_validity_days=365,
    crl_validity_hours=168,
    description="",
):
    """A new root (no parent) or intermediate (signed by `parent`) with a fresh key, and its
    first (empty) CRL."""
    rbac.require(user, "ca.add_authority")
    rbac.check_tenant(user, tenant, Authority)
    if key_type not in crypto.KEY_TYPES:
        raise ValidationError({"key_type": f"Choose one of {', '.join(crypto.KEY_TYPES)}."})
    _check_new_names(name, slug)
    if parent is not None:
        path_length = _check_parent(user, parent, tenant, path_length)
    days = days or (ROOT_DAYS if parent is None else INTERMEDIATE_DAYS)
    key = crypto.generate_key(key_type)
    with _refusing("common_name"):
        issued = crypto.create_ca_certificate(
            private_key_pem=key,
            common_name=common_name or name,
            organization=organization,
            days=days,
            path_length=path_length,
            parent=signer_of(parent) if parent is not None else None,
            links=links_for(parent) if parent is not None else None,
        )
    info = crypto.parse_certificate(issued.pem)
    authority = create_object(
        Authority,
        user=user,
        name=name,
        slug=slug,
        description=description,
        tenant=tenant,
        parent=parent,
        key_type=key_type,
        private_key=key,
        path_length=path_length,
        default_validity_days=default_validity_days,
        crl_validity_hours=crl_validity_hours,
        **_certificate_fields(info),
    )
    _publish(authority, user=user)
    return authority


@transaction.atomic
def import_authority(
    *,
    user,
    name,
    slug,
    certificate,
    private_key,
    password=None,
    tenant=None,
    parent=None,
    default_validity_days=365,
    crl_validity_hours=168,
    description="",
):
    """An existing CA: its certificate (optionally followed by its issuers' certificates, a
    chain file) and its private key. Signed by `parent` when given; otherwise self-signed, or
    with the issuers above it in the chain so that /pki/<slug>.pem serves a complete chain."""
    rbac.require(user, "ca.add_authority")
    rbac.check_tenant(user, tenant, Authority)
    _check_new_names(name, slug)
    with _refusing("certificate"):
        blocks = crypto.split_certificates(certificate)
        if not blocks:
            raise crypto.MalformedInput(
                "Not a PEM certificate: expected -----BEGIN CERTIFICATE-----."
            )
        info = crypto.parse_certificate(blocks[0])
        issuers = blocks[1:]
    if not info.is_ca:
        raise ValidationError({"certificate": "This is not a CA certificate (CA:TRUE)."})
    if info.key_type not in crypto.KEY_TYPES:
        raise ValidationError(
            {"certificate": f"The authority's key ({info.key_type}) is not an accepted type."}
        )
    if info.not_after <= timezone.now():
        raise ValidationError({"certificate": "This certificate has expired."})
    with _refusing("private_key"):
        key_pem, key_type = crypto.read_private_key(private_key, password)
        if not crypto.key_matches(key_pem, info.pem):
            raise crypto.CryptoError("This key does not belong to the certificate.")
    external = ""
    if parent is not None:
        _check_parent(user, parent, tenant, info.path_length)
        if not crypto.is_issued_by(info.pem, parent.certificate):
            raise ValidationError({"parent": f"{parent} did not sign this certificate."})
    elif not crypto.is_self_signed(info.pem):
        if not issuers:
            raise ValidationError(
                {
                    "certificate": "This authority is not self-signed: add its issuers' "
                    "certificates after it (a chain file), or import its issuer first and "
                    "choose it as the parent."
                }
            )
        with _refusing("certificate"):
            for child, issuer in zip([info.pem, *issuers], issuers, strict=False):
                if not crypto.is_issued_by(child, issuer):
                    raise crypto.CryptoError("The chain is out of order or incomplete.")
        external = "".join(issuers)
    authority = create_object(
        Authority,
        user=user,
        name=name,
        slug=slug,
        description=description,
        tenant=tenant,
        parent=parent,
        key_type=key_type,
        private_key=key_pem,
        external_chain=external,
        path_length=info.path_length,
        imported=True,
        default_validity_days=default_validity_days,
        crl_validity_hours=crl_validity_hours,
        **_certificate_fields(info),
    )
    _publish(authority, user=user)
    return authority


def update_authority(authority, *, user, **fields):
    """Name, description and validity settings; the key and certificate never change."""
    unknown = set(fields) - EDITABLE_AUTHORITY_FIELDS
    if unknown:
        raise ValidationError(dict.fromkeys(unknown, "This field cannot be changed."))
    return update_object(authority, user=user, **fields)


def delete_authority(authority, *, user):
    """Only an authority that never signed anything (its certificates keep it otherwise)."""
    delete_object(authority, user=user)


@transaction.atomic
def revoke_authority(authority, *, user, reason="ca_compromise"):
    """Revoke an intermediate: its parent's CRL lists it from now on."""
    rbac.require(user, "ca.change_authority")
    rbac.check_tenant(user, authority.tenant, Authority)
    if reason not in crypto.REASONS:
        raise ValidationError({"reason": f"Choose one of {', '.join(crypto.REASONS)}."})
    authority = Authority.objects.select_for_update().get(pk=authority.pk)
    if authority.parent_id is None:
        raise ValidationError(
            {"authority": "A root cannot be revoked by a CRL: remove it from the trust stores."}
        )
    if authority.is_revoked:
        raise ValidationError({"authority": f"{authority} is already revoked."})
    with audit.Tracker(user, authority, verb="revoke"):
        authority.revoked_at = timezone.now()
        authority.revocation_reason = reason
        authority.save(update_fields=["revoked_at", "revocation_reason", "updated"])
    _publish(authority.parent, user=user)
    return authority


@transaction.atomic
def export_authority_key(authority, *, user):
    """The authority's private key (PEM): admins only, always audited."""
    rbac.require(user, "ca.export_authority")
    rbac.check_tenant(user, authority.tenant, Authority)
    audit.record(user=user, action="action", verb="export_key", obj=authority)
    return authority.private_key.reveal()


# CRLs -----------------------------------------------------------------------------------------


def _revoked_entries(authority, now):
    # A certificate past its notAfter fails validation on its own; its entry can go (RFC 5280
    # 3.3), which keeps a long-lived CA's CRL from growing forever.
    certificates = Certificate.objects.filter(
        authority=authority, revoked_at__isnull=False, not_after__gt=now
    ).values_list("serial", "revoked_at", "revocation_reason")
    children = Authority.objects.filter(
        parent=authority, revoked_at__isnull=False, not_after__gt=now
    ).values_list("serial", "revoked_at", "revocation_reason")
    return [
        crypto.Revoked(serial=int(serial, 16), revoked_at=revoked_at, reason=reason)
        for serial, revoked_at, reason in (*certificates, *children)
    ]


def _publish(authority, *, user, now=None):
    """Sign and store a new CRL for `authority` (callers hold a transaction)."""
    # The authority row serialises publishers, so CRL numbers only ever grow.
    authority = Authority.objects.select_for_update().get(pk=authority.pk)
    now = now or timezone.now()
    current = RevocationList.objects.filter(authority=authority).first()
    number = current.number + 1 if current else 1
    with _refusing("authority"):
        crl = crypto.build_crl(
            signer=signer_of(authority),
            entries=_revoked_entries(authority, now),
            number=number,
            this_update=now,
            next_update=now + timedelta(hours=authority.crl_validity_hours),
        )
    fields = {
        "number": crl.number,
        "this_update": crl.this_update,
        "next_update": crl.next_update,
        "entries": crl.entries,
        "pem": crl.pem,
    }
    if current is None:
        current = RevocationList.objects.create(authority=authority, **fields)
    else:
        RevocationList.objects.filter(pk=current.pk).update(**fields)
        for name, value in fields.items():
            setattr(current, name, value)
    audit.record(
        user=user,
        action="action",
        verb="publish_crl",
        obj=authority,
        extra={
            "crl_number": crl.number,
            "entries": crl.entries,
            "next_update": crl.next_update.isoformat(),
        },
    )
    return current


@transaction.atomic
def publish_crl(authority, *, user):
    """Regenerate and publish the authority's CRL now."""
    rbac.require(user, "ca.publish_crl")
    if not rbac.restrict(Authority.objects.filter(pk=authority.pk), user, "view").exists():
        raise PermissionDenied("You may not see that authority.")
    return _publish(authority, user=user)


def refresh_margin(authority):
    """How long before its nextUpdate a CRL is replaced: the configured margin, or half the
    CRL's life when that is shorter (a CRL valid 2 hours is not refreshed every run)."""
    hours = min(settings.CA_CRL_REFRESH_HOURS, authority.crl_validity_hours / 2)
    return timedelta(hours=hours)


def crls_due(now=None):
    """Authorities whose CRL is missing or expires within its refresh margin."""
    now = now or timezone.now()
    due = []
    for authority in Authority.objects.select_related("crl").filter(not_after__gt=now):
        crl = getattr(authority, "crl", None)
        if crl is None or crl.next_update - refresh_margin(authority) <= now:
            due.append(authority)
    return due


def refresh_crls(*, user=None, force=False, progress=None):
    """Republish the CRLs that are due (every CRL with `force`). Each in its own transaction,
    so one failing authority does not hold back the others. Returns the refreshed names."""
    if user is not None and force:
        rbac.require(user, "ca.publish_crl")
    now = timezone.now()
    targets = list(Authority.objects.filter(not_after__gt=now)) if force else crls_due(now)
    if user is not None:
        visible = set(rbac.restrict(Authority.objects.all(), user).values_list("pk", flat=True))
        targets = [authority for authority in targets if authority.pk in visible]
    done = []
    for index, authority in enumerate(targets):
        with transaction.atomic():
            _publish(authority, user=user)
        done.append(authority.name)
        if progress is not None:
            progress(int((index + 1) * 100 / len(targets)), f"CRL of {authority.name} published")
    return done


def schedule_crl_refresh():
    """Queue a `ca.refresh_crls` job when a CRL is due and none is queued or running.
    Returns a line for the housekeeping log, or None."""
    due = crls_due()
    if not due:
        return None
    busy = Job.objects.filter(
        kind=REFRESH_JOB, status__in=(Job.Status.QUEUED, Job.Status.RUNNING)
    ).exists()
    if busy:
        return None
    with transaction.atomic():
        job = jobs.enqueue(REFRESH_JOB, params={"force": False})
    names = ", ".join(a.name for a in due)
    return f"ca: CRL refresh queued as job {job.pk} ({names})"


# Requests -------------------------------------------------------------------------------------


def _resolve_tenant(user, tenant, server):
    if server is not None:
        if tenant is not None and tenant.pk != server.tenant_id:
            raise ValidationError({"tenant": "The server belongs to another tenant."})
        tenant = server.tenant
    if tenant is None:
        ids = rbac.tenant_ids(user)
        if len(ids) != 1 or rbac.is_global(user):
            raise ValidationError({"tenant": "Choose the tenant the certificate belongs to."})
        tenant = Tenant.objects.get(pk=next(iter(ids)))
    rbac.check_tenant(user, tenant)
    return tenant


def _check_authority_for(user, authority, tenant):
    if not rbac.restrict(Authority.objects.filter(pk=authority.pk), user, "view").exists():
        raise ValidationError({"authority": "No such authority."})
    if authority.tenant_id not in (None, tenant.pk):
        raise ValidationError({"authority": f"{authority} belongs to another tenant."})
    _check_can_issue(authority)


def _owner_label(subject, server):
    return server.hostname if server is not None else (subject or "no subject")


def _create_request(
    *,
    user,
    info,
    authority,
    tenant,
    server,
    subject,
    profile,
    validity_days,
    source,
    private_key="",
):
    owned = registry.names_of_server(server.pk if server is not None else None)
    return create_object(
        CertificateRequest,
        user=user,
        tenant=tenant,
        authority=authority,
        server=server,
        subject=subject or (server.hostname if server is not None else info.common_name),
        csr=info.pem,
        private_key=private_key,
        common_name=info.common_name,
        dns_names=list(info.dns_names),
        ip_addresses=list(info.ip_addresses),
        unowned_names=registry.unowned(info.names, owned),
        key_type=info.key_type,
        profile=profile,
        validity_days=validity_days,
        source=source,
        requested_by=user,
    )


@transaction.atomic
def submit_request(
    *,
    user,
    authority,
    csr,
    tenant=None,
    server=None,
    subject="",
    profile="server",
    validity_days=None,
    source=CertificateRequest.Source.API,
    sign=False,
    approve_names=False,
):
    """Store a CSR made elsewhere, checked (signature, key, names). Pending unless `sign`,
    which signs it at once (needing the sign permission, and `approve_names` for names the
    server does not own); a refusal at any step leaves nothing behind."""
    rbac.require(user, "ca.add_certificaterequest")
    tenant = _resolve_tenant(user, tenant, server)
    _check_authority_for(user, authority, tenant)
    with _refusing("csr"):
        info = crypto.parse_csr(csr)
    request = _create_request(
        user=user,
        info=info,
        authority=authority,
        tenant=tenant,
        server=server,
        subject=subject,
        profile=profile,
        validity_days=validity_days,
        source=source,
    )
    if sign:
        sign_request(request, user=user, approve_names=approve_names)
    return request


def _default_names(server):
    owned = registry.names_of_server(server.pk)
    # The most qualified name first: it becomes the common name.
    dns = sorted(owned.dns_names, key=lambda name: (-name.count("."), name))
    return [*dns, *sorted(owned.ip_addresses)]


@transaction.atomic
def generate_request(
    *,
    user,
    authority,
    tenant=None,
    server=None,
    subject="",
    names=(),
    key_type="ec-p256",
    profile="server",
    validity_days=None,
    sign=False,
    approve_names=False,
):
    """Generate a key and its CSR on the portal (the key is kept encrypted, exportable by an
    admin). `names` default to the server's own names; the first is the common name."""
    rbac.require(user, "ca.add_certificaterequest")
    tenant = _resolve_tenant(user, tenant, server)
    _check_authority_for(user, authority, tenant)
    if key_type not in crypto.KEY_TYPES:
        raise ValidationError({"key_type": f"Choose one of {', '.join(crypto.KEY_TYPES)}."})
    names = [name for name in names if str(name).strip()]
    if not names and server is not None:
        names = _default_names(server)
    if not names:
        raise ValidationError({"names": "Give the names to certify, or choose a server."})
    with _refusing("names"):
        dns, ips = crypto.classify_names(names)
        first_dns, first_ip = crypto.classify_names(names[:1])
        common_name = (first_dns or first_ip)[0]
    key = crypto.generate_key(key_type)
    csr = crypto.make_csr(key, common_name=common_name, dns_names=dns, ip_addresses=ips)
    info = crypto.parse_csr(csr)
    request = _create_request(
        user=user,
        info=info,
        authority=authority,
        tenant=tenant,
        server=server,
        subject=subject,
        profile=profile,
        validity_days=validity_days,
        source=CertificateRequest.Source.PORTAL,
        private_key=key,
    )
    if sign:
        sign_request(request, user=user, approve_names=approve_names)
    return request


def _check_names(request, approve_names):
    """The request's names the subject does not own now; refused unless approved."""
    missing = registry.unowned(request.names, registry.names_of_server(request.server_id))
    if missing and not approve_names:
        owner = _owner_label(request.subject, request.server)
        raise ValidationError(
            {
                "names": f"{', '.join(missing)}: not names of {owner}. Signing them needs "
                "their explicit approval (approve_names)."
            }
        )
    return missing


def _issue(request, *, user, days=None, renewal_of=None):
    """Sign `request` with its authority and store the certificate (the caller checked)."""
    authority = request.authority
    with _refusing("csr"):
        info = crypto.parse_csr(request.csr)
        issued = crypto.issue_certificate(
            signer=signer_of(authority),
            public_key_pem=info.public_key_pem,
            common_name=request.common_name,
            dns_names=request.dns_names,
            ip_addresses=request.ip_addresses,
            profile=request.profile,
            days=days or request.validity_days or authority.default_validity_days,
            links=links_for(authority),
        )
    certificate = Certificate(
        tenant_id=request.tenant_id,
        authority=authority,
        request=request,
        server_id=request.server_id,
        subject=request.subject,
        serial=crypto.serial_hex(issued.serial),
        common_name=request.common_name,
        dns_names=request.dns_names,
        ip_addresses=request.ip_addresses,
        key_type=request.key_type,
        profile=request.profile,
        certificate=issued.pem,
        fingerprint=issued.fingerprint,
        not_before=issued.not_before,
        not_after=issued.not_after,
        renewal_of=renewal_of,
        issued_by=user if user is not None and user.is_authenticated else None,
    )
    certificate.full_clean()
    certificate.save()
    audit.created(user=user, obj=certificate)
    return certificate


def _decide(request, user, status, extra=None, **fields):
    before = audit.snapshot(request)
    request.status = status
    request.decided = timezone.now()
    request.decided_by = user
    for name, value in fields.items():
        setattr(request, name, value)
    request.save()
    audit.record(
        user=user,
        action="action",
        verb="sign" if status == request.Status.SIGNED else "reject",
        obj=request,
        before=before,
        after=audit.snapshot(request),
        extra=extra,
    )


def _lock_pending(request, user):
    rbac.require(user, "ca.sign_certificaterequest")
    rbac.check_tenant(user, request.tenant)
    request = (
        CertificateRequest.objects.select_for_update(of=("self",))
        .select_related("authority", "server", "tenant")
        .get(pk=request.pk)
    )
    if request.status != CertificateRequest.Status.PENDING:
        raise ValidationError({"status": f"This request is {request.status}, not pending."})
    return request


@transaction.atomic
def sign_request(request, *, user, approve_names=False):
    """Sign a pending request; returns the certificate."""
    request = _lock_pending(request, user)
    _check_authority_for(user, request.authority, request.tenant)
    missing = _check_names(request, approve_names)
    certificate = _issue(request, user=user)
    # Names outside the subject's own are signed only on this explicit approval: say whose.
    extra = {"serial": certificate.serial, "approved_names": missing} if missing else None
    _decide(request, user, CertificateRequest.Status.SIGNED, extra, unowned_names=missing)
    return certificate


@transaction.atomic
def reject_request(request, *, user, reason=""):
    request = _lock_pending(request, user)
    _decide(request, user, CertificateRequest.Status.REJECTED, reason=reason[:300])
    return request


# Certificates ---------------------------------------------------------------------------------


@transaction.atomic
def revoke_certificate(certificate, *, user, reason="unspecified"):
    """Revoke and publish the authority's new CRL in the same transaction."""
    rbac.require(user, "ca.revoke_certificate")
    rbac.check_tenant(user, certificate.tenant)
    if reason not in crypto.REASONS:
        raise ValidationError({"reason": f"Choose one of {', '.join(crypto.REASONS)}."})
    certificate = Certificate.objects.select_for_update(of=("self",)).get(pk=certificate.pk)
    if certificate.revoked_at is not None:
        raise ValidationError(
            {"certificate": f"Already revoked on {certificate.revoked_at:%Y-%m-%d %H:%M} UTC."}
        )
    with audit.Tracker(user, certificate, verb="revoke"):
        certificate.revoked_at = timezone.now()
        certificate.revocation_reason = reason
        certificate.save(update_fields=["revoked_at", "revocation_reason"])
    _publish(certificate.authority, user=user)
    return certificate


@transaction.atomic
def revoke_certificates(*, user, certificates, reason="unspecified"):
    """Revoke every certificate (each publishing its authority's CRL), or none: a
    ValidationError lists every certificate that refused."""
    return each_or_none(
        certificates,
        lambda certificate: revoke_certificate(certificate, user=user, reason=reason),
    )


def renew_certificate(
    certificate, *, user, validity_days=None, approve_names=False, revoke_old=False
):
    """A new certificate for the same key and names (the names are checked again: a server
    may have lost one since). With `revoke_old` the old one is revoked as superseded."""
    rbac.require(user, "ca.sign_certificaterequest")
    rbac.check_tenant(user, certificate.tenant)
    request = certificate.request
    if request is None:
        raise ValidationError({"certificate": "Its request is gone: submit a new CSR instead."})
    _check_authority_for(user, certificate.authority, certificate.tenant)
    _check_names(request, approve_names)
    renewed = _issue(request, user=user, days=validity_days, renewal_of=certificate)
    if revoke_old and certificate.revoked_at is None:
        revoke_certificate(certificate, user=user, reason="superseded")
    return renewed


@transaction.atomic
def export_certificate_key(certificate, *, user):
    """The private key the portal generated for this certificate: admins only, audited."""
    rbac.require(user, "ca.export_key")
    rbac.check_tenant(user, certificate.tenant)
    request = certificate.request
    if request is None or not request.private_key:
        raise ValidationError(
            {"certificate": "The portal does not hold this key: the CSR was made elsewhere."}
        )
    audit.record(user=user, action="action", verb="export_key", obj=certificate)
    return request.private_key.reveal()


# Build-token autosign -------------------------------------------------------------------------


def host_authority(tenant_id):
    """The authority that signs hosts' certificates (settings.CA_HOST_AUTHORITY)."""
    slug = settings.CA_HOST_AUTHORITY
    authority = Authority.objects.filter(slug=slug).first()
    if authority is None:
        raise HostAuthorityMissing(
            f"The host authority {slug!r} does not exist yet (manage.py ca init --slug {slug})."
        )
    if authority.tenant_id not in (None, tenant_id):
        raise HostAuthorityMissing(f"The host authority {slug!r} belongs to another tenant.")
    if authority.is_revoked or authority.is_expired:
        raise HostAuthorityMissing(f"The host authority {slug!r} is revoked or expired.")
    return authority


@transaction.atomic
def autosign(*, token, csr):
    """A server in build mode sends a CSR for its own names with its build token and gets its
    certificate at once; one per build. Returns (certificate, chain PEM: leaf first).

    Raises ca.autosign.Denied (403), AlreadyIssued (409), HostAuthorityMissing (503) or
    ValidationError (400)."""
    grant = registry.authorize(token)
    key = autosign_key(token)
    if CertificateRequest.objects.filter(autosign_key=key).exists():
        raise AlreadyIssued(
            "This build already has its certificate; a new build (nodeset) gives a new token."
        )
    authority = host_authority(grant.tenant_id)
    with _refusing("csr"):
        info = crypto.parse_csr(csr)
    missing = registry.unowned(info.names, grant.names)
    if missing:
        raise ValidationError(
            {"csr": f"{', '.join(missing)}: not names of {grant.subject}, refused."}
        )
    request = CertificateRequest(
        tenant_id=grant.tenant_id,
        authority=authority,
        server_id=grant.server_id,
        subject=grant.subject,
        csr=info.pem,
        common_name=info.common_name,
        dns_names=list(info.dns_names),
        ip_addresses=list(info.ip_addresses),
        key_type=info.key_type,
        profile=AUTOSIGN_PROFILE,
        status=CertificateRequest.Status.SIGNED,
        source=CertificateRequest.Source.AUTOSIGN,
        autosign_key=key,
        decided=timezone.now(),
    )
    request.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            request.save()
    except IntegrityError:
        # Two CSRs of one build at the same moment: the unique key lets one through.
        raise AlreadyIssued("This build already has its certificate.") from None
    audit.created(user=None, obj=request)
    certificate = _issue(request, user=None)
    return certificate, certificate.certificate + chain_pem(authority)

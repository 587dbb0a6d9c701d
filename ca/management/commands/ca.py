"""`manage.py ca init|list|sign|revoke|renew|crl|export`: the certificate authority from the
command line, acting as a portal user (--user) with that user's rights and tenants.

    ca init "Fleet root" --slug root                       a root (EC P-384 by default)
    ca init "Hosts" --slug hosts --parent root             an intermediate signed by it
    ca init "Old CA" --slug old --import-cert ca.pem --import-key ca.key
    ca list [authorities|certificates|pending|expiring] [--days 30]
    ca sign req.csr --authority hosts [--server web01] [--approve-names] [--out cert.pem]
    ca sign --request 12 [--approve-names]                 sign a pending request
    ca revoke 4F:33:1E… [--reason key_compromise]
    ca renew 4F:33:1E… [--days 365] [--revoke-old]
    ca crl hosts [--out hosts.crl] [--der]                 publish now and write it out
    ca crl --refresh [--force]                             republish CRLs near nextUpdate (cron)
    ca export hosts [--key]                                chain PEM; --key: the private key
    ca export --certificate 4F:33:1E… [--key]              (keys: admins only, audited)
"""

import argparse
import os
import sys

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from ca import crypto, selectors, services
from ca.models import CertificateRequest, KeyType, Profile
from dcportal import rbac
from dcportal.management.base import PortalCommand
from dcportal.models import Tenant

LIST_KINDS = ("authorities", "certificates", "pending", "expiring")


def _read(path):
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read(crypto.MAX_PEM_CHARS + 1)
    except OSError as exc:
        raise CommandError(f"{path}: {exc.strerror}") from None


def _from_file(path, exc):
    """A service's refusal of what a file held, named after the file."""
    if hasattr(exc, "error_dict"):
        text = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
    else:
        text = " ".join(exc.messages)
    return CommandError(f"{path}: {text}")


class Command(PortalCommand):
    help = "Certificate authority: init, list, sign, revoke, renew, crl, export."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="operation", required=True, metavar="OPERATION")

        def command(name, help_text):
            p = sub.add_parser(name, help=help_text)
            # Also accepted after the operation; SUPPRESS keeps the main parser's value.
            p.add_argument("--user", default=argparse.SUPPRESS, help="Portal user to act as.")
            return p

        p = command("init", "Create a root or an intermediate, or import an existing CA.")
        p.add_argument("name")
        p.add_argument("--slug", required=True, help="Names its public files /pki/<slug>.*")
        p.add_argument("--parent", help="Signing authority (slug); without it, a root.")
        p.add_argument("--tenant", help="Owning tenant (slug); without it, shared (admins).")
        p.add_argument("--key-type", default=services.DEFAULT_KEY_TYPE, choices=KeyType.values)
        p.add_argument("--common-name", default="", help="Default: the name.")
        p.add_argument("--organization", default="")
        p.add_argument("--days", type=int, help="Validity (3650 root, 1825 intermediate).")
        p.add_argument("--path-length", type=int)
        p.add_argument("--default-validity-days", type=int, default=365)
        p.add_argument("--crl-validity-hours", type=int, default=168)
        p.add_argument("--import-cert", metavar="FILE", help="Import: certificate (chain) PEM.")
        p.add_argument("--import-key", metavar="FILE", help="Import: private key PEM.")
        p.add_argument("--key-password-file", metavar="FILE", help="Import: key password.")

        p = command("list", "List authorities, certificates, pending CSRs or expiring ones.")
        p.add_argument("kind", nargs="?", default="authorities", choices=LIST_KINDS)
        p.add_argument("--days", type=int, default=30, help="expiring: within N days.")
        p.add_argument("--authority", help="Only this authority (slug).")
        p.add_argument("--tenant", help="Only this tenant (slug).")

        p = command("sign", "Sign a CSR file (or a pending request with --request).")
        p.add_argument("csr", nargs="?", help="PEM CSR file, or - for standard input.")
        p.add_argument("--request", type=int, help="Sign this pending request instead.")
        p.add_argument("--authority", help="Signing authority (slug).")
        p.add_argument("--server", help="The server it is for (host name).")
        p.add_argument("--tenant", help="Tenant (slug); default: the server's.")
        p.add_argument("--subject", default="", help="What it is for, without a server.")
        p.add_argument("--profile", default=Profile.SERVER, choices=Profile.values)
        p.add_argument("--days", type=int, help="Validity; default: the authority's.")
        p.add_argument(
            "--approve-names", action="store_true", help="Approve names the server lacks."
        )
        p.add_argument("--out", metavar="FILE", help="Write the chain here, not to stdout.")

        p = command("revoke", "Revoke a certificate by serial and publish the new CRL.")
        p.add_argument("serial", help="Hexadecimal, as openssl shows it.")
        p.add_argument("--authority", help="Issuing authority (slug), if the serial is ambiguous.")
        p.add_argument("--reason", default="unspecified", choices=crypto.REASONS)

        p = command("renew", "Issue a new certificate for the same key and names.")
        p.add_argument("serial")
        p.add_argument("--authority")
        p.add_argument("--days", type=int)
        p.add_argument("--approve-names", action="store_true")
        p.add_argument("--revoke-old", action="store_true", help="Revoke it as superseded.")
        p.add_argument("--out", metavar="FILE")

        p = command("crl", "Publish an authority's CRL now, or refresh those near nextUpdate.")
        p.add_argument("authority", nargs="?", help="Authority (slug).")
        p.add_argument("--refresh", action="store_true", help="Refresh every CRL that is due.")
        p.add_argument("--force", action="store_true", help="With --refresh: all of them.")
        p.add_argument("--out", metavar="FILE")
        p.add_argument("--der", action="store_true", help="Write DER instead of PEM.")

        p = command("export", "Write an authority's chain or a certificate (PEM); --key: its key.")
        p.add_argument("authority", nargs="?", help="Authority (slug).")
        p.add_argument("--certificate", metavar="SERIAL", help="A certificate instead.")
        p.add_argument("--key", action="store_true", help="The private key (admins, audited).")
        p.add_argument("--out", metavar="FILE")

    def handle(self, *args, operation, **options):
        self.user = self.acting_user(options)
        getattr(self, f"do_{operation}")(**options)

    # Lookups ------------------------------------------------------------------------------------

    def authority(self, slug, action="view"):
        if not slug:
            raise CommandError("name the authority (--authority SLUG)")
        found = selectors.authorities_for(self.user, action).filter(slug=slug).first()
        if found is None:
            raise CommandError(f"no authority {slug!r} (or you may not {action} it)")
        return found

    def tenant(self, slug):
        if not slug:
            return None
        found = rbac.restrict(Tenant.objects.all(), self.user).filter(slug=slug).first()
        if found is None:
            raise CommandError(f"no tenant {slug!r}")
        return found

    def server(self, hostname):
        if not hostname:
            return None
        model = CertificateRequest._meta.get_field("server").related_model
        found = rbac.restrict(model.objects.all(), self.user).filter(hostname=hostname).first()
        if found is None:
            raise CommandError(f"no server {hostname!r}")
        return found

    def certificate(self, serial, authority=None):
        try:
            value = crypto.serial_hex(crypto.parse_serial(serial))
        except crypto.CryptoError as exc:
            raise CommandError(str(exc)) from None
        found = selectors.certificates_for(self.user).filter(serial=value)
        if authority:
            found = found.filter(authority__slug=authority)
        found = list(found[:2])
        if not found:
            raise CommandError(f"no certificate with serial {serial}")
        if len(found) > 1:
            raise CommandError(f"serial {serial} is ambiguous: add --authority")
        return found[0]

    def write(self, text, out, *, secret=False):
        if not out:
            self.stdout.write(text, ending="" if text.endswith("\n") else "\n")
            return
        data = text if isinstance(text, bytes) else text.encode()
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        try:
            fd = os.open(out, flags, 0o600 if secret else 0o644)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        except OSError as exc:
            raise CommandError(f"{out}: {exc.strerror}") from None
        self.stderr.write(f"wrote {out}")

    # Operations ---------------------------------------------------------------------------------

    def do_init(self, *, name, slug, parent, tenant, import_cert, import_key, **options):
        common = {
            "user": self.user,
            "name": name,
            "slug": slug,
            "tenant": self.tenant(tenant),
            "parent": self.authority(parent) if parent else None,
            "default_validity_days": options["default_validity_days"],
            "crl_validity_hours": options["crl_validity_hours"],
        }
        if bool(import_cert) != bool(import_key):
            raise CommandError("an import needs both --import-cert and --import-key")
        if import_cert:
            password = None
            if options["key_password_file"]:
                password = _read(options["key_password_file"]).strip()
            try:
                authority = services.import_authority(
                    certificate=_read(import_cert),
                    private_key=_read(import_key),
                    password=password,
                    **common,
                )
            except ValidationError as exc:
                raise _from_file(f"{import_cert} / {import_key}", exc) from None
            verb = "imported"
        else:
            authority = services.create_authority(
                key_type=options["key_type"],
                common_name=options["common_name"],
                organization=options["organization"],
                days=options["days"],
                path_length=options["path_length"],
                **common,
            )
            verb = "created"
        urls = services.public_urls(authority.slug)
        kind = "root" if authority.is_root else f"intermediate under {authority.parent.slug}"
        self.stdout.write(
            f"{verb} authority {authority.slug} ({kind}, {authority.key_type}, "
            f"valid until {authority.not_after:%Y-%m-%d})\n"
            f"  chain {urls['pem']}\n  crl   {urls['crl']}"
        )

    def do_list(self, *, kind, days, authority, tenant, **options):
        if kind == "authorities":
            rows = selectors.authorities_for(self.user)
            if tenant:
                rows = rows.filter(tenant__slug=tenant)
            for a in rows:
                crl = getattr(a, "crl", None)
                owner = a.tenant.slug if a.tenant else "(shared)"
                place = "root" if a.is_root else f"under {a.parent.slug}"
                state = (
                    f"crl #{crl.number} next {crl.next_update:%Y-%m-%d %H:%M}" if crl else "no CRL"
                )
                revoked = " REVOKED" if a.is_revoked else ""
                self.stdout.write(
                    f"{a.slug:20} {a.key_type:9} {owner:12} {place:18} "
                    f"until {a.not_after:%Y-%m-%d} {state} {a.certificate_count} certs{revoked}"
                )
            return
        if kind == "pending":
            rows = selectors.pending_requests(self.user)
            if authority:
                rows = rows.filter(authority__slug=authority)
            if tenant:
                rows = rows.filter(tenant__slug=tenant)
            for r in rows:
                extra = f" needs approval: {', '.join(r.unowned_names)}" if r.unowned_names else ""
                self.stdout.write(
                    f"{r.pk:>6} {r.created:%Y-%m-%d %H:%M} {r.tenant.slug:12} "
                    f"{r.authority.slug:12} {', '.join(r.names)}{extra}"
                )
            return
        rows = selectors.certificates_for(self.user)
        if authority:
            rows = rows.filter(authority__slug=authority)
        if tenant:
            rows = rows.filter(tenant__slug=tenant)
        if kind == "expiring":
            rows = selectors.expiring(rows, days)
        for c in rows:
            self.stdout.write(
                f"{c.serial:40} {c.status:8} {c.not_after:%Y-%m-%d} {c.authority.slug:12} "
                f"{c.tenant.slug:12} {c.common_name}"
            )

    def do_sign(self, *, csr, request, authority, server, tenant, out, **options):
        if request is not None:
            if csr:
                raise CommandError("give a CSR file or --request, not both")
            pending = selectors.requests_for(self.user).filter(pk=request).first()
            if pending is None:
                raise CommandError(f"no request {request}")
            certificate = services.sign_request(
                pending, user=self.user, approve_names=options["approve_names"]
            )
        else:
            if not csr:
                raise CommandError("give a CSR file (or - for standard input), or --request ID")
            try:
                created = services.submit_request(
                    user=self.user,
                    authority=self.authority(authority),
                    csr=_read(csr),
                    tenant=self.tenant(tenant),
                    server=self.server(server),
                    subject=options["subject"],
                    profile=options["profile"],
                    validity_days=options["days"],
                    source=CertificateRequest.Source.CLI,
                    sign=True,
                    approve_names=options["approve_names"],
                )
            except ValidationError as exc:
                raise _from_file(csr, exc) from None
            certificate = created.certificates.get()
        self.stderr.write(
            f"signed {certificate.common_name}: serial {certificate.serial}, "
            f"valid until {certificate.not_after:%Y-%m-%d}"
        )
        self.write(certificate.certificate + services.chain_pem(certificate.authority), out)

    def do_revoke(self, *, serial, authority, reason, **options):
        certificate = self.certificate(serial, authority)
        services.revoke_certificate(certificate, user=self.user, reason=reason)
        crl = certificate.authority.crl
        crl.refresh_from_db()
        self.stdout.write(
            f"revoked {certificate.serial} ({certificate.common_name}, {reason}); "
            f"CRL #{crl.number} of {certificate.authority.slug} published"
        )

    def do_renew(self, *, serial, authority, days, out, **options):
        certificate = self.certificate(serial, authority)
        renewed = services.renew_certificate(
            certificate,
            user=self.user,
            validity_days=days,
            approve_names=options["approve_names"],
            revoke_old=options["revoke_old"],
        )
        self.stderr.write(
            f"renewed {certificate.serial} as {renewed.serial}, "
            f"valid until {renewed.not_after:%Y-%m-%d}"
        )
        self.write(renewed.certificate + services.chain_pem(renewed.authority), out)

    def do_crl(self, *, authority, refresh, force, out, der, **options):
        if refresh:
            if authority:
                raise CommandError("--refresh works on every authority; drop the slug")
            done = services.refresh_crls(user=self.user, force=force)
            names = f": {', '.join(done)}" if done else ""
            self.stdout.write(f"refreshed {len(done)} CRL(s){names}")
            return
        if not authority:
            raise CommandError("name the authority (slug), or use --refresh")
        crl = services.publish_crl(self.authority(authority), user=self.user)
        self.stderr.write(
            f"CRL #{crl.number} of {authority}: {crl.entries} entries, "
            f"next update {crl.next_update:%Y-%m-%d %H:%M} UTC"
        )
        self.write(crypto.pem_to_der(crl.pem) if der else crl.pem, out)

    def do_export(self, *, authority, certificate, key, out, **options):
        if bool(authority) == bool(certificate):
            raise CommandError("name an authority (slug) or --certificate SERIAL")
        if certificate:
            found = self.certificate(certificate)
            if key:
                self.write(services.export_certificate_key(found, user=self.user), out, secret=True)
            else:
                self.write(found.certificate + services.chain_pem(found.authority), out)
            return
        found = self.authority(authority)
        if key:
            self.write(services.export_authority_key(found, user=self.user), out, secret=True)
        else:
            self.write(services.chain_pem(found), out)

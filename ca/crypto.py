"""The certificate authority's cryptography over `cryptography`: keys, CSR checks, certificates
and CRLs.

Pure functions on PEM text and small dataclasses: no ORM, no settings, no clock unless `now` is
left out. Every refusal is a CryptoError whose message can be shown to whoever sent the input.
"""

import base64
import datetime as dt
import ipaddress
import re
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

KEY_TYPES = ("rsa-2048", "rsa-3072", "rsa-4096", "ec-p256", "ec-p384", "ed25519")
PROFILES = ("server", "client", "both")
# CRL reasons a revocation may give (x509.ReasonFlags member names). certificateHold is left out:
# a hold can be lifted, and a revocation here is final.
REASONS = (
    "unspecified",
    "key_compromise",
    "ca_compromise",
    "affiliation_changed",
    "superseded",
    "cessation_of_operation",
    "privilege_withdrawn",
)
SERIAL_BITS = 159
MAX_CN = 64  # X.509's upper bound for a common name
MAX_PEM_CHARS = 64 * 1024
# Certificates start a little in the past so that a host whose clock runs slow accepts them.
CLOCK_SKEW = dt.timedelta(minutes=5)

_CURVES = {"ec-p256": ec.SECP256R1, "ec-p384": ec.SECP384R1}
_CURVE_TYPES = {"secp256r1": "ec-p256", "secp384r1": "ec-p384"}
_WEAK_HASHES = (hashes.MD5, hashes.SHA1)
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_PEM_BLOCK = re.compile(
    r"-----BEGIN (?P<label>[A-Z0-9 ]+)-----\s*(?P<body>[A-Za-z0-9+/=\s]*?)-----END (?P=label)-----"
)
_EKU = {
    "server": [ExtendedKeyUsageOID.SERVER_AUTH],
    "client": [ExtendedKeyUsageOID.CLIENT_AUTH],
    "both": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
}


class CryptoError(ValueError):
    """Input the CA refuses. str() is a message for the sender."""


class MalformedInput(CryptoError):
    """Not PEM, not the expected object, or unreadable."""


class BadSignature(CryptoError):
    """The CSR's self-signature does not verify."""


class WeakKey(CryptoError):
    """A key type or size (or a signature hash) the CA does not accept."""


class BadName(CryptoError):
    """A subject name that is not a host name or an IP address."""


@dataclass(frozen=True)
class CsrInfo:
    """A checked CSR: its signature verified, its key allowed, its names normalised."""

    pem: str
    common_name: str
    dns_names: tuple
    ip_addresses: tuple
    key_type: str
    public_key_pem: str

    @property
    def names(self):
        return (*self.dns_names, *self.ip_addresses)


@dataclass(frozen=True)
class CertInfo:
    pem: str
    subject: str
    issuer: str
    common_name: str
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime
    is_ca: bool
    path_length: int | None
    key_type: str
    fingerprint: str
    dns_names: tuple
    ip_addresses: tuple

    @property
    def serial_hex(self):
        return serial_hex(self.serial)


@dataclass(frozen=True)
class Signer:
    """An authority as the signing functions need it: its certificate and its private key."""

    certificate_pem: str
    private_key_pem: str


@dataclass(frozen=True)
class Links:
    """Where relying parties find the issuer's CRL (CDP) and certificate (AIA caIssuers)."""

    crl_url: str = ""
    issuer_url: str = ""


@dataclass(frozen=True)
class Revoked:
    serial: int
    revoked_at: dt.datetime
    reason: str = "unspecified"


# Keys -------------------------------------------------------------------------------------------


def generate_key(key_type):
    """A new private key of `key_type` (KEY_TYPES) as unencrypted PKCS#8 PEM."""
    if key_type.startswith("rsa-") and key_type in KEY_TYPES:
        key = rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
    elif key_type in _CURVES:
        key = ec.generate_private_key(_CURVES[key_type]())
    elif key_type == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise WeakKey(f"Unknown key type {key_type!r}: use one of {', '.join(KEY_TYPES)}.")
    return _private_pem(key)


def _private_pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _load_private_key(pem, password=None, *, stored=False):
    """`stored`: a key the CA generated or checked on import. RSA's consistency check costs
    ~35 ms per load and would dominate every signature, so it is done once, not per use."""
    try:
        return serialization.load_pem_private_key(
            _ascii(pem, "private key"),
            password=password.encode() if password else None,
            unsafe_skip_rsa_key_validation=stored,
        )
    except TypeError as exc:
        # cryptography says "Password was not given but private key is encrypted" and the like.
        raise MalformedInput(f"The private key cannot be read: {exc}") from None
    except (ValueError, UnsupportedAlgorithm):
        raise MalformedInput(
            "The private key is not a readable PEM key (or the password is wrong)."
        ) from None


def read_private_key(pem, password=None):
    """An uploaded key (PKCS#1, PKCS#8, SEC1; encrypted if `password`), checked against the key
    policy. Returns (unencrypted PKCS#8 PEM, key type)."""
    key = _load_private_key(pem, password)
    key_type = check_key(key.public_key())
    return _private_pem(key), key_type


def key_type_of(public_key):
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"rsa-{public_key.key_size}"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return _CURVE_TYPES.get(public_key.curve.name, f"ec-{public_key.curve.name}")
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "ed25519"
    return type(public_key).__name__.removeprefix("_").lower()


def check_key(public_key):
    """The key's type name if the CA accepts it; WeakKey with the reason otherwise."""
    key_type = key_type_of(public_key)
    if key_type in KEY_TYPES:
        return key_type
    if isinstance(public_key, rsa.RSAPublicKey):
        size = public_key.key_size
        if size < 2048:
            raise WeakKey(f"An RSA key of {size} bits is too weak: use 2048, 3072 or 4096 bits.")
        raise WeakKey(f"RSA keys of {size} bits are not accepted: use 2048, 3072 or 4096 bits.")
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        raise WeakKey(
            f"The elliptic curve {public_key.curve.name} is not accepted: use P-256 or P-384."
        )
    raise WeakKey(
        f"{key_type.upper()} keys are not accepted: use RSA (2048, 3072, 4096 bits), "
        "EC (P-256, P-384) or Ed25519."
    )


def public_key_pem(private_key_pem):
    key = _load_private_key(private_key_pem)
    return _public_pem(key.public_key())


def _public_pem(public_key):
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _signing_hash(private_key):
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(private_key, ec.EllipticCurvePrivateKey) and private_key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


# PEM ------------------------------------------------------------------------------------------


def _text(value, what):
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            value = bytes(value).decode("ascii")
        except UnicodeDecodeError:
            raise MalformedInput(f"The {what} is not PEM text.") from None
    if not isinstance(value, str):
        raise MalformedInput(f"The {what} is not PEM text.")
    if len(value) > MAX_PEM_CHARS:
        raise MalformedInput(f"The {what} is larger than {MAX_PEM_CHARS} characters.")
    return value


def _ascii(value, what):
    text = _text(value, what)
    try:
        return text.encode("ascii")
    except UnicodeEncodeError:
        raise MalformedInput(f"The {what} is not PEM text.") from None


def pem_blocks(text, labels):
    """The PEM blocks of `text` whose label is one of `labels`, each as its own PEM string."""
    return [
        f"-----BEGIN {m['label']}-----\n{_rewrap(m['body'])}-----END {m['label']}-----\n"
        for m in _PEM_BLOCK.finditer(text)
        if m["label"] in labels
    ]


def _rewrap(body):
    flat = "".join(body.split())
    return "".join(flat[i : i + 64] + "\n" for i in range(0, len(flat), 64))


def pem_to_der(pem):
    """The DER bytes of the first PEM block of `pem`."""
    match = _PEM_BLOCK.search(pem)
    if match is None:
        raise MalformedInput("No PEM block found.")
    return base64.b64decode("".join(match["body"].split()))


def der_to_pem(der, label):
    body = _rewrap(base64.b64encode(der).decode())
    return f"-----BEGIN {label}-----\n{body}-----END {label}-----\n"


# Names ----------------------------------------------------------------------------------------


def normalise_dns_name(name):
    """Lowercase, without a trailing dot; BadName unless a host name (or *.host.name)."""
    value = str(name).strip().lower().rstrip(".")
    labels = value.split(".")
    check = labels[1:] if labels[0] == "*" and len(labels) > 2 else labels
    if not value or len(value) > 253 or not all(_LABEL.match(label) for label in check):
        raise BadName(f"{name!r} is not a host name.")
    return value


def normalise_ip(value):
    try:
        return ipaddress.ip_address(str(value).strip()).compressed
    except ValueError:
        raise BadName(f"{value!r} is not an IP address.") from None


def classify_names(names):
    """Split host names and IP addresses, normalised, without duplicates, order kept."""
    dns, ips = [], []
    for name in names:
        text = str(name).strip()
        if not text:
            continue
        try:
            value = normalise_ip(text)
            target = ips
        except BadName:
            value = normalise_dns_name(text)
            target = dns
        if value not in target:
            target.append(value)
    return tuple(dns), tuple(ips)


def _san_names(extensions):
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    dns, ips = [], []
    for general_name in san:
        if isinstance(general_name, x509.DNSName):
            dns.append(general_name.value)
        elif isinstance(general_name, x509.IPAddress):
            ips.append(str(general_name.value))
        else:
            kind = type(general_name).__name__
            raise BadName(
                f"The subject alternative name {general_name.value!r} is a {kind}: only DNS "
                "names and IP addresses can be certified."
            )
    return dns, ips


def _common_name(name):
    attributes = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attributes[0].value) if attributes else ""


# CSRs -----------------------------------------------------------------------------------------


def _subject(common_name):
    """CN=<name>, or an empty subject for a name longer than X.509's 64-character CN limit
    (the name is then only in the SANs, which RFC 5280 then wants critical)."""
    if 0 < len(common_name) <= MAX_CN:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return x509.Name([])


def make_csr(private_key_pem, *, common_name, dns_names=(), ip_addresses=()):
    """A CSR signed by `private_key_pem` for the given names (the portal-generated key case)."""
    key = _load_private_key(private_key_pem, stored=True)
    subject = _subject(common_name)
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    general = _general_names(dns_names, ip_addresses)
    if general:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(general), critical=not len(subject)
        )
    return builder.sign(key, _signing_hash(key)).public_bytes(serialization.Encoding.PEM).decode()


def parse_csr(value):
    """Read and check a PEM CSR: readable, self-signature valid, key and hash allowed, every
    name a host name or an IP address. The common name counts as a name to certify."""
    text = _text(value, "CSR")
    blocks = pem_blocks(text, ("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"))
    if not blocks:
        raise MalformedInput(
            "The CSR is not PEM: expected a block starting with "
            "-----BEGIN CERTIFICATE REQUEST-----."
        )
    if len(blocks) > 1:
        raise MalformedInput("Send one CSR at a time (found several PEM blocks).")
    pem = blocks[0].replace("NEW CERTIFICATE REQUEST", "CERTIFICATE REQUEST")
    try:
        csr = x509.load_pem_x509_csr(pem.encode())
        subject = csr.subject
        extensions = csr.extensions
    except ValueError as exc:
        raise MalformedInput(f"The CSR cannot be parsed: {exc}") from None
    try:
        public_key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise WeakKey("The CSR's public key is of a type the CA does not accept.") from None
    key_type = check_key(public_key)
    try:
        hash_algorithm = csr.signature_hash_algorithm
    except UnsupportedAlgorithm:
        raise WeakKey("The CSR is signed with an algorithm the CA does not accept.") from None
    if isinstance(hash_algorithm, _WEAK_HASHES):
        raise WeakKey(f"The CSR is signed with {hash_algorithm.name.upper()}: use SHA-256.")
    if not csr.is_signature_valid:
        raise BadSignature(
            "The CSR's signature does not verify: it was altered, or not signed with the key "
            "it carries."
        )
    raw_dns, raw_ips = _san_names(extensions)
    common_name = _common_name(subject).strip()
    dns_names, ip_addresses = classify_names([*raw_dns, *raw_ips])
    if common_name:
        cn_dns, cn_ips = classify_names([common_name])
        common_name = (cn_dns or cn_ips)[0]
        dns_names = tuple(dict.fromkeys((*dns_names, *cn_dns)))
        ip_addresses = tuple(dict.fromkeys((*ip_addresses, *cn_ips)))
    if not dns_names and not ip_addresses:
        raise BadName("The CSR names nothing to certify: give a common name or a subjectAltName.")
    return CsrInfo(
        pem=pem,
        common_name=common_name or (dns_names or ip_addresses)[0],
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        key_type=key_type,
        public_key_pem=_public_pem(public_key),
    )


# Certificates ---------------------------------------------------------------------------------


def random_serial():
    """A random serial of exactly SERIAL_BITS bits: positive and at most 20 octets in DER."""
    return secrets.randbits(SERIAL_BITS - 1) | (1 << (SERIAL_BITS - 1))


def serial_hex(serial):
    return format(serial, "x")


def parse_serial(text):
    """A serial as openssl prints it (hex, with or without colons, `serial=`, `0x`)."""
    value = str(text).strip().lower().removeprefix("serial=").removeprefix("0x").replace(":", "")
    if not value or not re.fullmatch(r"[0-9a-f]+", value):
        raise MalformedInput(f"{text!r} is not a serial number (hexadecimal, as openssl shows).")
    return int(value, 16)


def fingerprint(certificate):
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def _load_certificate(pem):
    blocks = pem_blocks(_text(pem, "certificate"), ("CERTIFICATE",))
    if not blocks:
        raise MalformedInput(
            "Not a PEM certificate: expected a block starting with -----BEGIN CERTIFICATE-----."
        )
    try:
        return x509.load_pem_x509_certificate(blocks[0].encode())
    except ValueError as exc:
        raise MalformedInput(f"The certificate cannot be parsed: {exc}") from None


def split_certificates(text):
    """Every certificate block of `text` (a chain file), in order."""
    return pem_blocks(_text(text, "certificate chain"), ("CERTIFICATE",))


def parse_certificate(pem):
    cert = _load_certificate(pem)
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca, path_length = constraints.ca, constraints.path_length
    except x509.ExtensionNotFound:
        is_ca, path_length = False, None
    dns, ips = _san_names(cert.extensions)
    return CertInfo(
        pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        common_name=_common_name(cert.subject),
        serial=cert.serial_number,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        is_ca=is_ca,
        path_length=path_length,
        key_type=key_type_of(cert.public_key()),
        fingerprint=fingerprint(cert),
        dns_names=tuple(dns),
        ip_addresses=tuple(ips),
    )


def key_matches(private_key_pem, certificate_pem):
    cert = _load_certificate(certificate_pem)
    key = _load_private_key(private_key_pem)
    return _public_pem(key.public_key()) == _public_pem(cert.public_key())


def is_issued_by(child_pem, parent_pem):
    """True if `parent_pem` names and signed `child_pem`."""
    child, parent = _load_certificate(child_pem), _load_certificate(parent_pem)
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def is_self_signed(pem):
    return is_issued_by(pem, pem)


def _general_names(dns_names, ip_addresses):
    return [
        *(x509.DNSName(name) for name in dns_names),
        *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses),
    ]


def _key_identifier(issuer_cert):
    try:
        ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key())


def _with_links(builder, links):
    if links is None:
        return builder
    if links.crl_url:
        point = x509.DistributionPoint(
            full_name=[x509.UniformResourceIdentifier(links.crl_url)],
            relative_name=None,
            reasons=None,
            crl_issuer=None,
        )
        builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
    if links.issuer_url:
        access = x509.AccessDescription(
            AuthorityInformationAccessOID.CA_ISSUERS,
            x509.UniformResourceIdentifier(links.issuer_url),
        )
        builder = builder.add_extension(x509.AuthorityInformationAccess([access]), critical=False)
    return builder


@dataclass(frozen=True)
class Issued:
    pem: str
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime
    fingerprint: str


def _validity(now, days, issuer_cert):
    now = now or dt.datetime.now(dt.UTC)
    not_before = now - CLOCK_SKEW
    not_after = now + dt.timedelta(days=days)
    if issuer_cert is not None:
        # A certificate never outlives (nor predates) the authority that vouches for it.
        not_before = max(not_before, issuer_cert.not_valid_before_utc)
        not_after = min(not_after, issuer_cert.not_valid_after_utc)
        if not_after <= now:
            raise CryptoError("The authority's own certificate has expired: it cannot sign.")
    return not_before, not_after


def _sign(builder, key):
    cert = builder.sign(key, _signing_hash(key))
    return Issued(
        pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        serial=cert.serial_number,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        fingerprint=fingerprint(cert),
    )


def create_ca_certificate(
    *,
    private_key_pem,
    common_name,
    organization="",
    days,
    path_length=None,
    parent=None,
    links=None,
    now=None,
):
    """A CA certificate for `private_key_pem`: self-signed (a root) without `parent` (a Signer),
    else signed by it (an intermediate, with CDP/AIA `links` to the parent)."""
    if not 0 < len(common_name) <= MAX_CN or len(organization) > MAX_CN:
        raise BadName(f"A common name or organization has 1 to {MAX_CN} characters.")
    key = _load_private_key(private_key_pem, stored=True)
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    subject = x509.Name(attributes)
    if parent is None:
        issuer_cert, signing_key, issuer_name = None, key, subject
    else:
        issuer_cert = _load_certificate(parent.certificate_pem)
        signing_key = _load_private_key(parent.private_key_pem, stored=True)
        issuer_name = issuer_cert.subject
    not_before, not_after = _validity(now, days, issuer_cert)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    aki = (
        x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
        if issuer_cert is None
        else _key_identifier(issuer_cert)
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(random_serial())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(aki, critical=False)
    )
    return _sign(_with_links(builder, links if parent is not None else None), signing_key)


def issue_certificate(
    *,
    signer,
    public_key_pem,
    common_name,
    dns_names=(),
    ip_addresses=(),
    profile="server",
    days,
    links=None,
    now=None,
):
    """An end-entity certificate: subject CN only (nothing unchecked from the CSR is copied),
    SANs, key usage and EKU of the profile, SKI/AKI, CDP and AIA pointing at the issuer."""
    if profile not in PROFILES:
        raise CryptoError(f"Unknown profile {profile!r}: use one of {', '.join(PROFILES)}.")
    if days < 1:
        raise CryptoError("The validity must be at least one day.")
    issuer_cert = _load_certificate(signer.certificate_pem)
    signing_key = _load_private_key(signer.private_key_pem, stored=True)
    try:
        public_key = serialization.load_pem_public_key(public_key_pem.encode())
    except (ValueError, UnsupportedAlgorithm):
        raise MalformedInput("The public key cannot be read.") from None
    check_key(public_key)
    general = _general_names(dns_names, ip_addresses)
    if not general:
        raise BadName("A certificate needs at least one host name or IP address.")
    not_before, not_after = _validity(now, days, issuer_cert)
    subject = _subject(common_name)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject)
        .public_key(public_key)
        .serial_number(random_serial())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                # Only RSA keys encrypt session keys (TLS 1.2 RSA key exchange).
                key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(_EKU[profile]), critical=False)
        .add_extension(x509.SubjectAlternativeName(general), critical=not len(subject))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(_key_identifier(issuer_cert), critical=False)
    )
    return _sign(_with_links(builder, links), signing_key)


# CRLs -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CrlInfo:
    pem: str
    number: int
    this_update: dt.datetime
    next_update: dt.datetime
    entries: int


def build_crl(*, signer, entries, number, this_update, next_update):
    """A CRL of `entries` (Revoked) signed by `signer`, numbered `number`, PEM."""
    if next_update <= this_update:
        raise CryptoError("A CRL's nextUpdate must come after its thisUpdate.")
    issuer_cert = _load_certificate(signer.certificate_pem)
    key = _load_private_key(signer.private_key_pem, stored=True)
    revoked = []
    for entry in entries:
        item = (
            x509.RevokedCertificateBuilder()
            .serial_number(entry.serial)
            .revocation_date(entry.revoked_at)
        )
        if entry.reason and entry.reason != "unspecified":
            # RFC 5280 5.3.1: the reason code is left out rather than given as unspecified.
            item = item.add_extension(
                x509.CRLReason(getattr(x509.ReasonFlags, entry.reason)), critical=False
            )
        revoked.append(item.build())
    # The builder copies its list on every add: 10k entries one by one would be quadratic.
    builder = (
        x509.CertificateRevocationListBuilder(revoked_certificates=revoked)
        .issuer_name(issuer_cert.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(_key_identifier(issuer_cert), critical=False)
    )
    crl = builder.sign(key, _signing_hash(key))
    return CrlInfo(
        pem=crl.public_bytes(serialization.Encoding.PEM).decode(),
        number=number,
        this_update=crl.last_update_utc,
        next_update=crl.next_update_utc,
        entries=len(revoked),
    )

"""ca.crypto without a database: CSR checks, certificate contents, validity, CRLs, serials."""

import datetime as dt
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ca import crypto

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def root():
    key = crypto.generate_key("ec-p256")
    issued = crypto.create_ca_certificate(
        private_key_pem=key, common_name="Test root", days=3650, now=NOW
    )
    return crypto.Signer(issued.pem, key)


def _csr(key, *, cn="web01.example.com", sans=None, hash_algorithm=None):
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]) if cn else x509.Name([])
    )
    if sans is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hash_algorithm or hashes.SHA256()).public_bytes(
        serialization.Encoding.PEM
    )


def _cert(pem):
    return x509.load_pem_x509_certificate(pem.encode())


@pytest.mark.parametrize("key_type", crypto.KEY_TYPES)
def test_every_key_type_makes_a_csr_the_checks_accept(key_type):
    key = crypto.generate_key(key_type)
    csr = crypto.make_csr(
        key, common_name="web01.example.com", dns_names=["web01.example.com"], ip_addresses=[]
    )
    info = crypto.parse_csr(csr)
    assert info.key_type == key_type
    assert info.common_name == "web01.example.com"


def test_common_name_and_sans_are_normalised_and_merged():
    key = ec.generate_private_key(ec.SECP256R1())
    pem = _csr(
        key,
        cn="Web01.Example.COM.",
        sans=[
            x509.DNSName("web01.example.com"),
            x509.DNSName("WWW.example.com"),
            x509.IPAddress(ipaddress.ip_address("10.0.0.5")),
        ],
    )
    info = crypto.parse_csr(pem.decode())
    assert info.common_name == "web01.example.com"
    assert info.dns_names == ("web01.example.com", "www.example.com")
    assert info.ip_addresses == ("10.0.0.5",)


def test_bytes_and_the_old_new_certificate_request_label_are_read():
    key = ec.generate_private_key(ec.SECP256R1())
    pem = _csr(key).replace(b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST")
    assert crypto.parse_csr(pem).common_name == "web01.example.com"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hello", "not PEM"),
        (crypto.der_to_pem(b"\x30\x03\x02\x01\x00", "CERTIFICATE REQUEST"), "parsed"),
        (b"\xff\xfe", "not PEM text"),
        ("x" * (crypto.MAX_PEM_CHARS + 1), "larger than"),
    ],
)
def test_malformed_input_is_refused_with_a_reason(text, message):
    with pytest.raises(crypto.MalformedInput, match=message):
        crypto.parse_csr(text)


def test_two_csrs_at_once_are_refused():
    key = ec.generate_private_key(ec.SECP256R1())
    pem = _csr(key).decode()
    with pytest.raises(crypto.MalformedInput, match="one CSR at a time"):
        crypto.parse_csr(pem + pem)


def test_a_tampered_csr_fails_its_signature_check():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = x509.load_pem_x509_csr(_csr(key))
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-10] ^= 0xFF  # inside the signature
    pem = crypto.der_to_pem(bytes(der), "CERTIFICATE REQUEST")
    with pytest.raises(crypto.BadSignature, match="signature does not verify"):
        crypto.parse_csr(pem)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (rsa.generate_private_key(public_exponent=65537, key_size=1024), "1024 bits is too weak"),
        (rsa.generate_private_key(public_exponent=65537, key_size=2560), "2560 bits are not"),
        (ec.generate_private_key(ec.SECP521R1()), "secp521r1 is not accepted"),
        (dsa.generate_private_key(key_size=2048), "DSA"),
    ],
    ids=["rsa1024", "rsa2560", "p521", "dsa"],
)
def test_keys_outside_the_policy_are_refused(key, message):
    with pytest.raises(crypto.WeakKey, match=message):
        crypto.parse_csr(_csr(key))


@pytest.mark.parametrize(
    ("cn", "sans", "message"),
    [
        ("web01.example.com", [x509.RFC822Name("a@example.com")], "RFC822Name"),
        ("web01.example.com", [x509.UniformResourceIdentifier("https://x")], "only DNS"),
        ("My Server", None, "not a host name"),
        ("bad_underscore.example.com", None, "not a host name"),
        ("", None, "names nothing"),
    ],
)
def test_names_that_are_not_hosts_are_refused(cn, sans, message):
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(crypto.BadName, match=message):
        crypto.parse_csr(_csr(key, cn=cn, sans=sans))


@pytest.mark.parametrize(
    ("profile", "usages"),
    [
        ("server", [ExtendedKeyUsageOID.SERVER_AUTH]),
        ("client", [ExtendedKeyUsageOID.CLIENT_AUTH]),
        ("both", [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
    ],
)
def test_issued_certificate_carries_the_profile_and_links(root, profile, usages):
    key = crypto.generate_key("rsa-2048")
    issued = crypto.issue_certificate(
        signer=root,
        public_key_pem=crypto.public_key_pem(key),
        common_name="web01.example.com",
        dns_names=["web01.example.com"],
        ip_addresses=["10.0.0.5", "2001:db8::5"],
        profile=profile,
        days=30,
        links=crypto.Links("http://ca.test/pki/root.crl", "http://ca.test/pki/root.crt"),
        now=NOW,
    )
    cert = _cert(issued.pem)
    ext = cert.extensions
    assert list(ext.get_extension_for_class(x509.ExtendedKeyUsage).value) == usages
    assert ext.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usage = ext.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment and not usage.key_cert_sign
    san = ext.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["web01.example.com"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == [
        "10.0.0.5",
        "2001:db8::5",
    ]
    cdp = ext.get_extension_for_class(x509.CRLDistributionPoints).value
    assert cdp[0].full_name[0].value == "http://ca.test/pki/root.crl"
    aia = ext.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert aia[0].access_location.value == "http://ca.test/pki/root.crt"
    ski = _cert(root.certificate_pem).extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.value.digest
    assert cert.serial_number.bit_length() == crypto.SERIAL_BITS
    assert cert.subject.rfc4514_string() == "CN=web01.example.com"
    assert issued.not_after - issued.not_before == dt.timedelta(days=30) + crypto.CLOCK_SKEW


def test_ec_leaf_has_no_key_encipherment(root):
    key = crypto.generate_key("ec-p256")
    issued = crypto.issue_certificate(
        signer=root,
        public_key_pem=crypto.public_key_pem(key),
        common_name="h",
        dns_names=["h"],
        days=1,
        now=NOW,
    )
    usage = _cert(issued.pem).extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_encipherment


def test_a_certificate_never_outlives_its_authority(root):
    key = crypto.generate_key("ec-p256")
    issued = crypto.issue_certificate(
        signer=root,
        public_key_pem=crypto.public_key_pem(key),
        common_name="h",
        dns_names=["h"],
        days=36500,
        now=NOW,
    )
    assert issued.not_after == _cert(root.certificate_pem).not_valid_after_utc
    with pytest.raises(crypto.CryptoError, match="expired"):
        crypto.issue_certificate(
            signer=root,
            public_key_pem=crypto.public_key_pem(key),
            common_name="h",
            dns_names=["h"],
            days=1,
            now=NOW + dt.timedelta(days=4000),
        )


def test_intermediate_is_signed_by_its_parent_with_path_length(root):
    key = crypto.generate_key("ed25519")
    issued = crypto.create_ca_certificate(
        private_key_pem=key,
        common_name="Hosts",
        organization="Example",
        days=100,
        path_length=0,
        parent=root,
        links=crypto.Links("http://x/root.crl", "http://x/root.crt"),
        now=NOW,
    )
    info = crypto.parse_certificate(issued.pem)
    assert info.is_ca and info.path_length == 0
    assert info.subject == "CN=Hosts,O=Example"
    assert info.key_type == "ed25519"
    assert crypto.is_issued_by(issued.pem, root.certificate_pem)
    assert not crypto.is_self_signed(issued.pem)
    assert crypto.is_self_signed(root.certificate_pem)
    assert crypto.key_matches(key, issued.pem)
    assert not crypto.key_matches(root.private_key_pem, issued.pem)


def test_crl_lists_entries_with_reasons_number_and_dates(root):
    entries = [
        crypto.Revoked(serial=5, revoked_at=NOW, reason="key_compromise"),
        crypto.Revoked(serial=7, revoked_at=NOW, reason="unspecified"),
    ]
    crl_info = crypto.build_crl(
        signer=root,
        entries=entries,
        number=42,
        this_update=NOW,
        next_update=NOW + dt.timedelta(days=7),
    )
    crl = x509.load_pem_x509_crl(crl_info.pem.encode())
    assert crl.is_signature_valid(_cert(root.certificate_pem).public_key())
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 42
    assert crl.next_update_utc == NOW + dt.timedelta(days=7)
    compromised = crl.get_revoked_certificate_by_serial_number(5)
    reason = compromised.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason == x509.ReasonFlags.key_compromise
    # RFC 5280: an unspecified reason is left out, not written.
    assert len(crl.get_revoked_certificate_by_serial_number(7).extensions) == 0
    assert crypto.pem_to_der(crl_info.pem) == crl.public_bytes(serialization.Encoding.DER)


def test_crl_refuses_a_next_update_before_this_update(root):
    with pytest.raises(crypto.CryptoError, match="nextUpdate"):
        crypto.build_crl(signer=root, entries=[], number=1, this_update=NOW, next_update=NOW)


@pytest.mark.parametrize(
    ("text", "value"),
    [("0A:1B", 0x0A1B), ("serial=0A1B", 0x0A1B), ("0xff", 255), (" a1b2 ", 0xA1B2)],
)
def test_serials_are_read_as_openssl_prints_them(text, value):
    assert crypto.parse_serial(text) == value


@pytest.mark.parametrize("text", ["", "xyz", "12-34"])
def test_nonsense_serials_are_refused(text):
    with pytest.raises(crypto.MalformedInput):
        crypto.parse_serial(text)


def test_random_serials_are_159_bits_and_differ():
    serials = {crypto.random_serial() for _ in range(100)}
    assert len(serials) == 100
    assert {s.bit_length() for s in serials} == {crypto.SERIAL_BITS}


def test_imported_keys_are_checked_and_unencrypted():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.BestAvailableEncryption(b"secret"),
    ).decode()
    pem, key_type = crypto.read_private_key(encrypted, "secret")
    assert key_type == "rsa-2048" and "ENCRYPTED" not in pem
    with pytest.raises(crypto.MalformedInput):
        crypto.read_private_key(encrypted, "wrong")
    with pytest.raises(crypto.MalformedInput, match="encrypted"):
        crypto.read_private_key(encrypted)
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(crypto.WeakKey):
        crypto.read_private_key(
            weak.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode()
        )


def test_names_are_classified():
    assert crypto.classify_names(["A.example.com", "10.0.0.1", "a.example.com", "::1", " "]) == (
        ("a.example.com",),
        ("10.0.0.1", "::1"),
    )
    assert crypto.normalise_dns_name("*.example.com") == "*.example.com"
    with pytest.raises(crypto.BadName):
        crypto.normalise_dns_name("*.com.-bad")


def test_a_name_longer_than_a_common_name_lives_in_a_critical_san(root):
    long_name = ".".join(["a" * 60, "b" * 60, "example", "com"])
    key = crypto.generate_key("ec-p256")
    info = crypto.parse_csr(crypto.make_csr(key, common_name=long_name, dns_names=[long_name]))
    assert info.common_name == long_name
    issued = crypto.issue_certificate(
        signer=root,
        public_key_pem=info.public_key_pem,
        common_name=info.common_name,
        dns_names=info.dns_names,
        days=1,
        now=NOW,
    )
    cert = _cert(issued.pem)
    assert len(cert.subject) == 0
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical and san.value.get_values_for_type(x509.DNSName) == [long_name]
    with pytest.raises(crypto.BadName, match="1 to 64"):
        crypto.create_ca_certificate(private_key_pem=key, common_name="x" * 65, days=1)

"""OpenSSL agrees with the CA: CSRs from `openssl req` (RSA and EC) are signed into chains that
pass `openssl verify -crl_check_all`, a revoked certificate fails with "certificate revoked",
`openssl crl` reads the published CRLs (DER and PEM), and bad CSRs get a clear 400 and no
certificate."""

import base64

import pytest
from django.urls import reverse

from ca import services
from ca.models import Certificate, CertificateRequest
from tests.integration.ca import openssl
from tests.integration.ca.conftest import crls_of

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

OWN_NAMES = ("DNS:web01.example.com", "DNS:web01", "IP:10.0.0.5")


@pytest.mark.parametrize("key", ["rsa:2048", "ec"])
def test_openssl_csr_is_signed_verified_revoked_and_listed_in_the_crl(
    key, tmp_path, authorities, web01, operator, client
):
    root, hosts = authorities
    csr, key_path = openssl.req(tmp_path, "web01", cn="web01.example.com", sans=OWN_NAMES, key=key)
    request = services.submit_request(
        user=operator, authority=hosts, csr=csr, server=web01, sign=True
    )
    certificate = request.certificates.get()
    assert request.unowned_names == []
    chain = client.get(reverse("pki:authority-pem", args=["hosts"])).content.decode()
    assert len(openssl.split_pem(chain)) == 2

    good = openssl.verify(
        tmp_path, leaf=certificate.certificate, chain=chain, crls=crls_of(root, hosts)
    )
    assert good.returncode == 0, good.stdout + good.stderr
    assert "OK" in good.stdout

    # The certificate is for the key openssl made, with the names asked for.
    issued_key = openssl.run("x509", "-noout", "-pubkey", input=certificate.certificate)
    mine = openssl.run("pkey", "-in", key_path, "-pubout")
    assert issued_key.stdout == mine.stdout
    text = openssl.run("x509", "-noout", "-text", input=certificate.certificate).stdout
    assert "DNS:web01.example.com" in text and "IP Address:10.0.0.5" in text
    assert "http://127.0.0.1:8000/pki/hosts.crl" in text  # CDP
    assert "CA Issuers - URI:http://127.0.0.1:8000/pki/hosts.crt" in text  # AIA
    assert "TLS Web Server Authentication" in text

    services.revoke_certificate(certificate, user=operator, reason="key_compromise")
    bad = openssl.verify(
        tmp_path, leaf=certificate.certificate, chain=chain, crls=crls_of(root, hosts)
    )
    assert bad.returncode != 0
    assert "certificate revoked" in bad.stdout + bad.stderr

    der = client.get(reverse("pki:crl-der", args=["hosts"]))
    assert der.status_code == 200 and der["Content-Type"] == "application/pkix-crl"
    crl_file = tmp_path / "hosts.crl"
    crl_file.write_bytes(der.content)
    listed = openssl.run("crl", "-inform", "DER", "-in", crl_file, "-noout", "-text")
    assert listed.returncode == 0, listed.stderr
    assert certificate.serial.upper() in listed.stdout.replace(":", "").upper()
    assert "Key Compromise" in listed.stdout
    assert "Next Update" in listed.stdout and "X509v3 CRL Number" in listed.stdout

    pem = client.get(reverse("pki:crl-pem", args=["hosts"])).content.decode()
    parsed = openssl.run("crl", "-inform", "PEM", "-noout", "-text", input=pem)
    assert parsed.returncode == 0, parsed.stderr
    assert parsed.stdout == listed.stdout


def test_public_certificate_files_parse(client, authorities):
    der = client.get(reverse("pki:authority-der", args=["hosts"]))
    assert der.status_code == 200 and der["Content-Type"] == "application/pkix-cert"
    result = openssl.run_bytes(
        "x509", "-inform", "DER", "-noout", "-subject", "-issuer", input=der.content
    )
    assert result.returncode == 0, result.stderr
    assert b"subject=CN = Hosts" in result.stdout and b"issuer=CN = Fleet root" in result.stdout
    assert client.get("/pki/nope.pem").status_code == 404
    assert client.get("/pki/nope.crl").status_code == 404


def test_a_revoked_intermediate_fails_its_leaves(
    tmp_path, authorities, web01, operator, admin_user
):
    root, hosts = authorities
    csr, _ = openssl.req(tmp_path, "web01", cn="web01.example.com", key="ec")
    certificate = services.submit_request(
        user=operator, authority=hosts, csr=csr, server=web01, sign=True
    ).certificates.get()
    chain = services.chain_pem(hosts)
    before = openssl.verify(
        tmp_path, leaf=certificate.certificate, chain=chain, crls=crls_of(root, hosts)
    )
    assert before.returncode == 0, before.stdout + before.stderr
    services.revoke_authority(hosts, user=admin_user, reason="ca_compromise")
    after = openssl.verify(
        tmp_path, leaf=certificate.certificate, chain=chain, crls=crls_of(root, hosts)
    )
    assert after.returncode != 0
    assert "certificate revoked" in after.stdout + after.stderr


def _post_csr(api, user, csr, **extra):
    return api.as_user(user).post(
        "/api/ca/requests/",
        {"authority": "hosts", "server": extra.pop("server"), "csr": csr, "sign": True, **extra},
        format="json",
    )


def _tampered(csr):
    """The CSR with one byte of its signature flipped (still well-formed PEM)."""
    result = openssl.run_bytes("req", "-outform", "DER", input=csr.encode())
    assert result.returncode == 0, result.stderr
    raw = bytearray(result.stdout)
    raw[-5] ^= 0xFF
    body = base64.encodebytes(bytes(raw)).decode()
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n"


@pytest.mark.parametrize(
    ("case", "field", "message"),
    [
        ("malformed", "csr", "not PEM"),
        ("bad-signature", "csr", "signature does not verify"),
        ("weak-key", "csr", "1024 bits is too weak"),
        ("sha1", "csr", "signed with SHA1"),
        ("foreign-san", "names", "www.other.org: not names of web01"),
    ],
)
def test_bad_csrs_get_a_clear_400_and_no_certificate(
    case, field, message, tmp_path, api, authorities, web01, operator
):
    if case == "malformed":
        csr = "-----BEGIN CERTIFICATE REQUEST-----\nnot base64 at all!\n"
    elif case == "bad-signature":
        csr = _tampered(openssl.req(tmp_path, "t", cn="web01.example.com")[0])
    elif case == "weak-key":
        csr = openssl.req(tmp_path, "w", cn="web01.example.com", key="rsa:1024")[0]
    elif case == "sha1":
        csr = openssl.req(tmp_path, "s", cn="web01.example.com", digest="sha1")[0]
    else:
        csr = openssl.req(
            tmp_path,
            "f",
            cn="web01.example.com",
            sans=("DNS:web01.example.com", "DNS:www.other.org"),
        )[0]
    response = _post_csr(api, operator, csr, server=web01.pk)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert message in " ".join(error["fields"][field])
    assert not Certificate.objects.exists()
    assert not CertificateRequest.objects.exists()


def test_an_operator_may_approve_a_foreign_name_explicitly(
    tmp_path, api, authorities, web01, operator
):
    csr = openssl.req(
        tmp_path, "f", cn="web01.example.com", sans=("DNS:web01.example.com", "DNS:www.other.org")
    )[0]
    response = _post_csr(api, operator, csr, server=web01.pk, approve_names=True)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "signed"
    assert body["unowned_names"] == ["www.other.org"]
    certificate = Certificate.objects.get()
    text = openssl.run("x509", "-noout", "-ext", "subjectAltName", input=certificate.certificate)
    assert "DNS:www.other.org" in text.stdout

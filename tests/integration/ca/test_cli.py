"""`manage.py ca`: init a root and an intermediate, sign a CSR file, list, revoke, renew,
publish and refresh CRLs, export (keys for admins only), with clear errors."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from ca.models import Authority, Certificate, RevocationList
from dcportal.models import AuditEvent
from tests.integration.ca import openssl

pytestmark = pytest.mark.django_db


def ca(*args, user="root"):
    out, err = io.StringIO(), io.StringIO()
    call_command("ca", *args, "--user", user, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def hierarchy(admin_user):
    ca("init", "Fleet root", "--slug", "root")
    ca("init", "Hosts", "--slug", "hosts", "--parent", "root", "--key-type", "rsa-2048")
    return Authority.objects.get(slug="root"), Authority.objects.get(slug="hosts")


def test_init_sign_verify_revoke_and_crl_from_the_command_line(
    hierarchy, web01, operator, tmp_path
):
    out, _ = ca("list", user="op")
    assert "hosts" in out and "under root" in out and "crl #1" in out
    csr, _ = openssl.req(tmp_path, "web01", cn="web01.example.com", key="ec")
    csr_path = tmp_path / "web01.csr"
    csr_path.write_text(csr)
    chain_path = tmp_path / "web01.pem"
    _, err = ca("sign", str(csr_path), "--authority", "hosts", "--server", "web01",
                "--out", str(chain_path), user="op")  # fmt: skip
    assert "signed web01.example.com" in err
    blocks = openssl.split_pem(chain_path.read_text())
    assert len(blocks) == 3
    crls = tmp_path / "crls.pem"
    ca("crl", "root", "--out", str(tmp_path / "root.crl.pem"), user="op")
    ca("crl", "hosts", "--out", str(tmp_path / "hosts.crl.pem"), user="op")
    crls.write_text(
        (tmp_path / "root.crl.pem").read_text() + (tmp_path / "hosts.crl.pem").read_text()
    )
    ok = openssl.verify(tmp_path, leaf=blocks[0], chain="".join(blocks[1:]), crls=crls.read_text())
    assert ok.returncode == 0, ok.stdout + ok.stderr

    certificate = Certificate.objects.get()
    serial = openssl.run("x509", "-noout", "-serial", input=blocks[0]).stdout.strip()
    out, _ = ca("revoke", serial, "--reason", "key_compromise", user="op")
    assert f"revoked {certificate.serial}" in out and "CRL #3 of hosts" in out
    ca("crl", "hosts", "--der", "--out", str(tmp_path / "hosts.crl"), user="op")
    text = openssl.run("crl", "-inform", "DER", "-in", tmp_path / "hosts.crl", "-noout", "-text")
    assert text.returncode == 0 and "Key Compromise" in text.stdout
    crls.write_text((tmp_path / "root.crl.pem").read_text() + openssl.run(
        "crl", "-inform", "DER", "-in", tmp_path / "hosts.crl").stdout)  # fmt: skip
    revoked = openssl.verify(
        tmp_path, leaf=blocks[0], chain="".join(blocks[1:]), crls=crls.read_text()
    )
    assert "certificate revoked" in revoked.stdout + revoked.stderr

    out, _ = ca("list", "certificates", user="op")
    assert certificate.serial in out and "revoked" in out


def test_sign_errors_name_the_file(hierarchy, web01, tmp_path):
    bad = tmp_path / "bad.csr"
    bad.write_text("nothing here\n")
    with pytest.raises(CommandError, match=r"bad\.csr: csr: The CSR is not PEM"):
        ca("sign", str(bad), "--authority", "hosts", "--server", "web01")
    foreign = tmp_path / "foreign.csr"
    foreign.write_text(openssl.req(tmp_path, "f", cn="mail.example.com")[0])
    with pytest.raises(CommandError, match=r"foreign\.csr: names: mail\.example\.com: not names"):
        ca("sign", str(foreign), "--authority", "hosts", "--server", "web01")
    with pytest.raises(CommandError, match="missing.csr"):
        ca("sign", str(tmp_path / "missing.csr"), "--authority", "hosts")
    with pytest.raises(CommandError, match="no authority 'nope'"):
        ca("sign", str(foreign), "--authority", "nope")
    assert not Certificate.objects.exists()
    # With approval the same file is signed.
    ca("sign", str(foreign), "--authority", "hosts", "--server", "web01", "--approve-names")
    assert Certificate.objects.get().dns_names == ["mail.example.com"]


def test_pending_and_expiring_lists_and_renewal(hierarchy, web01, admin_user, tmp_path):
    from ca import services

    services.generate_request(user=admin_user, authority=hierarchy[1], server=web01)
    done = services.generate_request(
        user=admin_user, authority=hierarchy[1], server=web01, validity_days=3, sign=True
    ).certificates.get()
    out, _ = ca("list", "pending")
    assert "web01.example.com" in out
    out, _ = ca("list", "expiring", "--days", "7")
    assert done.serial in out
    out, _ = ca("list", "expiring", "--days", "1")
    assert done.serial not in out
    renewed_out = tmp_path / "renewed.pem"
    _, err = ca("renew", done.serial, "--days", "30", "--revoke-old", "--out", str(renewed_out))
    assert "renewed" in err and renewed_out.read_text().count("BEGIN CERTIFICATE") == 3
    done.refresh_from_db()
    assert done.revocation_reason == "superseded"
    out, _ = ca("list", "expiring", "--days", "7")
    assert done.serial not in out


def test_exports_keys_only_for_admins(hierarchy, operator, tmp_path):
    out, _ = ca("export", "hosts", user="op")
    assert out.count("BEGIN CERTIFICATE") == 2
    with pytest.raises(CommandError, match="permission denied"):
        ca("export", "hosts", "--key", user="op")
    key_path = tmp_path / "hosts.key"
    ca("export", "hosts", "--key", "--out", str(key_path))
    assert key_path.stat().st_mode & 0o777 == 0o600
    assert openssl.run("pkey", "-in", key_path, "-noout").returncode == 0
    event = AuditEvent.objects.get(verb="export_key")
    assert event.via == "cli" and event.actor_name == "root"


def test_refresh_republishes_only_what_is_due(hierarchy):
    root, hosts = hierarchy
    RevocationList.objects.filter(authority=hosts).update(
        next_update=timezone.now() + timezone.timedelta(hours=1)
    )
    out, _ = ca("crl", "--refresh")
    assert out.strip() == "refreshed 1 CRL(s): Hosts"
    assert RevocationList.objects.get(authority=hosts).number == 2
    assert RevocationList.objects.get(authority=root).number == 1
    out, _ = ca("crl", "--refresh")
    assert out.strip() == "refreshed 0 CRL(s)"
    out, _ = ca("crl", "--refresh", "--force")
    assert out.strip() == "refreshed 2 CRL(s): Fleet root, Hosts"


def test_import_an_openssl_ca_from_files(admin_user, tmp_path):
    key, cert = tmp_path / "ca.key", tmp_path / "ca.pem"
    made = openssl.run(
        "req", "-x509", "-newkey", "rsa:2048", "-keyout", key, "-out", cert, "-days", "30",
        "-subj", "/CN=Lab CA", "-passout", "pass:s3cret",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    password = tmp_path / "pass"
    password.write_text("s3cret\n")
    out, _ = ca("init", "Lab", "--slug", "lab", "--import-cert", str(cert), "--import-key",
                str(key), "--key-password-file", str(password))  # fmt: skip
    assert "imported authority lab (root, rsa-2048" in out
    with pytest.raises(CommandError, match="ca.pem / .*ca.key: private_key"):
        ca("init", "Lab2", "--slug", "lab2", "--import-cert", str(cert), "--import-key", str(key))

"""The CA pages: they render for those who may see them, keep a constant number of queries,
sign / reject / revoke / renew through the services, and keep key exports to admins."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from ca import services
from ca.models import Authority, Certificate, CertificateRequest
from dcportal.models import AuditEvent
from tests.integration.ca import openssl
from tests.integration.ca.conftest import make_server

pytestmark = pytest.mark.django_db


def _certify(user, authority, server, **kwargs):
    return services.generate_request(
        user=user, authority=authority, server=server, sign=True, **kwargs
    ).certificates.get()


PAGES = ("ca:index", "ca:certificates", "ca:requests", "ca:expiring", "ca:request-create")


@pytest.mark.parametrize("name", PAGES)
def test_pages_render_for_an_operator(name, client, operator, authorities, web01):
    _certify(operator, authorities[1], web01)
    client.force_login(operator)
    response = client.get(reverse(name))
    assert response.status_code == 200
    assert b"<html" in response.content.lower()


def test_detail_pages_show_actions_by_permission(
    client, operator, viewer, admin_user, authorities, web01
):
    certificate = _certify(operator, authorities[1], web01)
    hosts = authorities[1]
    client.force_login(operator)
    page = client.get(reverse("ca:certificate", args=[certificate.pk])).content.decode()
    assert "Revoke" in page and "Renew" in page
    assert "Export private key" not in page  # operators are denied ca.export_*
    page = client.get(reverse("ca:authority", args=[hosts.pk])).content.decode()
    assert "Publish CRL now" in page
    assert "Export private key" not in page and ">Edit<" not in page  # shared: admins only
    assert "/pki/hosts.crl" in page

    client.force_login(viewer)
    page = client.get(reverse("ca:certificate", args=[certificate.pk])).content.decode()
    assert "Revoke" not in page and "Renew" not in page
    assert client.get(reverse("ca:request-create")).status_code == 403

    client.force_login(admin_user)
    page = client.get(reverse("ca:authority", args=[hosts.pk])).content.decode()
    assert "Export private key" in page and "PRIVATE KEY" not in page
    assert "Revoke…" in page
    client.post(reverse("ca:authority-revoke", args=[hosts.pk]), {"reason": "ca_compromise"})
    hosts.refresh_from_db()
    assert hosts.revocation_reason == "ca_compromise"
    assert hosts.parent.crl.entries == 1


def test_another_tenants_objects_answer_404(client, operator, admin_user, authorities, tenants):
    theirs = make_server(tenants[1], hostname="db01", address="10.1.0.5", network="10.1.0.0/24")
    certificate = _certify(admin_user, authorities[1], theirs)
    globex = services.create_authority(
        user=admin_user, name="Globex", slug="globex", tenant=tenants[1]
    )
    client.force_login(operator)
    assert client.get(reverse("ca:certificate", args=[certificate.pk])).status_code == 404
    assert client.get(reverse("ca:request", args=[certificate.request_id])).status_code == 404
    assert client.get(reverse("ca:authority", args=[globex.pk])).status_code == 404
    response = client.post(
        reverse("ca:certificate-revoke", args=[certificate.pk]), {"reason": "superseded"}
    )
    assert response.status_code == 404
    certificate.refresh_from_db()
    assert certificate.revoked_at is None


def test_upload_a_csr_then_sign_it_from_the_pending_list(
    client, operator, authorities, web01, tmp_path
):
    csr = openssl.req(
        tmp_path, "w", cn="web01.example.com", sans=("DNS:web01.example.com", "DNS:www.example.org")
    )[0]
    client.force_login(operator)
    response = client.post(
        reverse("ca:request-create"),
        {
            "authority": "hosts",
            "server": "web01",
            "csr": csr,
            "profile": "both",
            "key_type": "ec-p256",
        },
    )
    assert response.status_code == 302, response.content.decode()
    request = CertificateRequest.objects.get()
    assert request.status == "pending" and request.unowned_names == ["www.example.org"]
    listing = client.get(reverse("ca:requests")).content.decode()
    assert "www.example.org" in listing and f"/ca/requests/{request.pk}/" in listing

    refused = client.post(reverse("ca:request-sign", args=[request.pk]), follow=True)
    assert "www.example.org: not names of web01" in refused.content.decode()
    assert not Certificate.objects.exists()
    signed = client.post(reverse("ca:request-sign", args=[request.pk]), {"approve_names": "on"})
    certificate = Certificate.objects.get()
    assert signed.status_code == 302 and signed["Location"] == reverse(
        "ca:certificate", args=[certificate.pk]
    )
    assert certificate.profile == "both"
    assert "www.example.org" not in client.get(reverse("ca:requests")).content.decode()


def test_a_bad_upload_shows_the_reason_on_the_form(client, operator, authorities, web01, tmp_path):
    weak = openssl.req(tmp_path, "w", cn="web01.example.com", key="rsa:1024")[0]
    client.force_login(operator)
    path = tmp_path / "weak.csr"
    path.write_text(weak)
    with path.open("rb") as handle:
        response = client.post(
            reverse("ca:request-create"),
            {
                "authority": "hosts",
                "server": "web01",
                "csr_file": handle,
                "profile": "server",
                "key_type": "ec-p256",
            },
        )
    assert response.status_code == 200
    assert "1024 bits is too weak" in response.content.decode()
    assert not CertificateRequest.objects.exists()


def test_generate_sign_revoke_and_renew_in_the_portal(client, operator, authorities, web01):
    client.force_login(operator)
    response = client.post(
        reverse("ca:request-create"),
        {
            "authority": "hosts",
            "server": "web01",
            "generate_key": "on",
            "key_type": "ec-p256",
            "profile": "server",
            "sign": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()
    certificate = Certificate.objects.get()
    renewed = client.post(
        reverse("ca:certificate-renew", args=[certificate.pk]), {"validity_days": "30"}
    )
    new = Certificate.objects.exclude(pk=certificate.pk).get()
    assert renewed["Location"] == reverse("ca:certificate", args=[new.pk])
    assert new.renewal_of == certificate
    client.post(
        reverse("ca:certificate-revoke", args=[certificate.pk]), {"reason": "key_compromise"}
    )
    certificate.refresh_from_db()
    assert certificate.revocation_reason == "key_compromise"
    authorities[1].crl.refresh_from_db()
    assert authorities[1].crl.entries == 1
    download = client.get(reverse("ca:certificate-pem", args=[new.pk]))
    assert download.content.decode().count("BEGIN CERTIFICATE") == 3


def test_key_exports_are_admin_only_and_audited(client, operator, admin_user, authorities, web01):
    certificate = _certify(operator, authorities[1], web01)
    hosts = authorities[1]
    client.force_login(operator)
    assert client.post(reverse("ca:authority-export", args=[hosts.pk])).status_code == 403
    assert client.post(reverse("ca:certificate-key", args=[certificate.pk])).status_code == 403
    assert not AuditEvent.objects.filter(verb="export_key").exists()

    client.force_login(admin_user)
    response = client.post(reverse("ca:authority-export", args=[hosts.pk]))
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert response.content.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert openssl.run("pkey", "-noout", input=response.content.decode()).returncode == 0
    key = client.post(reverse("ca:certificate-key", args=[certificate.pk]))
    assert key.status_code == 200 and b"PRIVATE KEY" in key.content
    events = AuditEvent.objects.filter(verb="export_key")
    assert events.count() == 2
    assert all("PRIVATE KEY" not in str(event.changes) for event in events)
    assert client.get(reverse("ca:authority-export", args=[hosts.pk])).status_code == 405


def test_admin_creates_and_imports_authorities_in_the_portal(client, admin_user, tmp_path):
    client.force_login(admin_user)
    response = client.post(
        reverse("ca:authority-create"),
        {
            "name": "Root",
            "slug": "root",
            "key_type": "ec-p256",
            "default_validity_days": "365",
            "crl_validity_hours": "168",
        },
    )
    assert response.status_code == 302, response.content.decode()
    root = Authority.objects.get(slug="root")
    response = client.post(
        reverse("ca:authority-create"),
        {
            "name": "Hosts",
            "slug": "hosts",
            "parent": "root",
            "key_type": "rsa-2048",
            "default_validity_days": "90",
            "crl_validity_hours": "24",
        },
    )
    assert response.status_code == 302
    assert Authority.objects.get(slug="hosts").parent == root

    key, cert = tmp_path / "ca.key", tmp_path / "ca.pem"
    made = openssl.run(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384", "-nodes",
        "-keyout", key, "-out", cert, "-days", "30", "-subj", "/CN=Old CA",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    with cert.open("rb") as c, key.open("rb") as k:
        response = client.post(
            reverse("ca:authority-import"),
            {
                "name": "Old",
                "slug": "old",
                "certificate_file": c,
                "private_key_file": k,
                "default_validity_days": "30",
                "crl_validity_hours": "24",
            },
        )
    assert response.status_code == 302, response.content.decode()
    assert Authority.objects.get(slug="old").imported
    # A failed import does not echo the pasted key back into the page.
    response = client.post(
        reverse("ca:authority-import"),
        {
            "name": "Again",
            "slug": "again",
            "certificate": "nonsense",
            "private_key": key.read_text(),
            "default_validity_days": "30",
            "crl_validity_hours": "24",
        },
    )
    assert response.status_code == 200
    assert "PRIVATE KEY" not in response.content.decode()


def _queries(client, url):
    client.get(url)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured)


@pytest.mark.parametrize("name", ["ca:index", "ca:certificates", "ca:requests", "ca:expiring"])
def test_list_pages_cost_the_same_for_3_rows_as_for_12(
    name, client, admin_user, authorities, tenants
):
    client.force_login(admin_user)

    def populate(count):
        for _ in range(count):
            n = Certificate.objects.count() + CertificateRequest.objects.count()
            server = make_server(tenants[0], hostname=f"h{n}", address=f"10.0.0.{n + 10}")
            services.generate_request(
                user=admin_user, authority=authorities[1], server=server, validity_days=5, sign=True
            )
            services.generate_request(user=admin_user, authority=authorities[1], server=server)
            services.create_authority(
                user=admin_user, name=f"CA {n}", slug=f"ca-{n}", parent=authorities[0]
            )

    populate(3)
    few = _queries(client, reverse(name))
    populate(9)
    many = _queries(client, reverse(name))
    assert many == few

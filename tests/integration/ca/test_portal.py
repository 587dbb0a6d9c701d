"""The CA pages: they render for those who may see them, keep a constant number of queries,
sign / reject / revoke / renew through the services, and keep key exports to admins."""

import csv
import io
import json
import re

import pytest
from cryptography import x509
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
# The request list and the expiry report show their default filter in the address.
DEFAULTS = {"ca:requests": "?status=pending", "ca:expiring": "?expiring_within=30"}


def list_url(name):
    return reverse(name) + DEFAULTS.get(name, "")


@pytest.mark.parametrize("name", PAGES)
def test_pages_render_for_an_operator(name, client, operator, authorities, web01):
    _certify(operator, authorities[1], web01)
    client.force_login(operator)
    response = client.get(reverse(name), follow=True)
    assert response.status_code == 200
    assert b"<html" in response.content.lower()
    if name in DEFAULTS:
        assert response.redirect_chain == [(list_url(name), 302)]


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
    listing = client.get(reverse("ca:requests"), follow=True).content.decode()
    assert "www.example.org" in listing and f"/ca/requests/{request.pk}/" in listing
    assert "badge-pending" in listing

    refused = client.post(reverse("ca:request-sign", args=[request.pk]), follow=True)
    assert "www.example.org: not names of web01" in refused.content.decode()
    assert not Certificate.objects.exists()
    signed = client.post(reverse("ca:request-sign", args=[request.pk]), {"approve_names": "on"})
    certificate = Certificate.objects.get()
    assert signed.status_code == 302 and signed["Location"] == reverse(
        "ca:certificate", args=[certificate.pk]
    )
    assert certificate.profile == "both"
    assert "www.example.org" not in client.get(list_url("ca:requests")).content.decode()
    signed_list = client.get(reverse("ca:requests"), {"status": "signed"}).content.decode()
    assert "www.example.org" in signed_list and "badge-signed" in signed_list
    every = client.get(reverse("ca:requests"), {"status": ""}).content.decode()
    assert "www.example.org" in every
    # Signing and rejecting stay on the request's own page.
    assert reverse("ca:request-sign", args=[request.pk]) not in every


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
    few = _queries(client, list_url(name))
    populate(9)
    many = _queries(client, list_url(name))
    assert many == few


# The certificate table -------------------------------------------------------------------------


CERTIFICATES = reverse("ca:certificates")


def listed(client, params=None, url=CERTIFICATES):
    """The common names a certificate list shows, in order."""
    response = client.get(url, params or {})
    assert response.status_code == 200
    return re.findall(r'<a href="/ca/certificates/\d+/">([^<]+)</a>', response.content.decode())


def exported(client, params, url=CERTIFICATES):
    response = client.get(url, params)
    assert response.status_code == 200
    return b"".join(response.streaming_content).decode()


def fleet(user, authority, tenant, count, prefix="n", **kwargs):
    """`count` servers of `tenant`, each with a certificate of `authority`."""
    made = []
    for index in range(count):
        number = Certificate.objects.count() + 20
        server = make_server(
            tenant, hostname=f"{prefix}{index}", address=f"10.0.{number // 200}.{number % 200 + 20}"
        )
        made.append(_certify(user, authority, server, **kwargs))
    return made


def test_certificate_list_filters_sorts_and_exports(client, operator, authorities, tenants):
    short = fleet(operator, authorities[1], tenants[0], 2, prefix="short", validity_days=5)
    long = fleet(operator, authorities[1], tenants[0], 2, prefix="long", validity_days=200)
    services.revoke_certificate(long[1], user=operator, reason="superseded")
    client.force_login(operator)
    names = {c.pk: c.common_name for c in (*short, *long)}

    # Newest expiry first by default; the header sorts, the search finds names and serials.
    default = listed(client)
    assert default[:2] == sorted([names[long[0].pk], names[long[1].pk]], reverse=True)
    assert listed(client, {"sort": "common_name"}) == sorted(names.values())
    assert listed(client, {"q": short[0].serial}) == [short[0].common_name]
    assert listed(client, {"q": "long0"}) == [long[0].common_name]
    assert listed(client, {"status": "revoked"}) == [long[1].common_name]
    assert set(listed(client, {"expiring_within": "30"})) == {c.common_name for c in short}
    assert listed(client, {"authority": "root"}) == []
    page = client.get(CERTIFICATES, {"status": "valid"}).content.decode()
    assert "<strong>3</strong> certificates" in page and "badge-valid" in page
    assert "Cannot sort by" in client.get(CERTIFICATES, {"sort": "status"}).content.decode()
    bad = client.get(CERTIFICATES, {"expiring_within": "-1"}).content.decode()
    assert 'role="alert"' in bad and listed(client, {"expiring_within": "-1"}) == []

    rows = list(csv.DictReader(io.StringIO(exported(client, {"export": "csv", "sort": "serial"}))))
    assert [row["Serial"] for row in rows] == sorted(c.serial for c in (*short, *long))
    assert {row["Status"] for row in rows} == {"valid", "revoked"}
    assert {row["Authority"] for row in rows} == {"Hosts"}
    data = json.loads(exported(client, {"export": "json", "status": "revoked"}))
    assert [item["serial"] for item in data] == [long[1].serial]

    # The expiry report is the same table with the period in its filters, soonest first.
    report = reverse("ca:expiring")
    assert client.get(report)["Location"] == report + "?expiring_within=30"
    soonest = listed(client, {"expiring_within": "30"}, url=report)
    assert soonest == [c.common_name for c in sorted(short, key=lambda c: (c.not_after, c.pk))]
    assert set(listed(client, {"expiring_within": "365"}, url=report)) == {
        short[0].common_name, short[1].common_name, long[0].common_name,
    }  # fmt: skip


def bulk_revoke(client, certificates, reason="key_compromise", **extra):
    data = {
        "action": "revoke",
        "reason": reason,
        "ids": [str(c.pk) for c in certificates],
        "next": CERTIFICATES,
    }
    return client.post(reverse("ca:certificate-bulk"), data | extra)


def test_bulk_revoke(client, operator, authorities, tenants):
    hosts = authorities[1]
    chosen = fleet(operator, hosts, tenants[0], 3)
    kept = fleet(operator, hosts, tenants[0], 1, prefix="kept")[0]
    crl_number = Authority.objects.get(pk=hosts.pk).crl.number
    client.force_login(operator)
    listing = client.get(CERTIFICATES).content.decode()
    assert 'value="revoke"' in listing and 'name="reason"' in listing
    assert listing.count('name="ids"') == 4

    asked = bulk_revoke(client, chosen)
    assert asked.status_code == 200
    text = asked.content.decode()
    assert "Revoke 3 certificates?" in text and "Key compromise" in text
    assert all(c.common_name in text for c in chosen) and kept.common_name not in text
    assert not Certificate.objects.filter(revoked_at__isnull=False).exists()

    done = bulk_revoke(client, chosen, confirm="1")
    assert done.status_code == 302 and done["Location"] == CERTIFICATES
    revoked = Certificate.objects.filter(revoked_at__isnull=False)
    assert set(revoked.values_list("pk", flat=True)) == {c.pk for c in chosen}
    assert set(revoked.values_list("revocation_reason", flat=True)) == {"key_compromise"}
    crl = Authority.objects.get(pk=hosts.pk).crl
    assert crl.entries == 3 and crl.number > crl_number
    listed_serials = {
        format(entry.serial_number, "x") for entry in x509.load_pem_x509_crl(crl.pem.encode())
    }
    assert listed_serials == {c.serial.lower().lstrip("0") for c in chosen}
    events = AuditEvent.objects.filter(verb="revoke")
    assert sorted(int(e.object_id) for e in events) == sorted(c.pk for c in chosen)
    assert all(e.actor == operator for e in events)
    assert AuditEvent.objects.filter(verb="publish_crl", object_id=str(hosts.pk)).count() >= 3
    assert "Revoked 3 certificates" in client.get(CERTIFICATES).content.decode()

    # Already revoked ones drop out of a new selection.
    again = bulk_revoke(client, [*chosen, kept])
    assert "Revoke 1 certificate?" in again.content.decode()
    assert "3 of the selected are left out" in again.content.decode()


def test_bulk_revoke_is_all_or_nothing(client, operator, admin_user, authorities, tenants):
    hosts = authorities[1]
    web = services.create_authority(user=admin_user, name="Web", slug="web", parent=authorities[0])
    first = fleet(operator, hosts, tenants[0], 1, prefix="a")[0]
    second = fleet(operator, web, tenants[0], 1, prefix="b")[0]
    # The second authority cannot sign a CRL any more: its revocation fails after the first's.
    Authority.objects.filter(pk=web.pk).update(crl_validity_hours=0)
    crl_number = Authority.objects.get(pk=hosts.pk).crl.number
    client.force_login(operator)

    refused = bulk_revoke(client, [first, second], confirm="1")
    assert refused.status_code == 200
    text = refused.content.decode()
    assert "Nothing was revoked" in text and "nextUpdate" in text
    assert not Certificate.objects.filter(revoked_at__isnull=False).exists()
    assert Authority.objects.get(pk=hosts.pk).crl.number == crl_number
    assert not AuditEvent.objects.filter(verb="revoke").exists()


def test_no_revoke_action_without_the_permission(client, operator, viewer, authorities, tenants):
    certificate = fleet(operator, authorities[1], tenants[0], 1)[0]
    client.force_login(viewer)
    listing = client.get(CERTIFICATES).content.decode()
    assert certificate.common_name in listing
    assert 'name="ids"' not in listing and 'value="revoke"' not in listing
    assert "Bulk actions" not in listing
    assert bulk_revoke(client, [certificate], confirm="1").status_code == 403
    certificate.refresh_from_db()
    assert certificate.revoked_at is None


def test_another_tenants_certificates_are_never_listed(
    client, operator, admin_user, authorities, tenants
):
    ours = fleet(operator, authorities[1], tenants[0], 1, prefix="ours")[0]
    theirs = make_server(tenants[1], hostname="db01", address="10.1.0.5", network="10.1.0.0/24")
    foreign = _certify(admin_user, authorities[1], theirs)
    client.force_login(operator)
    for params in ({}, {"q": "db01"}, {"tenant": "globex"}, {"status": "valid"}):
        assert foreign.common_name not in client.get(CERTIFICATES, params).content.decode()
    page = client.get(CERTIFICATES).content.decode()
    assert "<strong>1</strong> certificates" in page and ours.common_name in page
    assert ">Globex<" not in page  # nor among the tenant filter's choices
    for kind in ("csv", "json"):
        text = exported(client, {"export": kind})
        assert ours.serial in text and foreign.serial not in text and "db01" not in text
    report = client.get(reverse("ca:expiring"), {"expiring_within": "3650"}).content.decode()
    assert foreign.common_name not in report and ours.common_name in report
    # The shared authority counts only the operator's certificate.
    listing = exported(client, {"export": "csv"}, url=reverse("ca:index"))
    counts = {row["Name"]: row["Certificates"] for row in csv.DictReader(io.StringIO(listing))}
    assert counts == {"Fleet root": "0", "Hosts": "1"}

    refused = bulk_revoke(client, [foreign], confirm="1")
    assert refused.status_code == 302
    foreign.refresh_from_db()
    assert foreign.revoked_at is None


def test_authority_forms_in_the_dialog(client, admin_user, operator, authorities):
    hosts = authorities[1]
    client.force_login(admin_user)
    listing = client.get(reverse("ca:index")).content.decode()
    assert f'href="{reverse("ca:authority-create")}" data-dialog=' in listing
    edit = reverse("ca:authority-edit", args=[hosts.pk])
    assert f'href="{edit}" data-dialog=' in listing
    assert "data-dialog-form" in client.get(edit).content.decode()
    headers = {"HX-Request": "true"}
    fields = {"name": "Hosts", "default_validity_days": "90", "crl_validity_hours": "24"}
    bad = client.post(edit, fields | {"crl_validity_hours": "0"}, headers=headers)
    assert bad.status_code == 200 and "field-error" in bad.content.decode()
    saved = client.post(edit, fields | {"description": "signs hosts"}, headers=headers)
    assert saved.status_code == 204
    trigger = json.loads(saved["HX-Trigger"])["dcportal:saved"]
    assert trigger["location"] == reverse("ca:authority", args=[hosts.pk])
    hosts.refresh_from_db()
    assert (hosts.description, hosts.default_validity_days) == ("signs hosts", 90)

    # A shared authority is not the operator's to edit: no dialog link.
    client.force_login(operator)
    assert edit not in client.get(reverse("ca:index")).content.decode()

"""The CA API: authorities (create, import, change, CRL, revoke), requests (submit, generate,
pending, sign, reject), certificates (filters, expiry report, revoke, renew); permissions,
tenant scope, and no private key in any response."""

import json

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.utils import timezone

from ca import services
from ca.models import Authority, Certificate, CertificateRequest
from dcportal.models import AuditEvent, Job
from tests.integration.ca import openssl
from tests.integration.ca.conftest import make_server
from tests.workers import run_burst_worker

pytestmark = pytest.mark.django_db


def _no_private_key(response):
    text = response.content.decode()
    assert "PRIVATE KEY" not in text
    return response.json() if text else None


def test_admin_builds_a_hierarchy_over_the_api(api, admin_user):
    client = api.as_user(admin_user)
    root = client.post(
        "/api/ca/authorities/",
        {"name": "Fleet root", "slug": "root", "key_type": "ec-p384", "path_length": 1},
        format="json",
    )
    assert root.status_code == 201, root.content
    body = _no_private_key(root)
    assert body["tenant"] is None and body["parent"] is None
    assert body["crl"]["number"] == 1 and body["crl"]["entries"] == 0
    assert body["urls"]["crl"] == "http://127.0.0.1:8000/pki/root.crl"
    hosts = client.post(
        "/api/ca/authorities/",
        {"name": "Hosts", "slug": "hosts", "parent": "root", "key_type": "rsa-2048"},
        format="json",
    )
    assert hosts.status_code == 201, hosts.content
    assert hosts.json()["parent"] == "root" and hosts.json()["path_length"] == 0
    # Path length 0: no CA below the intermediate.
    deeper = client.post(
        "/api/ca/authorities/",
        {"name": "Deeper", "slug": "deeper", "parent": "hosts"},
        format="json",
    )
    assert deeper.status_code == 400
    assert "may not sign further" in deeper.json()["error"]["fields"]["parent"][0]
    duplicate = client.post(
        "/api/ca/authorities/", {"name": "Fleet root", "slug": "root"}, format="json"
    )
    assert duplicate.status_code == 400
    assert set(duplicate.json()["error"]["fields"]) == {"name", "slug"}

    pk = hosts.json()["id"]
    changed = client.patch(f"/api/ca/authorities/{pk}/", {"crl_validity_hours": 24}, format="json")
    assert changed.status_code == 200 and changed.json()["crl_validity_hours"] == 24
    published = client.post(f"/api/ca/authorities/{pk}/crl/")
    assert published.status_code == 200
    assert published.json()["crl"]["number"] == 2
    listing = client.get("/api/ca/authorities/?root=true")
    assert [a["slug"] for a in _no_private_key(listing)["results"]] == ["root"]


def test_operators_work_in_their_tenant_and_cannot_touch_shared_authorities(
    api, operator, admin_user, authorities, tenants
):
    client = api.as_user(operator)
    shared = client.post("/api/ca/authorities/", {"name": "Mine", "slug": "mine"}, format="json")
    assert shared.status_code == 403
    under_shared = client.post(
        "/api/ca/authorities/",
        {"name": "Mine", "slug": "mine", "parent": "root", "tenant": "acme"},
        format="json",
    )
    assert under_shared.status_code == 403
    own = client.post(
        "/api/ca/authorities/",
        {"name": "Acme root", "slug": "acme-root", "tenant": "acme"},
        format="json",
    )
    assert own.status_code == 201, own.content
    hosts = Authority.objects.get(slug="hosts")
    assert (
        client.patch(f"/api/ca/authorities/{hosts.pk}/", {"name": "x"}, format="json").status_code
        == 403
    )
    slugs = {a["slug"] for a in client.get("/api/ca/authorities/").json()["results"]}
    assert slugs == {"root", "hosts", "acme-root"}
    other = services.create_authority(
        user=admin_user, name="Globex root", slug="globex-root", tenant=tenants[1]
    )
    assert client.get(f"/api/ca/authorities/{other.pk}/").status_code == 404


def test_import_an_existing_ca_made_by_openssl(api, admin_user, tmp_path):
    key, cert = tmp_path / "ca.key", tmp_path / "ca.pem"
    made = openssl.run(
        "req", "-x509", "-newkey", "rsa:3072", "-nodes", "-keyout", key, "-out", cert,
        "-days", "365", "-subj", "/CN=Legacy CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    client = api.as_user(admin_user)
    wrong_key = openssl.req(tmp_path, "other", cn="x")[1]
    refused = client.post(
        "/api/ca/authorities/import/",
        {
            "name": "Legacy",
            "slug": "legacy",
            "certificate": cert.read_text(),
            "private_key": wrong_key.read_text(),
        },
        format="json",
    )
    assert refused.status_code == 400
    assert "does not belong" in refused.json()["error"]["fields"]["private_key"][0]
    response = client.post(
        "/api/ca/authorities/import/",
        {
            "name": "Legacy",
            "slug": "legacy",
            "certificate": cert.read_text(),
            "private_key": key.read_text(),
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = _no_private_key(response)
    assert body["imported"] is True and body["key_type"] == "rsa-3072"
    authority = Authority.objects.get(slug="legacy")
    assert authority.private_key.reveal().startswith("-----BEGIN PRIVATE KEY-----")
    # Stored encrypted: the column holds a Fernet token, not the PEM.
    with connection.cursor() as cursor:
        cursor.execute("SELECT private_key FROM ca_authority WHERE id = %s", [authority.pk])
        raw = cursor.fetchone()[0]
    assert "PRIVATE KEY" not in raw
    crl = openssl.run("crl", "-noout", "-issuer", input=authority.crl.pem)
    assert "CN = Legacy CA" in crl.stdout


def test_pending_requests_wait_for_approval(api, make_user, operator, authorities, web01, tenants):
    requester = make_user("req", tenants=[tenants[0]])
    for codename in (
        "add_certificaterequest",
        "view_certificaterequest",
        "view_authority",
        "view_server",
    ):
        requester.user_permissions.add(Permission.objects.get(codename=codename))
    csr = services.crypto.make_csr(
        services.crypto.generate_key("ec-p256"),
        common_name="web01.example.com",
        dns_names=["web01.example.com", "api.example.com"],
    )
    client = api.as_user(requester)
    submitted = client.post(
        "/api/ca/requests/",
        {"authority": "hosts", "server": web01.pk, "csr": csr},
        format="json",
    )
    assert submitted.status_code == 201, submitted.content
    body = submitted.json()
    assert body["status"] == "pending" and body["unowned_names"] == ["api.example.com"]
    assert client.post(f"/api/ca/requests/{body['id']}/sign/").status_code == 403

    ops = api.as_user(operator)
    pending = ops.get("/api/ca/requests/?status=pending").json()["results"]
    assert [r["id"] for r in pending] == [body["id"]]
    refused = ops.post(f"/api/ca/requests/{body['id']}/sign/", {}, format="json")
    assert refused.status_code == 400
    assert "api.example.com" in refused.json()["error"]["fields"]["names"][0]
    signed = ops.post(
        f"/api/ca/requests/{body['id']}/sign/", {"approve_names": True}, format="json"
    )
    assert signed.status_code == 200, signed.content
    assert signed.json()["status"] == "signed"
    assert len(signed.json()["certificates"]) == 1
    again = ops.post(f"/api/ca/requests/{body['id']}/sign/", {"approve_names": True})
    assert again.status_code == 400
    assert ops.get("/api/ca/requests/?status=pending").json()["results"] == []


def test_reject_and_generate_on_the_portal(api, operator, authorities, web01):
    client = api.as_user(operator)
    generated = client.post(
        "/api/ca/requests/",
        {"authority": "hosts", "server": web01.pk, "generate_key": True, "key_type": "rsa-2048"},
        format="json",
    )
    assert generated.status_code == 201, generated.content
    body = _no_private_key(generated)
    assert body["has_private_key"] is True and body["source"] == "portal"
    assert body["common_name"] == "web01.example.com"
    assert set(body["dns_names"]) == {"web01.example.com", "web01"}
    assert body["ip_addresses"] == ["10.0.0.5"] and body["unowned_names"] == []
    rejected = client.post(
        f"/api/ca/requests/{body['id']}/reject/", {"reason": "duplicate"}, format="json"
    )
    assert rejected.status_code == 200
    assert rejected.json()["status"] == "rejected" and rejected.json()["reason"] == "duplicate"
    both = client.post(
        "/api/ca/requests/",
        {"authority": "hosts", "server": web01.pk, "generate_key": True, "csr": "x"},
        format="json",
    )
    assert both.status_code == 400


def test_tenant_scope_hides_other_tenants_certificates(
    api, admin_user, operator, authorities, tenants
):
    theirs = make_server(tenants[1], hostname="db01", address="10.1.0.5", network="10.1.0.0/24")
    request = services.generate_request(
        user=admin_user, authority=authorities[1], server=theirs, sign=True
    )
    certificate = request.certificates.get()
    client = api.as_user(operator)
    assert client.get(f"/api/ca/certificates/{certificate.pk}/").status_code == 404
    assert client.get(f"/api/ca/requests/{request.pk}/").status_code == 404
    assert client.post(f"/api/ca/certificates/{certificate.pk}/revoke/").status_code == 404
    assert client.get("/api/ca/certificates/").json()["results"] == []
    # An operator cannot place a request on another tenant's server either.
    refused = client.post(
        "/api/ca/requests/",
        {"authority": "hosts", "server": theirs.pk, "generate_key": True},
        format="json",
    )
    assert refused.status_code == 400
    assert "server" in refused.json()["error"]["fields"]


def test_certificates_filters_expiry_report_revoke_and_renew(api, operator, authorities, web01):
    client = api.as_user(operator)
    ids = []
    for days in (5, 20, 200):
        request = services.generate_request(
            user=operator, authority=authorities[1], server=web01, validity_days=days, sign=True
        )
        ids.append(request.certificates.get().pk)
    soon = client.get("/api/ca/certificates/?expiring_within=30&ordering=not_after")
    assert soon.status_code == 200
    assert [c["id"] for c in _no_private_key(soon)["results"]] == ids[:2]
    assert client.get("/api/ca/certificates/?bogus=1").status_code == 400

    first = Certificate.objects.get(pk=ids[0])
    renewed = client.post(
        f"/api/ca/certificates/{first.pk}/renew/", {"validity_days": 90}, format="json"
    )
    assert renewed.status_code == 201, renewed.content
    assert renewed.json()["renewal_of"] == first.pk
    assert renewed.json()["serial"] != first.serial
    soon = client.get("/api/ca/certificates/?expiring_within=30").json()["results"]
    assert {c["id"] for c in soon} == {ids[1]}  # the renewed one left the report

    revoked = client.post(
        f"/api/ca/certificates/{ids[1]}/revoke/", {"reason": "superseded"}, format="json"
    )
    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked"
    assert revoked.json()["revocation_reason"] == "superseded"
    twice = client.post(f"/api/ca/certificates/{ids[1]}/revoke/", {}, format="json")
    assert twice.status_code == 400
    bad_reason = client.post(
        f"/api/ca/certificates/{ids[2]}/revoke/", {"reason": "because"}, format="json"
    )
    assert bad_reason.status_code == 400
    serial = Certificate.objects.get(pk=ids[1]).serial
    by_serial = client.get(f"/api/ca/certificates/?serial={serial.upper()}").json()["results"]
    assert [c["id"] for c in by_serial] == [ids[1]]
    assert client.get("/api/ca/certificates/?status=revoked").json()["results"][0]["id"] == ids[1]
    hosts = Authority.objects.get(slug="hosts")
    assert hosts.crl.entries == 1
    assert AuditEvent.objects.filter(verb="revoke").count() == 1


def test_read_only_sees_but_changes_nothing(api, viewer, authorities, web01, admin_user):
    services.generate_request(user=admin_user, authority=authorities[1], server=web01, sign=True)
    client = api.as_user(viewer)
    certificate = client.get("/api/ca/certificates/").json()["results"][0]
    assert client.post(f"/api/ca/certificates/{certificate['id']}/revoke/").status_code == 403
    assert client.post("/api/ca/authorities/", {"name": "x", "slug": "x"}).status_code == 403
    hosts = Authority.objects.get(slug="hosts")
    assert client.post(f"/api/ca/authorities/{hosts.pk}/crl/").status_code == 403


@pytest.mark.django_db(transaction=True)
def test_refresh_crls_runs_as_a_tracked_job(api, admin_user, authorities):
    client = api.as_user(admin_user)
    numbers = {a.slug: a.crl.number for a in Authority.objects.select_related("crl")}
    response = client.post("/api/ca/authorities/refresh-crls/")
    assert response.status_code == 202
    job = Job.objects.get(pk=response.json()["id"])
    run_burst_worker("default")
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert sorted(job.result["refreshed"]) == ["Fleet root", "Hosts"]
    for authority in Authority.objects.select_related("crl"):
        assert authority.crl.number == numbers[authority.slug] + 1
        assert authority.crl.this_update <= timezone.now()


def test_no_response_carries_a_key_or_a_secret(api, admin_user, authorities, web01):
    services.generate_request(user=admin_user, authority=authorities[1], server=web01, sign=True)
    client = api.as_user(admin_user)
    for url in (
        "/api/ca/authorities/",
        f"/api/ca/authorities/{authorities[0].pk}/",
        "/api/ca/requests/",
        f"/api/ca/requests/{CertificateRequest.objects.get().pk}/",
        "/api/ca/certificates/",
    ):
        response = client.get(url)
        assert response.status_code == 200
        assert "PRIVATE KEY" not in json.dumps(response.json())


def test_cdp_and_aia_point_at_the_public_url_or_the_boot_url(api, admin_user, settings):
    settings.BOOT_URL = "http://10.0.0.1:8000"
    settings.CA_PUBLIC_URL = ""
    assert services.links_for(Authority(slug="x")).crl_url == "http://10.0.0.1:8000/pki/x.crl"
    settings.CA_PUBLIC_URL = "http://pki.example.net"
    root = services.create_authority(user=admin_user, name="Root", slug="root")
    hosts = services.create_authority(user=admin_user, name="Hosts", slug="hosts", parent=root)
    text = openssl.run("x509", "-noout", "-text", input=hosts.certificate).stdout
    assert "URI:http://pki.example.net/pki/root.crl" in text
    assert "CA Issuers - URI:http://pki.example.net/pki/root.crt" in text
    body = api.as_user(admin_user).get(f"/api/ca/authorities/{hosts.pk}/").json()
    assert body["urls"]["pem"] == "http://pki.example.net/pki/hosts.pem"

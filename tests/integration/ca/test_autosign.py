"""Build-token autosign end to end: a server in build mode POSTs a CSR made by `openssl req` to
/pki/autosign/<token> and gets a chain that `openssl verify -crl_check_all` accepts; one
certificate per build; names it does not own, bad tokens, expired tokens refused."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from django.utils import timezone

from ca import services
from ca.models import Certificate, CertificateRequest
from dcportal.models import AuditEvent
from deploy import tokens
from deploy.models import ServerDeploy
from tests.integration.ca import openssl
from tests.integration.ca.conftest import crls_of, put_in_build_mode

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def _post(client, token, csr, content_type="application/x-www-form-urlencoded"):
    # What `curl --data-binary @req.csr URL` sends: the bare PEM under a form content type.
    return client.post(reverse("pki:autosign", args=[token]), csr, content_type=content_type)


@pytest.fixture
def own_csr(tmp_path):
    return openssl.req(
        tmp_path, "web01", cn="web01.example.com", sans=("DNS:web01.example.com", "IP:10.0.0.5")
    )[0]


def test_a_building_server_gets_its_certificate_once(
    client, tmp_path, authorities, building, own_csr
):
    root, hosts = authorities
    row, token = building
    response = _post(client, token, own_csr)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/x-pem-file"
    blocks = openssl.split_pem(response.content.decode())
    assert len(blocks) == 3  # leaf, hosts, root
    leaf, chain = blocks[0], "".join(blocks[1:])
    result = openssl.verify(tmp_path, leaf=leaf, chain=chain, crls=crls_of(root, hosts))
    assert result.returncode == 0, result.stdout + result.stderr

    certificate = Certificate.objects.get()
    assert certificate.server == row.server
    assert certificate.tenant_id == row.server.tenant_id
    assert certificate.authority == hosts
    assert certificate.dns_names == ["web01.example.com"]
    assert certificate.ip_addresses == ["10.0.0.5"]
    text = openssl.run("x509", "-noout", "-ext", "extendedKeyUsage", input=leaf).stdout
    assert "TLS Web Server Authentication" in text and "TLS Web Client Authentication" in text
    request = certificate.request
    assert request.source == CertificateRequest.Source.AUTOSIGN
    assert request.status == CertificateRequest.Status.SIGNED
    # The token itself is never stored, only a digest that cannot be used as a token.
    assert token not in request.autosign_key and request.autosign_key != tokens.hash_token(token)
    events = AuditEvent.objects.filter(
        content_type=ContentType.objects.get_for_model(Certificate),
        object_id=str(certificate.pk),
        action="create",
    )
    assert events.get().actor_name == "system"
    assert events.get().via == "autosign"

    again = _post(client, token, own_csr)
    assert again.status_code == 409
    assert b"already has its certificate" in again.content
    assert Certificate.objects.count() == 1

    # A new nodeset draws a new token: the next build may have its certificate.
    _, new_token = put_in_build_mode(row.server)
    assert _post(client, new_token, own_csr).status_code == 200
    assert Certificate.objects.count() == 2


def test_a_name_the_server_does_not_own_is_refused_and_the_token_kept(
    client, tmp_path, authorities, building, own_csr
):
    _, token = building
    foreign = openssl.req(
        tmp_path,
        "x",
        cn="web01.example.com",
        sans=("DNS:web01.example.com", "DNS:db01.example.com"),
    )[0]
    response = _post(client, token, foreign)
    assert response.status_code == 400
    assert b"db01.example.com: not names of web01" in response.content
    assert not Certificate.objects.exists() and not CertificateRequest.objects.exists()
    # Nothing was used up: the right CSR still goes through.
    assert _post(client, token, own_csr).status_code == 200


@pytest.mark.parametrize("body", ["garbage", ""])
def test_a_bad_csr_is_a_400(client, authorities, building, body):
    _, token = building
    response = _post(client, token, body)
    assert response.status_code == 400
    assert response.content.startswith(b"Bad CSR: ")
    assert not Certificate.objects.exists()


def test_form_field_and_file_upload_are_accepted(client, tmp_path, authorities, web01, own_csr):
    _, token = put_in_build_mode(web01)
    response = client.post(reverse("pki:autosign", args=[token]), {"csr": own_csr})
    assert response.status_code == 200, response.content
    _, token = put_in_build_mode(web01)
    path = tmp_path / "upload.csr"
    path.write_text(own_csr)
    with path.open("rb") as handle:
        response = client.post(reverse("pki:autosign", args=[token]), {"csr": handle})
    assert response.status_code == 200, response.content


def test_expired_unknown_and_idle_tokens_are_refused(client, authorities, building, own_csr):
    row, token = building
    assert _post(client, "dcb_" + "x" * 43, own_csr).status_code == 403
    assert _post(client, "not-a-token", own_csr).status_code == 403
    ServerDeploy.objects.filter(pk=row.pk).update(
        token_expires=timezone.now() - timezone.timedelta(minutes=1)
    )
    expired = _post(client, token, own_csr)
    assert expired.status_code == 403
    assert b"expired" in expired.content
    ServerDeploy.objects.filter(pk=row.pk).update(
        token_expires=timezone.now() + timezone.timedelta(hours=1),
        state=ServerDeploy.State.DEPLOYED,
    )
    idle = _post(client, token, own_csr)
    assert idle.status_code == 403 and b"not in build mode" in idle.content
    assert not Certificate.objects.exists()


def test_refused_tokens_are_rate_limited_per_address(
    client, settings, authorities, building, own_csr
):
    settings.TOKEN_MAX_FAILURES = 3
    _, token = building
    for _ in range(3):
        assert _post(client, "dcb_wrong", own_csr).status_code == 403
    locked = _post(client, token, own_csr)
    assert locked.status_code == 429
    assert 0 < int(locked["Retry-After"]) <= settings.TOKEN_LOCKOUT_SECONDS
    other = client.post(
        reverse("pki:autosign", args=[token]),
        own_csr,
        content_type="application/x-pem-file",
        REMOTE_ADDR="10.9.9.9",
    )
    assert other.status_code == 200


def test_without_the_host_authority_autosign_says_so(client, building, own_csr, settings):
    settings.CA_HOST_AUTHORITY = "missing"
    _, token = building
    response = _post(client, token, own_csr)
    assert response.status_code == 503
    assert b"manage.py ca init --slug missing" in response.content


def test_a_tenant_authority_of_another_tenant_is_not_used(
    client, building, own_csr, tenants, admin_user, settings
):
    services.create_authority(user=admin_user, name="Globex CA", slug="gx", tenant=tenants[1])
    settings.CA_HOST_AUTHORITY = "gx"
    _, token = building
    assert _post(client, token, own_csr).status_code == 503


def test_autosign_takes_no_session_or_csrf(client, authorities, building, own_csr):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    _, token = building
    assert _post(strict, token, own_csr).status_code == 200
    assert strict.get(reverse("pki:autosign", args=[token])).status_code == 405

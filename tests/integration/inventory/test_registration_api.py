"""POST /api/inventory/register/ and its authentication; enrolment token and conflict endpoints."""

# ruff: noqa: F401, F811 (the shared fixtures are imported by name, which pytest needs)

import json
from datetime import timedelta

import pytest
import yaml
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from dcportal import services
from dcportal.models import AuditEvent
from inventory import registration
from inventory.models import Conflict, EnrolmentToken, Interface, Server
from tests.integration.inventory.registration_helpers import (
    UUID_A,
    acme,
    agent_client,
    enrolment,
    globex,
    make_report,
    operator,
)

pytestmark = pytest.mark.django_db
URL = "/api/inventory/register/"


def post(client, report, **extra):
    return client.post(URL, json.dumps(report), content_type="application/json", **extra)


def bearer(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


# Registering ----------------------------------------------------------------------------------


def test_an_enrolment_token_registers_into_its_tenant(agent_client, acme, enrolment):
    response = post(agent_client, make_report(), REMOTE_ADDR="192.0.2.7")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["result"] == "created" and body["conflicts"] == []
    assert body["server"]["hostname"] == "node-aabbcc000001"
    assert body["server"]["uuid"] == UUID_A and body["server"]["tenant"] == "acme"
    assert body["message"] == "Registered node-aabbcc000001 (created)."
    assert Server.objects.get().tenant == acme
    event = AuditEvent.objects.get(content_type__model="server")
    assert event.via == "agent" and event.actor is None and event.token_id is None
    assert event.source.startswith("192.0.2.7 enrolment token rack-1")
    assert event.request_id == response["X-Request-ID"]
    enrolment[0].refresh_from_db()
    assert enrolment[0].last_used is not None

    again = post(agent_client, make_report())
    assert again.status_code == 200 and again.json()["result"] == "unchanged"


def test_no_identity_answers_202_and_says_why(agent_client):
    response = post(agent_client, make_report(uuid=None, serial="Default string"))
    assert response.status_code == 202
    body = response.json()
    assert body["result"] == "held" and body["server"] is None
    assert "no identity" in body["message"]
    assert body["conflicts"][0]["kind"] == "placeholder"
    assert not Server.objects.exists()


def test_conflicts_are_listed_in_the_answer(agent_client, acme):
    other = Server.objects.create(tenant=acme, hostname="old-box")
    Interface.objects.create(server=other, name="eth0", mac="aa:bb:cc:00:00:02")
    body = post(agent_client, make_report()).json()
    assert body["result"] == "created"
    assert [c["kind"] for c in body["conflicts"]] == ["mac"]
    assert "1 conflict for an operator" in body["message"]


def test_another_tenants_server_answers_409_and_stays_untouched(agent_client, globex):
    theirs = Server.objects.create(tenant=globex, hostname="theirs", uuid=UUID_A, serial="X")
    response = post(agent_client, make_report(hostname="grab"))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    theirs.refresh_from_db()
    assert (theirs.hostname, theirs.serial, theirs.attributes) == ("theirs", "X", {})
    assert not Interface.objects.exists() and not Conflict.objects.exists()


@pytest.mark.parametrize(
    ("report", "field"),
    [
        ({"uuid": "nope"}, "uuid"),
        ({"uuid": UUID_A, "interfaces": [{"name": "e", "mac": "x"}]}, "interfaces"),
        ({"uuid": UUID_A, "hostname": "no spaces"}, "hostname"),
        ({"uuid": UUID_A, "tenant": "globex"}, "tenant"),
    ],
)
def test_bad_reports_are_400_with_fields(agent_client, report, field):
    response = post(agent_client, report)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert not Server.objects.exists()


def test_malformed_bodies_are_400(agent_client):
    assert agent_client.post(URL, "{nope", content_type="application/json").status_code == 400
    assert post(agent_client, ["a", "list"]).status_code == 400
    huge = json.dumps(make_report(blob="x" * (1024 * 1024)))
    assert agent_client.post(URL, huge, content_type="application/json").status_code == 400
    assert not Server.objects.exists()


def test_bytes_that_are_not_utf8_do_not_lose_the_report(agent_client):
    raw = json.dumps(make_report(bios="BIOS-\u00e9"), ensure_ascii=False).encode()
    body = raw.replace(b"\xc3\xa9", b"\xe9")
    assert b"\xe9" in body
    response = agent_client.post(URL, body, content_type="application/json")
    assert response.status_code == 201
    assert Server.objects.get().attributes["bios"] == "BIOS-\ufffd"


def test_nul_padded_firmware_strings_are_stored_without_the_nul(agent_client):
    report = make_report(serial="SRV-0042\u0000\u0000", bios={"vendor\u0000": "Dell\u0000"})
    response = post(agent_client, report)
    assert response.status_code == 201, response.content
    server = Server.objects.get()
    assert server.serial == "SRV-0042"
    assert server.attributes["bios"] == {"vendor": "Dell"}


# Authentication -------------------------------------------------------------------------------


def test_anonymous_is_401(client):
    response = post(client, make_report())
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert client.get(URL).status_code == 401


@pytest.mark.parametrize("state", ["revoked", "expired", "forged", "unknown"])
def test_dead_enrolment_tokens_are_401(enrolment, admin_user, state):
    token, key = enrolment
    if state == "revoked":
        registration.revoke_enrolment_token(user=admin_user, token=token)
    elif state == "expired":
        EnrolmentToken.objects.filter(pk=token.pk).update(
            expires=timezone.now() - timedelta(seconds=1)
        )
    elif state == "forged":
        key = f"dce_{token.prefix}_{'A' * 43}"
    else:
        key = "dce_000000000000_whatever"
    response = post(bearer(key), make_report())
    assert response.status_code == 401
    assert "enrolment token" in response.json()["error"]["message"]
    assert not Server.objects.exists()


def test_an_enrolment_token_opens_nothing_else(agent_client):
    for path in ("/api/me/", "/api/inventory/conflicts/", "/api/inventory/enrolment-tokens/"):
        assert agent_client.get(path).status_code == 401, path


def test_a_user_token_with_the_rights_registers(api, operator, acme):
    client = api.as_user(operator)
    response = post(client, make_report())
    assert response.status_code == 201
    assert AuditEvent.objects.get(content_type__model="server").actor == operator


def test_users_without_the_rights_are_refused(api, make_user, acme):
    viewer = make_user("viewer", roles=["read-only"], tenants=[acme])
    assert post(api.as_user(viewer), make_report()).status_code == 403
    operator = make_user("op", roles=["operator"], tenants=[acme])
    assert post(api.as_user(operator, write=False), make_report()).status_code == 403
    assert not Server.objects.exists()


def test_a_user_names_the_tenant_unless_they_have_just_one(api, make_user, acme, globex):
    both = make_user("both", roles=["operator"], tenants=[acme, globex])
    client = api.as_user(both)
    response = post(client, make_report())
    assert response.status_code == 400 and "tenant" in response.json()["error"]["fields"]
    assert post(client, make_report(tenant="globex")).status_code == 201
    assert Server.objects.get().tenant == globex
    # A tenant the user is not in is as unknown as one that does not exist.
    lone = make_user("lone", roles=["operator"], tenants=[acme])
    response = post(api.as_user(lone), make_report(uuid=None, serial="S2", tenant="globex"))
    assert response.status_code == 400
    assert Server.objects.count() == 1


def test_a_session_user_registers_too(client, operator):
    client.force_login(operator)
    assert post(client, make_report()).status_code == 201


# Enrolment tokens -----------------------------------------------------------------------------


def test_enrolment_token_api_shows_the_key_once(api, operator):
    client = api.as_user(operator)
    response = client.post(
        "/api/inventory/enrolment-tokens/",
        {"name": "pxe"},
        format="json",
        HTTP_HOST="localhost:8000",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    key = body["key"]
    assert key.startswith("dce_") and body["tenant"] == "acme" and body["active"] is True
    assert body["agent_url"] == "http://localhost:8000/inventory/agent.sh"
    assert (
        body["command"]
        == f"wget -qO- http://localhost:8000/inventory/agent.sh | sh -s -- --token {key}"
    )
    assert response["Cache-Control"] == "no-store"
    token = EnrolmentToken.objects.get()
    assert registration.authenticate_enrolment_token(key) == token
    for path in (
        "/api/inventory/enrolment-tokens/",
        f"/api/inventory/enrolment-tokens/{token.pk}/",
    ):
        text = client.get(path).content.decode()
        assert key not in text and token.key_hash not in text and '"key"' not in text
    event = AuditEvent.objects.get(content_type__model="enrolmenttoken")
    assert key not in json.dumps(event.changes)

    assert client.delete(f"/api/inventory/enrolment-tokens/{token.pk}/").status_code == 204
    token.refresh_from_db()
    assert token.revoked is not None
    listed = client.get("/api/inventory/enrolment-tokens/?active=false").json()["results"]
    assert [t["name"] for t in listed] == ["pxe"]


def test_enrolment_tokens_stay_in_their_tenant(api, operator, admin_user, globex, make_user, acme):
    theirs, _ = registration.create_enrolment_token(user=admin_user, tenant=globex, name="x")
    client = api.as_user(operator)
    assert client.get(f"/api/inventory/enrolment-tokens/{theirs.pk}/").status_code == 404
    assert client.delete(f"/api/inventory/enrolment-tokens/{theirs.pk}/").status_code == 404
    response = client.post(
        "/api/inventory/enrolment-tokens/", {"name": "y", "tenant": "globex"}, format="json"
    )
    assert response.status_code == 400
    viewer = make_user("viewer", roles=["read-only"], tenants=[acme])
    response = api.as_user(viewer).post(
        "/api/inventory/enrolment-tokens/", {"name": "z"}, format="json"
    )
    assert response.status_code == 403
    assert EnrolmentToken.objects.count() == 1


# Conflicts ------------------------------------------------------------------------------------


def test_conflicts_list_filter_and_resolve(api, agent_client, operator, acme):
    other = Server.objects.create(tenant=acme, hostname="old-box")
    Interface.objects.create(server=other, name="eth0", mac="aa:bb:cc:00:00:02")
    post(agent_client, make_report())
    post(agent_client, make_report(uuid=None, serial="", interfaces=[]))
    client = api.as_user(operator)
    listed = client.get("/api/inventory/conflicts/?state=open").json()["results"]
    assert sorted(c["kind"] for c in listed) == ["mac", "placeholder"]
    mac = client.get("/api/inventory/conflicts/?kind=mac").json()["results"][0]
    assert mac["server"] == "node-aabbcc000001" and mac["other_server"] == "old-box"
    assert mac["resolutions"] == ["merge", "dismiss"]
    assert mac["report"]["uuid"] == UUID_A.upper()
    assert client.get("/api/inventory/conflicts/?nonsense=1").status_code == 400
    # Any UTC offset Python reads (PostgreSQL's own stop at ±15:59); out of range is a 400.
    late = client.get("/api/inventory/conflicts/", {"since": "2999-01-01T00:00:00-19:43"})
    assert late.status_code == 200 and late.json()["results"] == []
    early = client.get("/api/inventory/conflicts/", {"since": "2000-01-01T00:00:00+23:59"})
    assert len(early.json()["results"]) == 2
    bad = client.get("/api/inventory/conflicts/", {"since": "0001-01-01T00:00:00+05:00"})
    assert bad.status_code == 400 and "since" in bad.json()["error"]["fields"]

    response = client.post(
        f"/api/inventory/conflicts/{mac['id']}/resolve/", {"resolution": "merge"}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["resolved"] and body["resolved_by"] == "op" and body["resolutions"] == []
    assert Interface.objects.get(mac="aa:bb:cc:00:00:02").server.hostname == "node-aabbcc000001"
    again = client.post(
        f"/api/inventory/conflicts/{mac['id']}/resolve/", {"resolution": "dismiss"}, format="json"
    )
    assert again.status_code == 400
    assert [
        c["kind"] for c in client.get("/api/inventory/conflicts/?state=resolved").json()["results"]
    ] == ["mac"]
    bad = client.post(
        f"/api/inventory/conflicts/{listed[0]['id']}/resolve/", {"resolution": "x"}, format="json"
    )
    assert bad.status_code == 400 and "resolution" in bad.json()["error"]["fields"]


def test_conflicts_of_other_tenants_are_404_and_viewers_cannot_resolve(
    api, agent_client, make_user, acme, globex
):
    post(agent_client, make_report(uuid=None, serial=""))
    conflict = Conflict.objects.get()
    outsider = make_user("outsider", roles=["operator"], tenants=[globex])
    client = api.as_user(outsider)
    assert client.get(f"/api/inventory/conflicts/{conflict.pk}/").status_code == 404
    response = client.post(
        f"/api/inventory/conflicts/{conflict.pk}/resolve/", {"resolution": "dismiss"}, format="json"
    )
    assert response.status_code == 404
    viewer = make_user("viewer", roles=["read-only"], tenants=[acme])
    client = api.as_user(viewer)
    assert client.get(f"/api/inventory/conflicts/{conflict.pk}/").status_code == 200
    response = client.post(
        f"/api/inventory/conflicts/{conflict.pk}/resolve/", {"resolution": "dismiss"}, format="json"
    )
    assert response.status_code == 403
    conflict.refresh_from_db()
    assert conflict.resolved is None


# Schema ---------------------------------------------------------------------------------------


def test_the_schema_documents_registration(tmp_path):
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    paths = schema["paths"]
    for expected in (
        "/api/inventory/register/",
        "/api/inventory/enrolment-tokens/",
        "/api/inventory/enrolment-tokens/{id}/",
        "/api/inventory/conflicts/",
        "/api/inventory/conflicts/{id}/resolve/",
    ):
        assert expected in paths
    register = paths["/api/inventory/register/"]["post"]
    assert {"enrolmentTokenAuth": []} in register["security"]
    assert set(register["responses"]) >= {"200", "201", "202"}
    assert "enrolmentTokenAuth" in schema["components"]["securitySchemes"]
    assert "ConflictKindEnum" in schema["components"]["schemas"]
    created = schema["components"]["schemas"]["EnrolmentTokenCreated"]["properties"]
    assert "key" in created and "key_hash" not in created
    assert "key" not in schema["components"]["schemas"]["EnrolmentToken"]["properties"]


def test_services_token_helpers_are_shared():
    # API tokens and enrolment tokens are minted and parsed by the same helpers.
    key, prefix, key_hash = services.mint_key(registration.ENROLMENT_PREFIX)
    assert services.key_prefix(key, "dce") == prefix and services.key_prefix(key, "dcp") is None
    assert key_hash == services.hash_key(key)


# Plain HTTP in production --------------------------------------------------------------------


@pytest.fixture
def https_only(settings):
    """Production's HTTPS redirect (the suite runs with plain HTTP allowed)."""
    settings.SECURE_SSL_REDIRECT = True


def test_the_agent_registers_over_plain_http_where_the_rest_is_redirected(
    https_only, client, agent_client, acme
):
    """A discovery image's agent reaches the portal at the boot URL (plain HTTP): its script and
    its register call are not redirected to HTTPS, which a busybox wget may not speak."""
    script = client.get("/inventory/agent.sh")
    assert script.status_code == 200 and script.content.startswith(b"#!/bin/sh")
    response = post(agent_client, make_report())
    assert response.status_code == 201, response.content
    assert Server.objects.get().tenant == acme
    # Everything else still is redirected, the rest of the inventory API included.
    for path in ("/api/me/", "/api/inventory/servers/", "/api/inventory/register/x", "/login/"):
        response = client.get(path)
        assert response.status_code == 301, path
        assert response["Location"] == f"https://testserver{path}"

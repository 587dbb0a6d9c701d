"""API tokens: shown once, stored hashed, never stronger than their owner; `manage.py tokens`."""

import hashlib
import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from dcportal import services
from dcportal.models import ApiToken, AuditEvent, Credential, Role

pytestmark = pytest.mark.django_db


def bearer(key, scheme="Bearer"):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} {key}")
    return client


def session_client(user):
    client = APIClient()
    client.force_login(user)
    return client


def tokens_command(*args, user="root"):
    out = StringIO()
    call_command("tokens", *args, "--user", user, stdout=out)
    return out.getvalue()


def key_from(output):
    return next(word for word in output.split() if word.startswith(services.TOKEN_PREFIX + "_"))


# Creation: the key once, a hash at rest --------------------------------------------------------


def test_created_key_is_shown_once_and_stored_only_as_a_hash(operator):
    client = session_client(operator)
    response = client.post("/api/tokens/", {"name": "ci"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    key = body["key"]
    assert key.startswith("dcp_")
    assert body["user"] == "op" and body["write"] is True and body["active"] is True

    token = ApiToken.objects.get(pk=body["id"])
    assert token.key_hash == hashlib.sha256(key.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM dcportal_apitoken WHERE id = %s", [token.pk])
        row = [str(value) for value in cursor.fetchone()]
    assert not any(key in value for value in row)
    assert not any(key.rsplit("_", 1)[-1] in value for value in row)

    for url in ("/api/tokens/", f"/api/tokens/{token.pk}/"):
        text = client.get(url).content.decode()
        assert key not in text
        assert token.key_hash not in text
        assert '"key"' not in text
    event = AuditEvent.objects.get(content_type__model="apitoken", action="create")
    assert key not in json.dumps(event.changes)
    assert token.key_hash not in json.dumps(event.changes)


def test_bearer_and_token_schemes_authenticate(operator):
    _, key = services.create_token(user=operator, name="ci")
    for scheme in ("Bearer", "Token", "bearer"):
        response = bearer(key, scheme).get("/api/me/")
        assert response.status_code == 200
        assert response.json()["username"] == "op"
        assert response.json()["tenants"] == ["acme"]


def test_key_whose_random_part_contains_underscores_authenticates(operator, monkeypatch):
    # The random part is urlsafe base64, so "_" is one of its letters (about every other key).
    monkeypatch.setattr(services.pysecrets, "token_urlsafe", lambda n: "ab_cd_-ef" * 5)
    token, key = services.create_token(user=operator, name="underscored")
    assert key.count("_") > 2
    assert services.authenticate_token(key) == token
    assert bearer(key).get("/api/me/").status_code == 200


def test_any_fresh_key_authenticates(operator):
    for index in range(20):
        token, key = services.create_token(user=operator, name=f"t{index}")
        assert services.authenticate_token(key) == token


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer a b", "Bearer dcp_nope_nope", "Bearer not-a-portal-token", "Bearer dcp__"],
)
def test_malformed_or_unknown_keys_are_401(header, client):
    response = client.get("/api/me/", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_wrong_secret_with_a_real_prefix_is_401(operator):
    token, key = services.create_token(user=operator, name="ci")
    forged = f"dcp_{token.prefix}_{'A' * 43}"
    assert forged != key
    assert bearer(forged).get("/api/me/").status_code == 401


def test_last_used_is_recorded(operator):
    token, key = services.create_token(user=operator, name="ci")
    assert token.last_used is None
    bearer(key).get("/api/me/")
    token.refresh_from_db()
    assert token.last_used is not None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "ci", "expires": "2000-01-01T00:00:00Z"}, "expires"),
        ({}, "name"),
    ],
)
def test_bad_token_requests_are_400_with_fields(operator, body, field):
    response = session_client(operator).post("/api/tokens/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert not ApiToken.objects.exists()


def test_token_names_are_unique_per_owner(operator, make_user):
    services.create_token(user=operator, name="ci")
    response = session_client(operator).post("/api/tokens/", {"name": "ci"}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()["error"]["fields"]
    # Another user may use the same name.
    other = make_user("other")
    assert (
        session_client(other).post("/api/tokens/", {"name": "ci"}, format="json").status_code == 201
    )


# Ending a token --------------------------------------------------------------------------------


def test_expired_token_is_401(operator):
    token, key = services.create_token(
        user=operator, name="short", expires=timezone.now() + timedelta(hours=1)
    )
    assert bearer(key).get("/api/me/").status_code == 200
    # As if the hour had passed.
    ApiToken.objects.filter(pk=token.pk).update(expires=timezone.now() - timedelta(seconds=1))
    response = bearer(key).get("/api/me/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_revoked_token_is_401_and_kept_for_the_audit(operator):
    token, key = services.create_token(user=operator, name="ci")
    client = bearer(key)
    assert client.delete(f"/api/tokens/{token.pk}/").status_code == 204
    token.refresh_from_db()
    assert token.revoked is not None and not token.is_active
    assert client.get("/api/me/").status_code == 401
    assert AuditEvent.objects.filter(verb="revoke", object_id=str(token.pk)).count() == 1


def test_only_the_owner_or_an_admin_revokes(operator, make_user, admin_user):
    token, key = services.create_token(user=operator, name="ci")
    other = make_user("other", roles=["operator"])
    assert session_client(other).delete(f"/api/tokens/{token.pk}/").status_code == 404
    with pytest.raises(PermissionDenied):
        services.revoke_token(user=other, token=token)
    assert services.authenticate_token(key) == token
    assert session_client(admin_user).delete(f"/api/tokens/{token.pk}/").status_code == 204
    assert services.authenticate_token(key) is None


def test_inactive_owner_is_401(operator):
    _, key = services.create_token(user=operator, name="ci")
    operator.is_active = False
    operator.save(update_fields=["is_active"])
    assert bearer(key).get("/api/me/").status_code == 401


# A token never holds more than its owner ---------------------------------------------------------


def test_read_only_token_reads_but_never_writes(operator, tenants):
    token, key = services.create_token(user=operator, name="ro", write=False)
    client = bearer(key)
    assert client.get("/api/credentials/").status_code == 200
    body = {"tenant": "acme", "name": "bmc", "secret": "x"}
    assert client.post("/api/credentials/", body, format="json").status_code == 403
    # Nor may it mint itself a writing token, or revoke tokens.
    assert client.post("/api/tokens/", {"name": "rw"}, format="json").status_code == 403
    assert client.delete(f"/api/tokens/{token.pk}/").status_code == 403
    assert not Credential.objects.exists()
    assert ApiToken.objects.count() == 1
    assert ApiToken.objects.get().revoked is None


def test_token_loses_what_its_owner_loses(operator, tenants):
    _, key = services.create_token(user=operator, name="ci")
    client = bearer(key)
    body = {"tenant": "acme", "name": "bmc", "secret": "x"}
    assert client.post("/api/credentials/", body, format="json").status_code == 201
    Role.objects.get(name="operator").users.remove(operator)
    response = client.post("/api/credentials/", {**body, "name": "bmc2"}, format="json")
    assert response.status_code == 403
    assert client.get("/api/credentials/").status_code == 403
    assert Credential.objects.count() == 1


def test_token_loses_a_tenant_its_owner_leaves(operator, tenants):
    credential = services.create_credential(
        user=operator, tenant=tenants[0], name="bmc", secret="x"
    )
    _, key = services.create_token(user=operator, name="ci")
    client = bearer(key)
    assert client.get(f"/api/credentials/{credential.pk}/").status_code == 200
    tenants[0].members.remove(operator)
    assert client.get(f"/api/credentials/{credential.pk}/").status_code == 404


def test_token_for_another_user_needs_an_admin(operator, make_user, admin_user):
    make_user("bob")
    response = session_client(operator).post(
        "/api/tokens/", {"name": "for-bob", "user": "bob"}, format="json"
    )
    assert response.status_code == 403
    assert not ApiToken.objects.filter(user__username="bob").exists()

    response = session_client(admin_user).post(
        "/api/tokens/", {"name": "for-bob", "user": "bob"}, format="json"
    )
    assert response.status_code == 201
    token = ApiToken.objects.get(user__username="bob")
    assert services.authenticate_token(response.json()["key"]) == token
    event = AuditEvent.objects.get(content_type__model="apitoken", object_id=str(token.pk))
    assert event.actor == admin_user


def test_no_token_for_an_inactive_user(admin_user, make_user):
    make_user("gone", is_active=False)
    response = session_client(admin_user).post(
        "/api/tokens/", {"name": "x", "user": "gone"}, format="json"
    )
    assert response.status_code == 400
    assert not ApiToken.objects.exists()


# manage.py tokens ------------------------------------------------------------------------------


def test_tokens_command_create_list_revoke(admin_user, operator):
    output = tokens_command("create", "deploy-bot", user="op")
    key = key_from(output)
    token = ApiToken.objects.get(name="deploy-bot")
    assert token.user == operator and token.write and token.expires is None
    assert services.authenticate_token(key) == token
    assert AuditEvent.objects.filter(content_type__model="apitoken", via="cli").count() == 1

    listing = tokens_command("list", user="op")
    assert "deploy-bot" in listing and token.prefix in listing and " rw " in listing
    assert key not in listing and token.key_hash not in listing

    assert f"token {token.pk} revoked" in tokens_command("revoke", str(token.pk), user="op")
    assert services.authenticate_token(key) is None
    assert "revoked" in tokens_command("list", user="op")


def test_tokens_command_read_only_and_expiry(operator):
    before = timezone.now()
    tokens_command("create", "nightly", "--read-only", "--days", "2", user="op")
    token = ApiToken.objects.get(name="nightly")
    assert not token.write
    assert before + timedelta(days=2) <= token.expires <= timezone.now() + timedelta(days=2)
    assert " ro " in tokens_command("list", user="op")


def test_tokens_command_keeps_users_to_their_own(admin_user, operator, make_user):
    bobs, _ = services.create_token(user=admin_user, owner=make_user("bob"), name="bobs")
    with pytest.raises(CommandError, match="permission denied"):
        tokens_command("create", "for-bob", "--owner", "bob", user="op")
    assert "bobs" not in tokens_command("list", user="op")
    with pytest.raises(CommandError, match="no token"):
        tokens_command("revoke", str(bobs.pk), user="op")
    bobs.refresh_from_db()
    assert bobs.revoked is None

    # An admin sees and handles everyone's.
    assert "bobs" in tokens_command("list")
    tokens_command("create", "for-bob", "--owner", "bob")
    assert ApiToken.objects.filter(user__username="bob", name="for-bob").exists()
    tokens_command("revoke", str(bobs.pk))
    bobs.refresh_from_db()
    assert bobs.revoked is not None

"""Secrets at rest and in flight: a planted secret must never come back out of the portal, and
the encryption keys can be rotated."""

import json
import logging
import uuid
from io import StringIO

import django_rq
import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from dcportal import jobs, secrets, services
from dcportal.models import ApiToken, AuditEvent, Credential, Job, JobLog
from tests.workers import run_burst_worker

CREDENTIALS = "/api/credentials/"
logger = logging.getLogger("tests.secrets")


def planted():
    return f"PLANTED-{uuid.uuid4().hex}"


def raw_secret(pk):
    """The stored column, as the database holds it (no from_db_value decryption)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM dcportal_credential WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def database_text():
    """Every row of every table of the schema as text: the whole database, greppable."""
    chunks = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        )
        for (table,) in cursor.fetchall():
            cursor.execute(f'SELECT t::text FROM "{table}" t')  # names come from the catalog
            chunks.extend(row[0] for row in cursor.fetchall())
    return "\n".join(chunks)


def redis_text():
    """Every value in the job broker: RQ must only ever carry job ids."""
    conn = django_rq.get_queue("default").connection
    chunks = []
    for key in conn.scan_iter():
        kind = conn.type(key).decode()
        if kind == "string":
            chunks.append(conn.get(key))
        elif kind == "hash":
            chunks.extend(b"%s=%s" % item for item in conn.hgetall(key).items())
        elif kind == "list":
            chunks.extend(conn.lrange(key, 0, -1))
        elif kind == "set":
            chunks.extend(conn.smembers(key))
        elif kind == "zset":
            chunks.extend(conn.zrange(key, 0, -1))
    return b"\n".join(c for c in chunks if c).decode("utf-8", "replace")


@pytest.fixture
def careless_job_kind():
    """A job that handles a credential as carelessly as a job author might: it logs it,
    reports it as progress and passes it to the logging module."""

    @jobs.job_kind("tests.use_credential", title="Use a credential")
    def use_credential(ctx, credential_id):
        credential = Credential.objects.get(pk=credential_id)
        ctx.progress(10, f"logging in with {credential.secret}")
        ctx.log(f"user {credential.username} secret {credential.secret}")
        ctx.log(credential.secret, level="debug")
        logger.warning("credential %s has secret %s", credential, credential.secret)
        return {"secret_length": len(credential.secret.reveal())}

    yield "tests.use_credential"
    jobs._KINDS.pop("tests.use_credential", None)


@pytest.mark.django_db(transaction=True)
def test_planted_secret_appears_nowhere(
    api, client, admin_user, tenants, careless_job_kind, caplog, capfd
):
    caplog.set_level(logging.DEBUG)
    first, second, rejected = planted(), planted(), planted()
    api_client = api.as_user(admin_user)
    bodies = {}

    with CaptureQueriesContext(connection) as queries:
        response = api_client.post(
            CREDENTIALS,
            {
                "tenant": "acme",
                "name": "bmc-1",
                "username": "ADMIN",
                "secret": first,
            },
            format="json",
        )
        assert response.status_code == 201, response.content
        bodies["create"] = response.content
        pk = response.json()["id"]
        url = f"{CREDENTIALS}{pk}/"

        response = api_client.patch(url, {"secret": second}, format="json")
        assert response.status_code == 200, response.content
        bodies["patch"] = response.content
        response = api_client.put(
            url,
            {
                "tenant": "acme",
                "name": "bmc-1",
                "kind": "password",
                "username": "root",
                "description": "kept its secret",
            },
            format="json",
        )
        assert response.status_code == 200, response.content
        bodies["put"] = response.content
        # A refused write must not echo the secret in its error either.
        response = api_client.post(
            CREDENTIALS,
            {
                "tenant": "acme",
                "name": "bmc-1",
                "kind": "bogus",
                "secret": rejected,
            },
            format="json",
        )
        assert response.status_code == 400
        bodies["invalid"] = response.content

        with transaction.atomic():
            job = jobs.enqueue(
                careless_job_kind,
                user=admin_user,
                obj=Credential.objects.get(pk=pk),
                params={"credential_id": pk},
            )
        run_burst_worker()

    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.traceback
    # The job did get the real secret to work with, it just never showed it.
    assert job.result == {"secret_length": len(second)}
    assert Credential.objects.get(pk=pk).secret.reveal() == second

    for path in [
        CREDENTIALS,
        url,
        f"{CREDENTIALS}?tenant=acme",
        "/api/audit/",
        f"/api/audit/?object_id={pk}",
        "/api/jobs/",
        f"/api/jobs/{job.pk}/",
        f"/api/jobs/{job.pk}/log/",
        "/api/schema/",
        "/api/me/",
    ]:
        response = api_client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        bodies[path] = response.content
    # The browsable API renders edit forms filled from the object.
    for path in (url, CREDENTIALS):
        response = api_client.get(path, HTTP_ACCEPT="text/html")
        assert response.status_code == 200
        bodies[f"html {path}"] = response.content

    client.force_login(admin_user)
    event_ids = AuditEvent.objects.filter(object_id=str(pk)).values_list("pk", flat=True)
    pages = [
        "/",
        "/audit/",
        "/jobs/",
        f"/jobs/{job.pk}/",
        "/admin/dcportal/credential/",
        f"/admin/dcportal/credential/{pk}/change/",
        f"/admin/dcportal/credential/{pk}/history/",
        "/admin/dcportal/auditevent/",
        "/admin/dcportal/joblog/",
        f"/admin/dcportal/job/{job.pk}/change/",
        *(f"/admin/dcportal/auditevent/{event_id}/change/" for event_id in event_ids),
    ]
    for path in pages:
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        bodies[path] = response.content

    events = list(AuditEvent.objects.filter(object_id=str(pk)).values())
    assert {e["action"] for e in events} == {"create", "update"}
    records = {
        "audit": json.dumps(list(AuditEvent.objects.values()), default=str),
        "jobs": json.dumps(list(Job.objects.values()), default=str),
        "joblog": json.dumps(list(JobLog.objects.values()), default=str),
        "database": database_text(),
        "redis": redis_text(),
        "sql": "\n".join(q["sql"] for q in queries.captured_queries),
        "logs": caplog.text
        + "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text}" for r in caplog.records),
        "output": "".join(capfd.readouterr()),
    }
    # The careless job did try to write it: make sure the lines exist, redacted.
    assert JobLog.objects.filter(job=job, message__contains=secrets.REDACTED).count() == 2
    assert "has secret ********" in caplog.text

    for secret in (first, second, rejected):
        for where, body in bodies.items():
            assert secret not in body.decode(), f"{secret} leaked in {where}"
        for where, text in records.items():
            assert secret not in text, f"{secret} leaked in {where}"

    raw = raw_secret(pk)
    assert raw.startswith("gAAAAA")  # a Fernet token (version byte 0x80, base64)
    assert secrets.fernet().decrypt(raw.encode()).decode() == second


@pytest.mark.django_db
def test_api_never_returns_a_secret_field(api, admin_user, tenants):
    client = api.as_user(admin_user)
    secret = planted()

    created = client.post(
        CREDENTIALS, {"tenant": "acme", "name": "n", "secret": secret}, format="json"
    ).json()
    detail = client.get(f"{CREDENTIALS}{created['id']}/").json()

    for body in (created, detail):
        assert "secret" not in body
        assert body["has_secret"] is True


@pytest.mark.django_db
def test_api_token_key_and_hash_never_appear(api, admin_user):
    client = api.as_user(admin_user)

    response = client.post("/api/tokens/", {"name": "ci"}, format="json")

    assert response.status_code == 201
    key = response.json()["key"]  # shown once, on creation
    token = ApiToken.objects.get(pk=response.json()["id"])
    later = client.get(f"/api/tokens/{token.pk}/").content.decode()
    audit = json.dumps(list(AuditEvent.objects.values()), default=str)
    for value in (key, token.key_hash):
        assert value not in later
        assert value not in audit
    assert AuditEvent.objects.get(object_id=str(token.pk), action="create").changes["key_hash"] == [
        None,
        secrets.REDACTED,
    ]


# Keeping and refusing secrets ---------------------------------------------------------------


@pytest.fixture
def credential(admin_user, tenants):
    return services.create_credential(
        user=admin_user, tenant=tenants[0], name="bmc", username="ADMIN", secret="original-secret"
    )


@pytest.mark.django_db
@pytest.mark.parametrize("secret", ["", None])
def test_service_update_with_empty_secret_keeps_it(admin_user, credential, secret):
    services.update_credential(credential, user=admin_user, secret=secret, username="root")

    stored = Credential.objects.get(pk=credential.pk)
    assert stored.secret.reveal() == "original-secret"
    assert stored.username == "root"


@pytest.mark.django_db
def test_api_update_without_secret_keeps_it(api, admin_user, credential):
    client = api.as_user(admin_user)
    url = f"{CREDENTIALS}{credential.pk}/"

    put = client.put(url, {"tenant": "acme", "name": "bmc", "username": "a"}, format="json")
    patch = client.patch(url, {"username": "b"}, format="json")

    assert (put.status_code, patch.status_code) == (200, 200)
    assert Credential.objects.get(pk=credential.pk).secret.reveal() == "original-secret"


@pytest.mark.django_db
def test_api_update_with_empty_secret_keeps_it(api, admin_user, credential):
    # A client that round-trips an edit form sends the empty password box back.
    response = api.as_user(admin_user).patch(
        f"{CREDENTIALS}{credential.pk}/", {"secret": "", "username": "c"}, format="json"
    )

    assert response.status_code == 200, response.json()
    stored = Credential.objects.get(pk=credential.pk)
    assert stored.secret.reveal() == "original-secret"
    assert stored.username == "c"


@pytest.mark.django_db
def test_api_update_with_new_secret_replaces_it(api, admin_user, credential):
    response = api.as_user(admin_user).patch(
        f"{CREDENTIALS}{credential.pk}/", {"secret": "replacement"}, format="json"
    )

    assert response.status_code == 200
    assert Credential.objects.get(pk=credential.pk).secret.reveal() == "replacement"


@pytest.mark.django_db
@pytest.mark.parametrize("body", [{}, {"secret": ""}])
def test_api_create_requires_a_secret(api, admin_user, tenants, body):
    response = api.as_user(admin_user).post(
        CREDENTIALS, {"tenant": "acme", "name": "empty", **body}, format="json"
    )

    assert response.status_code == 400
    assert "secret" in response.json()["error"]["fields"]
    assert not Credential.objects.filter(name="empty").exists()


@pytest.mark.django_db
def test_service_create_refuses_an_empty_secret(admin_user, tenants):
    with pytest.raises(ValidationError) as caught:
        services.create_credential(user=admin_user, tenant=tenants[0], name="empty", secret="")

    assert "secret" in caught.value.message_dict
    assert not Credential.objects.filter(name="empty").exists()


@pytest.mark.django_db
def test_stored_value_is_a_fernet_token_not_the_plaintext(admin_user, tenants):
    secret = planted()

    cred = services.create_credential(user=admin_user, tenant=tenants[0], name="x", secret=secret)

    raw = raw_secret(cred.pk)
    assert secret not in raw
    assert secrets.fernet().decrypt(raw.encode()).decode() == secret
    # Fresh IV per write: the same secret never encrypts to the same column value twice.
    services.update_credential(cred, user=admin_user, secret=secret)
    assert raw_secret(cred.pk) != raw


def test_dumpdata_never_carries_secrets():
    field = Credential._meta.get_field("secret")
    cred = Credential(secret="dump-me")

    assert field.value_to_string(cred) == secrets.REDACTED


# Key rotation ---------------------------------------------------------------------------------


@pytest.fixture
def key_file(settings, tmp_path, monkeypatch):
    """A key file of our own with one fresh key, and nothing from the environment."""
    path = tmp_path / "encryption.keys"
    path.write_text(Fernet.generate_key().decode() + "\n")
    settings.ENCRYPTION_KEY_FILE = path
    monkeypatch.delenv("DCPORTAL_ENCRYPTION_KEYS", raising=False)
    secrets._fernet.cache_clear()
    yield path
    secrets._fernet.cache_clear()


def keys_in(path):
    return [line for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.django_db
def test_rotate_reencrypts_under_the_new_key(key_file, admin_user, tenants):
    values = {name: planted() for name in ("a", "b", "c")}
    creds = {
        name: services.create_credential(
            user=admin_user, tenant=tenants[0], name=name, secret=value
        )
        for name, value in values.items()
    }
    (old_key,) = keys_in(key_file)
    before = {name: raw_secret(c.pk) for name, c in creds.items()}

    out = call_command_output("rotate_encryption_key")

    keys = keys_in(key_file)
    assert len(keys) == 2 and keys[1] == old_key
    new_key = keys[0]
    assert "re-encrypted 3 secret(s)" in out
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    for name, cred in creds.items():
        raw = raw_secret(cred.pk)
        assert raw != before[name]
        assert Fernet(new_key.encode()).decrypt(raw.encode()).decode() == values[name]
        with pytest.raises(InvalidToken):
            Fernet(old_key.encode()).decrypt(raw.encode())

    # Retire the old key: everything still reads with the new one alone.
    key_file.write_text(new_key + "\n")
    secrets._fernet.cache_clear()
    for name, cred in creds.items():
        assert Credential.objects.get(pk=cred.pk).secret.reveal() == values[name]


@pytest.mark.django_db
def test_rotate_refuses_to_add_a_key_to_the_environment(key_file, monkeypatch):
    monkeypatch.setenv("DCPORTAL_ENCRYPTION_KEYS", Fernet.generate_key().decode())

    with pytest.raises(CommandError, match="--reencrypt-only"):
        call_command("rotate_encryption_key")


@pytest.mark.django_db
def test_reencrypt_only_uses_the_first_environment_key(key_file, monkeypatch, admin_user, tenants):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("DCPORTAL_ENCRYPTION_KEYS", old)
    cred = services.create_credential(
        user=admin_user, tenant=tenants[0], name="env", secret="env-secret"
    )
    monkeypatch.setenv("DCPORTAL_ENCRYPTION_KEYS", f"{new},{old}")

    call_command_output("rotate_encryption_key", "--reencrypt-only")

    assert Fernet(new.encode()).decrypt(raw_secret(cred.pk).encode()) == b"env-secret"
    assert keys_in(key_file) != [new]  # the file was not touched


@pytest.mark.django_db
def test_rotate_with_an_undecryptable_secret_changes_nothing(key_file, admin_user, tenants):
    good = services.create_credential(
        user=admin_user, tenant=tenants[0], name="good", secret="good-secret"
    )
    stray = services.create_credential(
        user=admin_user, tenant=tenants[0], name="stray", secret="stray-secret"
    )
    foreign = Fernet(Fernet.generate_key()).encrypt(b"from elsewhere").decode()
    Credential.objects.filter(pk=stray.pk).update(secret=secrets.Ciphertext(foreign))
    before = raw_secret(good.pk)

    with pytest.raises(ImproperlyConfigured, match="cannot be decrypted"):
        call_command("rotate_encryption_key", "--reencrypt-only")

    # One bad row stops the whole rotation; the good row is not left half-rotated.
    assert raw_secret(good.pk) == before
    assert raw_secret(stray.pk) == foreign


@pytest.mark.django_db
def test_wrong_key_is_a_clear_configuration_error(key_file, admin_user, tenants):
    cred = services.create_credential(
        user=admin_user, tenant=tenants[0], name="w", secret="w-secret"
    )
    key_file.write_text(Fernet.generate_key().decode() + "\n")

    with pytest.raises(ImproperlyConfigured, match="cannot be decrypted"):
        Credential.objects.get(pk=cred.pk)


def test_malformed_key_is_a_clear_configuration_error(key_file):
    key_file.write_text("not-a-fernet-key\n")

    with pytest.raises(ImproperlyConfigured, match="not a valid Fernet key"):
        secrets.encrypt("x")


def test_missing_key_names_both_ways_to_configure_it(key_file):
    key_file.unlink()

    with pytest.raises(ImproperlyConfigured, match="DCPORTAL_ENCRYPTION_KEYS") as caught:
        secrets.encrypt("x")
    assert str(key_file) in str(caught.value)


def test_key_file_ignores_comments_and_blank_lines(key_file):
    key = keys_in(key_file)[0]
    key_file.write_text(f"# rotated 2025-01-01\n\n{key}\n")

    assert secrets.decrypt(Fernet(key.encode()).encrypt(b"v").decode()) == "v"


def call_command_output(*args):
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()

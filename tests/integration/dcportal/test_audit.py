"""The audit trail: one event per write, with who, what, where from and which request; rows
that the database itself keeps immutable; read through the API within the reader's tenants."""

import contextlib
from datetime import timedelta

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django.utils.functional import SimpleLazyObject

from dcportal import audit, requestcontext, services
from dcportal.models import ApiToken, AuditEvent, Credential, Tenant
from dcportal.secrets import REDACTED

pytestmark = pytest.mark.django_db

CREDENTIALS = "/api/credentials/"
AUDIT = "/api/audit/"


@contextlib.contextmanager
def one_new_event():
    """Yields a list that holds, after the block, the single AuditEvent the block wrote."""
    start = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    written = []
    yield written
    written.extend(AuditEvent.objects.filter(id__gt=start).order_by("id"))
    assert len(written) == 1, [(e.action, e.object_repr, e.changes) for e in written]


def credential_type():
    return ContentType.objects.get_for_model(Credential)


@pytest.fixture
def credential(admin_user, tenants):
    return services.create_credential(
        user=admin_user, tenant=tenants[0], name="bmc", username="ADMIN", secret="s3cret-one"
    )


# Writes through services ----------------------------------------------------------------------


def test_create_writes_one_event(admin_user, tenants):
    with one_new_event() as events:
        cred = services.create_object(
            Credential,
            user=admin_user,
            tenant=tenants[0],
            name="ipmi",
            username="ADMIN",
            secret="create-secret",
        )

    event = events[0]
    assert event.action == AuditEvent.Action.CREATE
    assert event.actor == admin_user
    assert event.actor_name == admin_user.username
    assert event.content_type == credential_type()
    assert event.object_id == str(cred.pk)
    assert event.object_repr == "ipmi"
    assert event.tenant_id == tenants[0].pk
    assert event.changes["name"] == [None, "ipmi"]
    assert event.changes["username"] == [None, "ADMIN"]
    assert event.changes["tenant"] == [None, tenants[0].pk]
    assert event.changes["secret"] == [None, REDACTED]
    # Outside a request or command nothing claims to be one.
    assert (event.via, event.request_id, event.source, event.token_id) == ("system", "", "", None)


def test_update_writes_one_event_with_changed_fields_only(admin_user, credential):
    with one_new_event() as events:
        services.update_object(credential, user=admin_user, username="root", description="rack 4")

    event = events[0]
    assert event.action == AuditEvent.Action.UPDATE
    assert event.object_id == str(credential.pk)
    assert event.changes == {"username": ["ADMIN", "root"], "description": ["", "rack 4"]}


def test_secret_change_is_recorded_without_the_value(admin_user, credential):
    with one_new_event() as events:
        services.update_credential(credential, user=admin_user, secret="s3cret-two")

    assert events[0].changes == {"secret": [REDACTED, REDACTED]}


@pytest.mark.parametrize("fields", [{}, {"username": "ADMIN"}, {"name": "bmc", "kind": "password"}])
def test_noop_update_writes_nothing(admin_user, credential, fields):
    before = AuditEvent.objects.count()

    services.update_object(credential, user=admin_user, **fields)

    assert AuditEvent.objects.count() == before


def test_delete_writes_one_event_that_outlives_the_object(admin_user, credential):
    pk = credential.pk

    with one_new_event() as events:
        services.delete_object(credential, user=admin_user)

    event = events[0]
    assert not Credential.objects.filter(pk=pk).exists()
    assert event.action == AuditEvent.Action.DELETE
    assert event.object_id == str(pk)
    assert event.object_repr == "bmc"
    assert event.changes["name"] == ["bmc", None]
    assert event.changes["secret"] == [REDACTED, None]


def test_tenant_create_update_delete_each_write_one_event(admin_user, make_user):
    member = make_user("member")

    with one_new_event() as created:
        tenant = services.create_tenant(user=admin_user, name="Initech", slug="initech")
    with one_new_event() as updated:
        services.update_object(
            tenant, user=admin_user, description="TPS", m2m={"members": [member.pk]}
        )
    with one_new_event() as deleted:
        services.delete_object(tenant, user=admin_user)

    tenant_type = ContentType.objects.get_for_model(Tenant)
    for event in (*created, *updated, *deleted):
        assert event.content_type == tenant_type
        assert event.object_id == str(tenant.pk)
        assert event.actor == admin_user
    assert created[0].changes["slug"] == [None, "initech"]
    assert updated[0].changes == {"description": ["", "TPS"], "members": [[], [member.pk]]}
    assert deleted[0].action == AuditEvent.Action.DELETE


def test_refused_delete_writes_nothing(admin_user, credential, tenants):
    # The tenant still owns a credential (PROTECT): the delete fails and so must its audit.
    before = AuditEvent.objects.count()

    with pytest.raises(ValidationError):
        services.delete_object(tenants[0], user=admin_user)

    assert Tenant.objects.filter(pk=tenants[0].pk).exists()
    assert AuditEvent.objects.count() == before


def test_request_context_lands_in_the_event(admin_user, tenants):
    context = requestcontext.bound(request_id="ctx-req-0001", source="cli:ops@host", via="cli")
    with context, one_new_event() as events:
        services.create_tenant(user=admin_user, name="Umbrella", slug="umbrella")

    event = events[0]
    assert (event.request_id, event.source, event.via) == ("ctx-req-0001", "cli:ops@host", "cli")


def test_lazily_loaded_objects_are_recorded_as_what_they_wrap(admin_user, tenants):
    # request.user is a SimpleLazyObject; log-in and log-out events are about it.
    lazy = SimpleLazyObject(lambda: tenants[1])

    event = audit.record(user=admin_user, action="action", verb="touch", obj=lazy)

    assert event.content_type == ContentType.objects.get_for_model(Tenant)
    assert event.object_id == str(tenants[1].pk)
    assert event.tenant_id == tenants[1].pk


# Writes through the API -----------------------------------------------------------------------


def test_api_write_records_request_id_source_and_token(api, admin_user, tenants):
    client = api.as_user(admin_user)
    token = ApiToken.objects.filter(user=admin_user).latest("id")

    with one_new_event() as events:
        response = client.post(
            CREDENTIALS,
            {"tenant": "acme", "name": "redfish", "username": "root", "secret": "api-secret"},
            format="json",
            HTTP_X_REQUEST_ID="req-audit-12345",
            REMOTE_ADDR="192.0.2.44",
        )

    assert response.status_code == 201, response.json()
    assert response["X-Request-ID"] == "req-audit-12345"
    event = events[0]
    assert event.action == AuditEvent.Action.CREATE
    assert event.object_id == str(response.json()["id"])
    assert event.request_id == "req-audit-12345"
    assert event.source == "192.0.2.44"
    assert event.via == "api"
    assert event.token_id == token.pk
    assert event.actor == admin_user


def test_token_filter_tells_nothing_of_another_users_tokens(api, admin_user, operator):
    """Filtering by another user's token id answers as for a token that does not exist."""
    api.as_user(admin_user)
    foreign = ApiToken.objects.filter(user=admin_user).latest("id")
    client = api.as_user(operator)
    missing = ApiToken.objects.order_by("-id").first().pk + 1000
    answers = [client.get("/api/audit/", {"token": pk}) for pk in (foreign.pk, missing)]
    assert [a.status_code for a in answers] == [200, 200]
    assert [a.json()["results"] for a in answers] == [[], []]
    assert client.get("/api/audit/", {"token": "x"}).status_code == 400


def test_api_update_and_delete_are_audited(api, admin_user, credential):
    client = api.as_user(admin_user)
    url = f"{CREDENTIALS}{credential.pk}/"

    with one_new_event() as updated:
        response = client.patch(
            url, {"username": "operator"}, format="json", HTTP_X_REQUEST_ID="req-patch-0001"
        )
    assert response.status_code == 200, response.json()
    with one_new_event() as deleted:
        response = client.delete(url, HTTP_X_REQUEST_ID="req-delete-01")
    assert response.status_code == 204

    assert updated[0].changes == {"username": ["ADMIN", "operator"]}
    assert updated[0].request_id == "req-patch-0001"
    assert deleted[0].action == AuditEvent.Action.DELETE
    assert deleted[0].request_id == "req-delete-01"
    assert deleted[0].object_id == str(credential.pk)


def test_api_noop_put_writes_nothing(api, admin_user, credential):
    client = api.as_user(admin_user)
    body = {
        "tenant": "acme",
        "name": "bmc",
        "kind": "password",
        "username": "ADMIN",
        "description": "",
    }
    before = AuditEvent.objects.count()

    response = client.put(f"{CREDENTIALS}{credential.pk}/", body, format="json")

    assert response.status_code == 200, response.json()
    assert AuditEvent.objects.count() == before


def test_malformed_request_id_is_replaced(api, admin_user):
    client = api.as_user(admin_user)

    with one_new_event() as events:
        response = client.post(
            "/api/tenants/",
            {"name": "Hooli", "slug": "hooli"},
            format="json",
            HTTP_X_REQUEST_ID="bad id\nwith newline",
        )

    assert response.status_code == 201, response.json()
    request_id = response["X-Request-ID"]
    assert request_id != "bad id\nwith newline"
    assert len(request_id) >= 8
    assert events[0].request_id == request_id


def test_session_write_has_no_token(api, admin_user):
    api.force_authenticate(user=None)
    api.force_login(admin_user)

    with one_new_event() as events:
        response = api.post(
            "/api/tenants/", {"name": "Vehement", "slug": "vehement"}, format="json"
        )

    assert response.status_code == 201, response.json()
    assert events[0].token_id is None
    assert events[0].via == "api"


# Immutability ---------------------------------------------------------------------------------


@pytest.fixture
def event(credential):
    return AuditEvent.objects.filter(object_id=str(credential.pk)).latest("id")


def _refused(block):
    # atomic() puts a savepoint around the failing statement so the test's connection survives.
    with pytest.raises(DatabaseError, match="cannot be changed or deleted"), transaction.atomic():
        block()


def _sql(statement, params=()):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def test_trigger_refuses_raw_update(event):
    _refused(
        lambda: _sql("UPDATE dcportal_auditevent SET actor_name = 'x' WHERE id = %s", [event.pk])
    )

    event.refresh_from_db()
    assert event.actor_name == "root"


def test_trigger_refuses_raw_delete(event):
    _refused(lambda: _sql("DELETE FROM dcportal_auditevent WHERE id = %s", [event.pk]))

    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_trigger_refuses_orm_save(event):
    event.actor_name = "mallory"

    _refused(event.save)

    assert AuditEvent.objects.get(pk=event.pk).actor_name == "root"


def test_trigger_refuses_orm_queryset_update(event):
    _refused(lambda: AuditEvent.objects.filter(pk=event.pk).update(changes={}))

    assert AuditEvent.objects.get(pk=event.pk).changes != {}


def test_trigger_refuses_orm_delete(event):
    _refused(event.delete)
    _refused(lambda: AuditEvent.objects.all().delete())

    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_purge_setting_allows_delete_in_its_own_transaction(event):
    with transaction.atomic():
        _sql("SET LOCAL dcportal.audit_purge = 'on'")
        AuditEvent.objects.filter(pk=event.pk).delete()

    assert not AuditEvent.objects.filter(pk=event.pk).exists()


def test_purge_setting_does_not_allow_update(event):
    def update():
        _sql("SET LOCAL dcportal.audit_purge = 'on'")
        AuditEvent.objects.filter(pk=event.pk).update(actor_name="x")

    _refused(update)


# Reading the trail ----------------------------------------------------------------------------


def _ids(response):
    assert response.status_code == 200, response.json()
    return [row["id"] for row in response.json()["results"]]


def test_audit_api_filters(api, admin_user, make_user, credential, tenants):
    other = make_user("other-admin", roles=["admin"])
    services.update_object(credential, user=admin_user, username="u1")
    mark = timezone.now()
    services.update_object(credential, user=other, username="u2")
    client = api.as_user(admin_user)
    cred_events = AuditEvent.objects.filter(
        content_type=credential_type(), object_id=str(credential.pk)
    )

    by_actor = _ids(client.get(AUDIT, {"actor": "other-admin"}))
    assert by_actor == [cred_events.get(actor=other).pk]

    updates = _ids(client.get(AUDIT, {"action": "update", "object_id": str(credential.pk)}))
    assert sorted(updates) == sorted(
        cred_events.filter(action="update").values_list("pk", flat=True)
    )

    by_type = _ids(client.get(AUDIT, {"object_type": "dcportal.credential"}))
    assert sorted(by_type) == sorted(cred_events.values_list("pk", flat=True))

    since = _ids(client.get(AUDIT, {"since": mark.isoformat()}))
    assert sorted(since) == sorted(
        AuditEvent.objects.filter(time__gte=mark).values_list("pk", flat=True)
    )
    assert cred_events.get(actor=other).pk in since
    assert cred_events.get(action="create").pk not in since


def test_audit_api_returns_the_event_shape(api, admin_user, credential):
    client = api.as_user(admin_user)
    event = AuditEvent.objects.get(content_type=credential_type(), object_id=str(credential.pk))

    body = client.get(f"{AUDIT}{event.pk}/").json()

    assert body["object_type"] == "dcportal.credential"
    assert body["object_id"] == str(credential.pk)
    assert body["action"] == "create"
    assert body["actor_name"] == "root"
    assert body["changes"]["secret"] == [None, REDACTED]


def test_audit_api_reads_any_utc_offset(api, admin_user, credential):
    client = api.as_user(admin_user)
    # The same instant with an offset PostgreSQL itself refuses (it stops at ±15:59).
    mark = timezone.now() - timedelta(minutes=1)
    far = mark.astimezone(timezone.get_fixed_timezone(-(19 * 60 + 43))).isoformat()
    assert sorted(_ids(client.get(AUDIT, {"since": far}))) == sorted(
        AuditEvent.objects.filter(time__gte=mark).values_list("pk", flat=True)
    )
    assert _ids(client.get(AUDIT, {"until": far})) == sorted(
        AuditEvent.objects.filter(time__lt=mark).values_list("pk", flat=True)
    )
    # An instant before year 1 in UTC: a field error.
    response = client.get(AUDIT, {"since": "0001-01-01T00:00:00+05:00"})
    assert response.status_code == 400
    assert "since" in response.json()["error"]["fields"]


def test_audit_api_unknown_filter_is_400(api, admin_user):
    response = api.as_user(admin_user).get(AUDIT, {"actr": "root"})

    assert response.status_code == 400
    assert "actr" in response.json()["error"]["fields"]


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_audit_api_has_no_write_methods(api, admin_user, credential, method):
    client = api.as_user(admin_user)
    event = AuditEvent.objects.filter(object_id=str(credential.pk)).latest("id")
    url = AUDIT if method == "post" else f"{AUDIT}{event.pk}/"

    response = getattr(client, method)(url, {"actor_name": "x"}, format="json")

    assert response.status_code == 405
    assert AuditEvent.objects.get(pk=event.pk).actor_name == "root"


def test_read_only_user_sees_only_their_tenants_audit(api, admin_user, make_user, tenants):
    mine = services.create_credential(user=admin_user, tenant=tenants[0], name="mine", secret="x")
    theirs = services.create_credential(
        user=admin_user, tenant=tenants[1], name="theirs", secret="y"
    )
    viewer = make_user("viewer", roles=["read-only"], tenants=[tenants[0]])
    client = api.as_user(viewer)
    theirs_event = AuditEvent.objects.get(content_type=credential_type(), object_id=str(theirs.pk))

    listed = client.get(AUDIT, {"object_type": "dcportal.credential"}).json()["results"]

    assert {row["object_id"] for row in listed} == {str(mine.pk)}
    assert client.get(f"{AUDIT}{theirs_event.pk}/").status_code == 404
    assert client.get(AUDIT, {"object_id": str(theirs.pk)}).json()["results"] == []


def test_user_without_audit_permission_sees_nothing(api, admin_user, make_user, tenants):
    services.create_credential(user=admin_user, tenant=tenants[0], name="c", secret="x")
    nobody = make_user("nobody", tenants=[tenants[0]])

    response = api.as_user(nobody).get(AUDIT)

    assert response.status_code == 403


# Django admin ---------------------------------------------------------------------------------


def test_admin_change_form_is_audited(client, admin_user, credential, tenants):
    client.force_login(admin_user)
    url = f"/admin/dcportal/credential/{credential.pk}/change/"

    with one_new_event() as events:
        response = client.post(
            url,
            {
                "tenant": tenants[0].pk,
                "name": "bmc",
                "kind": "password",
                "username": "changed",
                "secret": "",
                "description": "via admin",
                "_save": "Save",
            },
            HTTP_X_REQUEST_ID="req-admin-0001",
        )

    assert response.status_code == 302, response.content.decode()[:2000]
    event = events[0]
    assert event.via == "admin"
    assert event.actor == admin_user
    assert event.action == AuditEvent.Action.UPDATE
    assert event.request_id == "req-admin-0001"
    assert event.changes == {"username": ["ADMIN", "changed"], "description": ["", "via admin"]}
    # An empty password box keeps the stored secret.
    credential.refresh_from_db()
    assert credential.secret.reveal() == "s3cret-one"


def test_admin_add_and_delete_are_audited(client, admin_user, tenants):
    client.force_login(admin_user)

    with one_new_event() as created:
        response = client.post(
            "/admin/dcportal/credential/add/",
            {
                "tenant": tenants[1].pk,
                "name": "from-admin",
                "kind": "token",
                "username": "",
                "secret": "admin-made",
                "description": "",
                "_save": "Save",
            },
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    cred = Credential.objects.get(name="from-admin")
    with one_new_event() as deleted:
        response = client.post(f"/admin/dcportal/credential/{cred.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302

    assert created[0].action == AuditEvent.Action.CREATE
    assert created[0].changes["secret"] == [None, REDACTED]
    assert created[0].via == "admin"
    assert deleted[0].action == AuditEvent.Action.DELETE
    assert deleted[0].object_id == str(cred.pk)


def test_admin_add_without_secret_is_refused(client, admin_user, tenants):
    client.force_login(admin_user)
    before = AuditEvent.objects.count()

    response = client.post(
        "/admin/dcportal/credential/add/",
        {
            "tenant": tenants[1].pk,
            "name": "no-secret",
            "kind": "token",
            "username": "",
            "secret": "",
            "description": "",
            "_save": "Save",
        },
    )

    assert response.status_code == 200
    assert "secret" in response.context["adminform"].form.errors
    assert not Credential.objects.filter(name="no-secret").exists()
    assert AuditEvent.objects.count() == before


def test_audit_events_are_read_only_in_admin(client, admin_user, event):
    client.force_login(admin_user)

    response = client.post(f"/admin/dcportal/auditevent/{event.pk}/delete/", {"post": "yes"})

    assert response.status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_old_events_stay_filterable_by_until(api, admin_user, credential):
    client = api.as_user(admin_user)
    later = timezone.now() + timedelta(minutes=1)

    rows = _ids(client.get(AUDIT, {"until": later.isoformat(), "object_id": str(credential.pk)}))

    assert sorted(rows) == sorted(
        AuditEvent.objects.filter(object_id=str(credential.pk)).values_list("pk", flat=True)
    )

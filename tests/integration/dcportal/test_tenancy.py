"""Tenant scope through restrict(): lists, details and writes in the API, jobs and the audit trail,
and the one shape of API errors."""

import base64

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied

from dcportal import rbac, selectors, services
from dcportal.models import ApiToken, AuditEvent, Credential, Job

pytestmark = pytest.mark.django_db


@pytest.fixture
def creds(admin_user, tenants):
    acme, globex = tenants
    make = services.create_credential
    return {
        "acme-bmc": make(user=admin_user, tenant=acme, name="acme-bmc", secret="a1"),
        "acme-xen": make(user=admin_user, tenant=acme, name="acme-xen", secret="a2"),
        "globex-bmc": make(user=admin_user, tenant=globex, name="globex-bmc", secret="g1"),
    }


def names(response):
    assert response.status_code == 200, response.content
    return sorted(item["name"] for item in response.json()["results"])


def assert_error(response, status, code=None):
    """The one error shape: {"error": {status, code, message[, fields]}, "request_id"}."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "request_id"}
    assert set(body["error"]) - {"fields"} == {"status", "code", "message"}
    assert body["error"]["status"] == status
    assert body["error"]["message"]
    assert body["request_id"] == response["X-Request-ID"]
    if code:
        assert body["error"]["code"] == code
    return body["error"]


# Lists and details ----------------------------------------------------------------------------


def test_a_member_sees_only_their_tenants_credentials(api, operator, creds):
    assert names(api.as_user(operator).get("/api/credentials/")) == ["acme-bmc", "acme-xen"]


def test_admin_sees_every_tenant(api, admin_user, creds):
    assert names(api.as_user(admin_user).get("/api/credentials/")) == sorted(creds)


def test_no_tenant_no_rows_even_with_a_role(api, make_user, creds):
    loner = make_user("loner", roles=["operator"])
    assert names(api.as_user(loner).get("/api/credentials/")) == []


def test_restrict_is_the_same_gate_outside_the_api(operator, viewer, make_user, creds):
    visible = rbac.restrict(Credential.objects.all(), operator, "change")
    assert sorted(visible.values_list("name", flat=True)) == ["acme-bmc", "acme-xen"]
    # read-only may view in its tenant, and change nothing anywhere.
    assert rbac.restrict(Credential.objects.all(), viewer, "view").count() == 2
    assert not rbac.restrict(Credential.objects.all(), viewer, "change").exists()
    assert not rbac.restrict(Credential.objects.all(), make_user("x"), "view").exists()


@pytest.mark.parametrize("method", ["get", "patch", "put", "delete"])
def test_another_tenants_object_is_not_found(api, operator, creds, method):
    target = creds["globex-bmc"]
    client = api.as_user(operator)
    body = (
        {}
        if method == "get"
        else {"data": {"tenant": "acme", "name": "stolen", "secret": "x"}, "format": "json"}
    )
    response = getattr(client, method)(f"/api/credentials/{target.pk}/", **body)
    assert_error(response, 404, "not_found")
    # Same answer as for an id that does not exist at all: nothing to learn from it.
    missing = getattr(client, method)("/api/credentials/999999/", **body)
    assert missing.json()["error"]["message"] == response.json()["error"]["message"]
    target.refresh_from_db()
    assert (target.name, target.tenant.slug) == ("globex-bmc", "globex")


def test_tenants_list_is_scoped_too(api, operator, admin_user, tenants):
    assert names(api.as_user(operator).get("/api/tenants/")) == ["Acme"]
    assert names(api.as_user(admin_user).get("/api/tenants/")) == ["Acme", "Globex"]


def test_membership_through_a_group(api, make_user, tenants, creds):
    group = Group.objects.create(name="globex-ops")
    tenants[1].groups.add(group)
    user = make_user("grouped", roles=["read-only"])
    user.groups.add(group)
    assert names(api.as_user(user).get("/api/credentials/")) == ["globex-bmc"]
    assert rbac.tenant_ids(type(user).objects.get(pk=user.pk)) == {tenants[1].pk}


# Writes ---------------------------------------------------------------------------------------


def test_read_only_may_not_write(api, viewer, creds):
    client = api.as_user(viewer)
    body = {"tenant": "acme", "name": "new", "secret": "x"}
    assert_error(client.post("/api/credentials/", body, format="json"), 403, "permission_denied")
    own = creds["acme-bmc"]
    response = client.patch(f"/api/credentials/{own.pk}/", {"name": "renamed"}, format="json")
    assert_error(response, 403)
    assert_error(client.delete(f"/api/credentials/{own.pk}/"), 403)
    assert Credential.objects.filter(name="acme-bmc").exists()
    assert not Credential.objects.filter(name__in=["new", "renamed"]).exists()


def test_operator_writes_in_their_tenant(api, operator, creds):
    client = api.as_user(operator)
    body = {"tenant": "acme", "name": "acme-ipmi", "username": "admin", "secret": "pw"}
    response = client.post("/api/credentials/", body, format="json")
    assert response.status_code == 201
    assert "secret" not in response.json()
    assert response.json()["has_secret"] is True
    created = Credential.objects.get(name="acme-ipmi")
    assert created.tenant.slug == "acme"
    response = client.delete(f"/api/credentials/{created.pk}/")
    assert response.status_code == 204
    assert not Credential.objects.filter(pk=created.pk).exists()


def test_operator_cannot_create_in_a_tenant_they_are_not_in(api, operator, tenants, creds):
    client = api.as_user(operator)
    body = {"tenant": "globex", "name": "planted", "secret": "x"}
    response = client.post("/api/credentials/", body, format="json")
    # The API refuses a tenant outside the user's scope exactly like one that does not exist
    # (400 on the field), so a 403 would not tell which tenant slugs exist.
    error = assert_error(response, 400, "invalid")
    assert "tenant" in error["fields"]
    unknown = client.post("/api/credentials/", {**body, "tenant": "initech"}, format="json")
    assert unknown.status_code == 400
    assert set(unknown.json()["error"]["fields"]) == {"tenant"}
    assert not Credential.objects.filter(name="planted").exists()
    # Below the API, the service itself refuses.
    with pytest.raises(PermissionDenied):
        services.create_credential(user=operator, tenant=tenants[1], name="planted", secret="x")
    assert not Credential.objects.filter(name="planted").exists()


def test_operator_cannot_move_an_object_into_another_tenant(api, operator, tenants, creds):
    own = creds["acme-bmc"]
    response = api.as_user(operator).patch(
        f"/api/credentials/{own.pk}/", {"tenant": "globex"}, format="json"
    )
    assert response.status_code == 400
    with pytest.raises(PermissionDenied):
        services.update_credential(own, user=operator, tenant=tenants[1])
    own.refresh_from_db()
    assert own.tenant == tenants[0]


# Jobs and audit events -----------------------------------------------------------------------


@pytest.fixture
def jobs(tenants, operator, make_user):
    acme, globex = tenants
    stranger = make_user("stranger", roles=["operator"], tenants=[globex])
    return {
        "acme": Job.objects.create(kind="test.noop", queue="default", tenant=acme, user=stranger),
        "globex": Job.objects.create(
            kind="test.noop", queue="default", tenant=globex, user=stranger
        ),
        "globex-by-op": Job.objects.create(
            kind="test.noop", queue="default", tenant=globex, user=operator
        ),
        "untenanted": Job.objects.create(kind="test.noop", queue="default"),
    }


def test_jobs_are_scoped_to_tenants_plus_own(jobs, operator, admin_user, make_user):
    def visible(user):
        return {name for name, job in jobs.items() if selectors.jobs_for(user).filter(pk=job.pk)}

    # Operator: its tenant's jobs, and the one it started elsewhere.
    assert visible(operator) == {"acme", "globex-by-op"}
    assert visible(admin_user) == set(jobs)
    # Without view_job only the user's own jobs.
    nobody = make_user("nobody", tenants=[operator.tenants.first()])
    assert visible(nobody) == set()


def test_job_api_follows_the_selector(api, jobs, operator):
    client = api.as_user(operator)
    listed = {item["id"] for item in client.get("/api/jobs/").json()["results"]}
    assert listed == {jobs["acme"].pk, jobs["globex-by-op"].pk}
    assert_error(client.get(f"/api/jobs/{jobs['globex'].pk}/"), 404)
    assert_error(client.get(f"/api/jobs/{jobs['globex'].pk}/log/"), 404)
    assert_error(client.post(f"/api/jobs/{jobs['globex'].pk}/cancel/"), 404)
    assert not Job.objects.get(pk=jobs["globex"].pk).cancel_requested


def test_audit_events_are_scoped(api, creds, operator, viewer, make_user, admin_user):
    ids = {name: str(obj.pk) for name, obj in creds.items()}

    def seen(user):
        events = selectors.audit_events_for(user).filter(content_type__model="credential")
        return {name for name, pk in ids.items() if events.filter(object_id=pk).exists()}

    assert seen(operator) == {"acme-bmc", "acme-xen"}
    assert seen(viewer) == {"acme-bmc", "acme-xen"}
    assert seen(admin_user) == set(ids)
    assert not selectors.audit_events_for(make_user("nobody")).exists()

    # Token events stay with those who may see tokens (read-only may not).
    services.create_token(user=admin_user, name="ci")
    token_events = AuditEvent.objects.filter(content_type__model="apitoken")
    assert token_events.exists()
    assert not selectors.audit_events_for(viewer).filter(pk__in=token_events).exists()
    assert selectors.audit_events_for(admin_user).filter(pk__in=token_events).exists()

    client = api.as_user(operator)
    listed = {
        item["object_id"]
        for item in client.get("/api/audit/?object_type=dcportal.credential").json()["results"]
    }
    assert listed == {ids["acme-bmc"], ids["acme-xen"]}
    foreign = AuditEvent.objects.get(content_type__model="credential", object_id=ids["globex-bmc"])
    assert_error(client.get(f"/api/audit/{foreign.pk}/"), 404)


def test_audit_api_needs_view_auditevent(api, make_user, tenants):
    assert_error(api.as_user(make_user("nobody", tenants=[tenants[0]])).get("/api/audit/"), 403)


# Error shape, validation, filters, pagination ---------------------------------------------------


def test_unauthenticated_error_shape(client):
    error = assert_error(client.get("/api/credentials/"), 401, "not_authenticated")
    assert "fields" not in error


def test_method_not_allowed_has_the_same_shape(api, operator):
    assert_error(api.as_user(operator).post("/api/jobs/", {}, format="json"), 405)


def test_request_id_is_the_callers_when_well_formed(api, operator):
    response = api.as_user(operator).get("/api/credentials/999/", HTTP_X_REQUEST_ID="trace-1234")
    assert response.json()["request_id"] == "trace-1234"


def test_validation_errors_name_the_fields(api, operator):
    client = api.as_user(operator)
    response = client.post(
        "/api/credentials/", {"tenant": "acme", "kind": "carrier-pigeon"}, format="json"
    )
    error = assert_error(response, 400, "invalid")
    assert {"name", "kind"} <= set(error["fields"])
    assert all(isinstance(v, list) and v for v in error["fields"].values())
    response = client.post("/api/credentials/", {"tenant": "acme", "name": "n"}, format="json")
    assert set(assert_error(response, 400)["fields"]) == {"secret"}
    assert not Credential.objects.exists()


def test_duplicate_name_is_a_400_not_a_500(api, operator, creds):
    body = {"tenant": "acme", "name": "acme-bmc", "secret": "x"}
    assert_error(api.as_user(operator).post("/api/credentials/", body, format="json"), 400)
    assert Credential.objects.filter(name="acme-bmc").count() == 1


def test_unknown_filters_are_refused(api, operator, creds):
    client = api.as_user(operator)
    error = assert_error(client.get("/api/credentials/?bogus=1"), 400, "invalid")
    assert set(error["fields"]) == {"bogus"}
    assert_error(client.get("/api/credentials/?tenant=acme&nmae=x"), 400)
    assert names(client.get("/api/credentials/?tenant=acme&name=xen")) == ["acme-xen"]
    # A filter never widens the scope.
    assert names(client.get("/api/credentials/?tenant=globex")) == []


def test_lists_use_cursor_pagination(api, admin_user, creds):
    client = api.as_user(admin_user)
    first = client.get("/api/credentials/?page_size=2").json()
    assert set(first) == {"next", "previous", "results"}
    assert "count" not in first
    assert len(first["results"]) == 2 and first["previous"] is None
    assert "cursor=" in first["next"]
    second = client.get(first["next"]).json()
    assert second["next"] is None and second["previous"]
    seen = [item["id"] for item in first["results"] + second["results"]]
    assert sorted(seen) == sorted(c.pk for c in creds.values())


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64!",
        "é",
        base64.b64encode(b"p=abc").decode(),  # the position of an id ordering is a number
        base64.b64encode(b"p=1%002").decode(),  # NUL: PostgreSQL refuses it in any text
        base64.b64encode(b"o=x").decode(),
    ],
)
def test_a_cursor_that_is_not_one_of_ours_is_a_400(api, admin_user, creds, cursor):
    client = api.as_user(admin_user)
    error = assert_error(client.get("/api/credentials/", {"cursor": cursor}), 400, "invalid")
    assert set(error["fields"]) == {"cursor"}
    # Ordered by a text field, a NUL in the position is refused the same way.
    nul = base64.b64encode(b"p=a%00b").decode()
    response = client.get("/api/tenants/", {"cursor": nul, "ordering": "name"})
    assert set(assert_error(response, 400, "invalid")["fields"]) == {"cursor"}


def test_a_cursor_position_beyond_any_id_pages_nothing(api, admin_user, creds):
    cursor = base64.b64encode(f"p={2**70}".encode()).decode()
    response = api.as_user(admin_user).get("/api/credentials/", {"cursor": cursor})
    assert names(response) == sorted(creds)
    cursor = base64.b64encode(f"p={2**70}&r=1".encode()).decode()
    assert names(api.as_user(admin_user).get("/api/credentials/", {"cursor": cursor})) == []


def test_too_many_form_fields_is_a_400_in_the_error_shape(api, admin_user, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    body = "&".join(f"servers={n}" for n in range(11))
    response = api.as_user(admin_user).post(
        "/api/deploy/nodeset/", body, content_type="application/x-www-form-urlencoded"
    )
    assert_error(response, 400, "bad_request")


def test_token_list_is_scoped_to_the_owner(api, operator, viewer, admin_user):
    services.create_token(user=viewer, name="viewer-ci")
    listed = api.as_user(operator).get("/api/tokens/").json()["results"]
    assert {item["user"] for item in listed} == {"op"}
    everyone = api.as_user(admin_user).get("/api/tokens/").json()["results"]
    assert {"op", "viewer", "root"} <= {item["user"] for item in everyone}
    assert ApiToken.objects.count() == len(everyone)

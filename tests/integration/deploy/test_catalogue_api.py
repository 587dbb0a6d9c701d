"""The catalogue API: CRUD through the services, tenant scope (another tenant's object is a 404,
shared ones are read-only but for admins), 400s with field errors and template line numbers,
the preview action, and list endpoints whose query count does not grow with rows."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from dcportal import services
from dcportal.models import ApiToken, AuditEvent
from deploy import defaults
from deploy.models import OperatingSystem, Parameter, Profile, Template

from .catalogue_helpers import make_os, make_profile, make_server, make_template

pytestmark = pytest.mark.django_db

OS_BODY = {
    "name": "rocky9",
    "family": "redhat",
    "version": "9.4",
    "kernel": "rocky9/vmlinuz",
    "initrd": "rocky9/initrd.img",
    "install_url": "http://mirror.example.net/rocky/9/",
}


def client_for(user):
    """A client of its own per user (the shared `api` fixture holds one user at a time)."""
    client = APIClient()
    _, key = services.create_token(user=user, name=f"t{ApiToken.objects.count()}")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def fields(response):
    return response.json()["error"]["fields"]


@pytest.fixture
def globex_operator(make_user, tenants):
    return make_user("gop", roles=["operator"], tenants=[tenants[1]])


@pytest.fixture
def shared_os(admin_user):
    response = client_for(admin_user).post("/api/deploy/os/", OS_BODY, format="json")
    assert response.status_code == 201, response.json()
    return OperatingSystem.objects.get(pk=response.json()["id"])


def test_admin_creates_shared_os_and_it_is_audited(shared_os, admin_user):
    assert shared_os.tenant is None
    event = AuditEvent.objects.get(
        object_id=str(shared_os.pk), action="create", content_type__model="operatingsystem"
    )
    assert event.actor == admin_user


def test_shared_objects_are_seen_by_all_but_changed_only_by_admins(shared_os, operator, viewer):
    client = client_for(operator)
    listed = client.get("/api/deploy/os/").json()["results"]
    assert [o["name"] for o in listed] == ["rocky9"] and listed[0]["tenant"] is None
    assert client.patch(f"/api/deploy/os/{shared_os.pk}/", {"version": "9.5"}).status_code == 403
    assert client.delete(f"/api/deploy/os/{shared_os.pk}/").status_code == 403
    body = {**OS_BODY, "name": "mine"}
    assert client.post("/api/deploy/os/", body, format="json").status_code == 403  # shared
    assert client_for(viewer).get(f"/api/deploy/os/{shared_os.pk}/").status_code == 200
    shared_os.refresh_from_db()
    assert shared_os.version == "9.4"


def test_tenant_objects_are_invisible_to_other_tenants(operator, globex_operator, tenants):
    client = client_for(operator)
    response = client.post("/api/deploy/os/", {**OS_BODY, "tenant": "acme"}, format="json")
    assert response.status_code == 201, response.json()
    pk = response.json()["id"]
    assert client.patch(f"/api/deploy/os/{pk}/", {"version": "9.5"}).status_code == 200
    other = client_for(globex_operator)
    assert other.get(f"/api/deploy/os/{pk}/").status_code == 404
    assert other.patch(f"/api/deploy/os/{pk}/", {"version": "1"}).status_code == 404
    assert other.delete(f"/api/deploy/os/{pk}/").status_code == 404
    assert other.get("/api/deploy/os/").json()["results"] == []
    # Nor may an operator place an object in a tenant that is not theirs.
    response = client.post(
        "/api/deploy/os/", {**OS_BODY, "name": "x", "tenant": "globex"}, format="json"
    )
    assert response.status_code == 400 and "tenant" in fields(response)


def test_viewer_cannot_write(viewer):
    client = client_for(viewer)
    response = client.post("/api/deploy/parameters/", {"name": "a", "value": 1}, format="json")
    assert response.status_code == 403


def test_field_errors(admin_user):
    client = client_for(admin_user)
    bad = {**OS_BODY, "name": "bad name!", "kernel": "../../etc/shadow", "family": "beos"}
    response = client.post("/api/deploy/os/", bad, format="json")
    assert response.status_code == 400
    assert {"family"} <= set(fields(response))
    response = client.post("/api/deploy/os/", {**bad, "family": "redhat"}, format="json")
    assert response.status_code == 400
    assert {"name", "kernel"} <= set(fields(response))
    response = client.post("/api/deploy/parameters/", {"name": "9lives", "value": 1}, format="json")
    assert response.status_code == 400 and "name" in fields(response)
    assert (
        client.post(
            "/api/deploy/parameters/", {"name": "tz", "value": "UTC"}, format="json"
        ).status_code
        == 201
    )
    response = client.post("/api/deploy/parameters/", {"name": "tz", "value": "X"}, format="json")
    assert response.status_code == 400  # one global "tz"
    assert client.get("/api/deploy/templates/?bogus=1").status_code == 400


def test_a_parameter_value_jsonb_cannot_store_is_a_400(admin_user):
    client = client_for(admin_user)
    for value in ("a\u0000", {"k": ["\u0000"]}, {"k\u0000": 1}):
        response = client.post("/api/deploy/parameters/", {"name": "x", "value": value}, "json")
        assert response.status_code == 400 and "value" in fields(response)
    assert not Parameter.objects.filter(name="x").exists()


def test_template_syntax_error_is_a_400_with_the_line(admin_user):
    client = client_for(admin_user)
    body = {"name": "ks", "kind": "kickstart", "content": "text\nlang {{ params.lang }\nreboot\n"}
    response = client.post("/api/deploy/templates/", body, format="json")
    assert response.status_code == 400
    assert fields(response)["content"][0].startswith("Line 2:")
    assert not Template.objects.filter(name="ks").exists()
    body["content"] = "text\n{{ params.get('lang', 'C') }}\n"
    response = client.post("/api/deploy/templates/", body, format="json")
    assert response.status_code == 201
    pk = response.json()["id"]
    response = client.patch(f"/api/deploy/templates/{pk}/", {"content": "ok\nok\n{% if %}"})
    assert response.status_code == 400 and fields(response)["content"][0].startswith("Line 3:")


def test_builtin_templates_keep_their_name(admin_user):
    defaults.create_builtin_templates()
    pk = Template.objects.get(name="default-ipxe").pk
    client = client_for(admin_user)
    response = client.patch(f"/api/deploy/templates/{pk}/", {"name": "mine"}, format="json")
    assert response.status_code == 400 and "name" in fields(response)
    response = client.patch(f"/api/deploy/templates/{pk}/", {"content": "#!ipxe\nexit\n"})
    assert response.status_code == 200 and response.json()["builtin"] is True


def test_profile_references_are_checked(operator, globex_operator, tenants):
    ks = make_template("ks-acme", "kickstart", content="x", tenant=tenants[0])
    make_template("ks-globex", "kickstart", content="x", tenant=tenants[1])
    ipxe = make_template("my-ipxe", "ipxe", content="#!ipxe", tenant=tenants[0])
    make_os("acme-os", tenant=tenants[0])
    client = client_for(operator)
    body = {"name": "web", "os": "acme-os", "install_template": "ks-acme", "tenant": "acme"}
    for bad, field in (
        ({"install_template": "ks-globex"}, "install_template"),  # another tenant's
        ({"install_template": "my-ipxe"}, "install_template"),  # not an install kind
        ({"ipxe_template": "ks-acme"}, "ipxe_template"),
        ({"parameters": ["not", "an", "object"]}, "parameters"),
        ({"parameters": {"bad name": 1}}, "parameters"),
    ):
        response = client.post("/api/deploy/profiles/", {**body, **bad}, format="json")
        assert response.status_code == 400, bad
        assert field in fields(response), fields(response)
    response = client.post(
        "/api/deploy/profiles/", {**body, "ipxe_template": "my-ipxe"}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert response.json()["install_template"] == ks.name
    profile = Profile.objects.get(name="web")
    assert profile.ipxe_template == ipxe
    assert client_for(globex_operator).get(f"/api/deploy/profiles/{profile.pk}/").status_code == 404
    # A template in use is not deleted; the answer says by what.
    response = client.delete(f"/api/deploy/templates/{ks.pk}/")
    assert (
        response.status_code == 400
        and "web" in response.json()["error"]["fields"]["non_field_errors"][0]
    )


def test_preview(operator, globex_operator, tenants):
    make_template("snippet-hello", "snippet", content="hello {{ server.short_name }}")
    make_template("snippet-secret", "snippet", content="globex only", tenant=tenants[1])
    template = make_template(
        "greeting", "kickstart", content='{% include "snippet-hello" %}\n', tenant=tenants[0]
    )
    server = make_server(tenants[0], "node01")
    client = client_for(operator)
    url = f"/api/deploy/templates/{template.pk}/preview/"
    response = client.get(url, {"server": server.pk})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["content"] == "hello node01\n" and body["errors"] == []
    # pykickstart's verdict on a kickstart: "hello" is no kickstart command.
    assert body["validation"] and body["validation"][0]["level"] == "error"
    assert body["validation"][0]["line"] == 1

    response = client.post(
        url, {"server": server.pk, "content": "a\n{{ server.nope }}\n"}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert body["content"] is None
    assert body["errors"][0]["line"] == 2 and "nope" in body["errors"][0]["message"]
    assert body["error"]["fields"]["content"][0].startswith("Line 2:")

    # Another tenant's snippet is not there to include.
    response = client.post(
        url, {"server": server.pk, "content": "x\n{% include 'snippet-secret' %}"}, format="json"
    )
    assert response.status_code == 400 and body["errors"][0]["line"] == 2
    assert "snippet-secret" in response.json()["errors"][0]["message"]

    # Another tenant's server is refused like a missing one; its template is not found.
    globex_server = make_server(tenants[1], "gnode")
    response = client.get(url, {"server": globex_server.pk})
    assert response.status_code == 400 and "server" in fields(response)
    assert client_for(globex_operator).get(url, {"server": globex_server.pk}).status_code == 404
    assert client.get(url).status_code == 400  # no server given


def test_preview_of_a_valid_kickstart_has_no_findings(admin_user, tenants):
    defaults.create_builtin_templates()
    template = Template.objects.get(name="rhel9-kickstart")
    profile = make_profile("rocky", make_os(), template, parameters={"timezone": "UTC"})
    server = make_server(tenants[0], "node01", profile=profile)
    response = client_for(admin_user).post(
        f"/api/deploy/templates/{template.pk}/preview/", {"server": server.pk}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["validation"] == []
    assert "/boot/build/PREVIEW-TOKEN/done" in response.json()["content"]


def _populate(count, tenant):
    for _ in range(count):
        n = OperatingSystem.objects.count()
        os = make_os(f"os{n}", tenant=tenant)
        ks = make_template(f"ks{n}", "kickstart", content="x", tenant=tenant)
        boot = make_template(f"ipxe{n}", "ipxe", content="#!ipxe", tenant=tenant)
        make_profile(f"p{n}", os, ks, tenant=tenant, ipxe_template=boot)
        Parameter.objects.create(name=f"p{n}", value={"n": n}, tenant=tenant)


@pytest.mark.parametrize("kind", ["os", "templates", "profiles", "parameters"])
def test_list_query_count_does_not_grow_with_rows(kind, operator, tenants):
    client = client_for(operator)
    url = f"/api/deploy/{kind}/"

    def queries():
        client.get(url)
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        assert response.status_code == 200
        return len(captured), len(response.json()["results"])

    _populate(3, tenants[0])
    few, rows = queries()
    _populate(20, tenants[0])
    many, more_rows = queries()
    assert more_rows > rows
    assert many == few

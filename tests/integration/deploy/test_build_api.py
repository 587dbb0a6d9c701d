"""The build state machine in the API: deployment rows (read, profile/parameters), nodeset by
ids or node range, within permission and tenant scope; build tokens never come out."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dcportal.models import AuditEvent
from deploy import services
from deploy.models import ServerDeploy

from .build_helpers import deploy_row, make_profile, make_servers

pytestmark = pytest.mark.django_db


@pytest.fixture
def profile():
    return make_profile()


@pytest.fixture
def fleet(tenants, admin_user, profile):
    acme, globex = tenants
    mine = make_servers(acme, 3)
    theirs = make_servers(globex, 1, prefix="globex")
    services.nodeset(
        user=admin_user, servers=mine[:2] + theirs, next_boot="install", profile=profile
    )
    return mine, theirs


def fields(response):
    return response.json()["error"]["fields"]


def test_list_is_scoped_and_holds_no_token(api, operator, fleet):
    mine, _ = fleet
    client = api.as_user(operator)
    response = client.get("/api/deploy/builds/")
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [(r["hostname"], r["state"], r["next_boot"], r["profile"]) for r in rows] == [
        ("node01", "building", "install", "rocky9"),
        ("node02", "building", "install", "rocky9"),
    ]
    assert rows[0]["server"] == mine[0].pk and rows[0]["token_expires"]
    text = response.content.decode()
    assert "token_hash" not in text and "token_nonce" not in text and "dcb_" not in text
    for row in ServerDeploy.objects.all():
        assert row.token_nonce not in text and row.token_hash not in text

    assert client.get("/api/deploy/builds/?state=idle").json()["results"] == []
    assert client.get("/api/deploy/builds/?hostname=node02").json()["results"][0]["server"] == (
        mine[1].pk
    )
    assert client.get("/api/deploy/builds/?colour=red").status_code == 400


def test_detail_of_a_server_without_a_row(api, operator, fleet):
    mine, theirs = fleet
    client = api.as_user(operator)
    body = client.get(f"/api/deploy/builds/{mine[2].pk}/").json()
    assert (body["hostname"], body["next_boot"], body["state"], body["profile"]) == (
        "node03",
        "localboot",
        "idle",
        None,
    )
    assert client.get(f"/api/deploy/builds/{theirs[0].pk}/").status_code == 404
    assert client.get("/api/deploy/builds/999999/").status_code == 404


def test_update_profile_and_parameters(api, operator, viewer, fleet, profile, tenants):
    mine, theirs = fleet
    client = api.as_user(operator)
    url = f"/api/deploy/builds/{mine[2].pk}/"
    response = client.patch(url, {"profile": "rocky9", "parameters": {"tz": "UTC"}}, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["profile"], response.json()["parameters"]) == ("rocky9", {"tz": "UTC"})
    row = deploy_row(mine[2])
    assert (row.profile, row.parameters, row.next_boot) == (profile, {"tz": "UTC"}, "localboot")
    assert AuditEvent.objects.filter(action="create", object_repr="node03: localboot").exists()

    # Read-only fields are ignored, bad values are field errors.
    response = client.patch(url, {"next_boot": "install", "state": "deployed"}, format="json")
    assert response.status_code == 200 and deploy_row(mine[2]).next_boot == "localboot"
    response = client.patch(url, {"parameters": {"bad name": 1}}, format="json")
    assert response.status_code == 400 and "parameters" in fields(response)
    response = client.patch(url, {"parameters": [1]}, format="json")
    assert response.status_code == 400 and "parameters" in fields(response)
    make_profile("globex-only", tenant=tenants[1])
    response = client.patch(url, {"profile": "globex-only"}, format="json")
    assert response.status_code == 400 and "profile" in fields(response)

    assert client.patch(f"/api/deploy/builds/{theirs[0].pk}/", {}, format="json").status_code == 404
    reader = api.as_user(viewer)
    assert reader.patch(url, {"parameters": {}}, format="json").status_code == 403
    assert reader.get(url).status_code == 200


def test_nodeset(api, operator, fleet):
    mine, theirs = fleet
    client = api.as_user(operator)
    response = client.post(
        "/api/deploy/nodeset/", {"noderange": "node[01-03]", "next_boot": "rescue"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json() == {
        "next_boot": "rescue",
        "profile": None,
        "count": 3,
        "servers": ["node01", "node02", "node03"],
    }
    assert set(
        ServerDeploy.objects.filter(server__in=mine).values_list("next_boot", flat=True)
    ) == {"rescue"}
    response = client.post(
        "/api/deploy/nodeset/",
        {"servers": [mine[0].pk], "next_boot": "install", "profile": "rocky9"},
        format="json",
    )
    assert response.status_code == 200 and deploy_row(mine[0]).state == "building"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"noderange": "node01", "next_boot": "install"}, "profile"),
        ({"noderange": "node01", "next_boot": "reboot"}, "next_boot"),
        ({"noderange": "node09", "next_boot": "localboot"}, "noderange"),
        ({"next_boot": "localboot"}, "non_field_errors"),
        ({"noderange": "node01", "servers": [1], "next_boot": "localboot"}, "non_field_errors"),
        ({"noderange": "node01", "next_boot": "install", "profile": "nope"}, "profile"),
    ],
)
def test_nodeset_bad_input(api, operator, fleet, body, field):
    before = list(ServerDeploy.objects.values_list("server_id", "next_boot", "token_hash"))
    response = api.as_user(operator).post("/api/deploy/nodeset/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in str(response.json())
    assert list(ServerDeploy.objects.values_list("server_id", "next_boot", "token_hash")) == before


def test_nodeset_scope_and_permission(api, operator, viewer, fleet):
    mine, theirs = fleet
    response = api.as_user(operator).post(
        "/api/deploy/nodeset/",
        {"servers": [mine[0].pk, theirs[0].pk], "next_boot": "localboot"},
        format="json",
    )
    assert response.status_code == 400
    assert f"No server with id {theirs[0].pk}" in str(response.json())
    response = api.as_user(viewer).post(
        "/api/deploy/nodeset/", {"servers": [mine[0].pk], "next_boot": "localboot"}, format="json"
    )
    assert response.status_code == 403
    assert deploy_row(mine[0]).next_boot == "install"
    assert api.as_user(viewer, write=False).get("/api/deploy/builds/").status_code == 200


def test_list_query_count_does_not_grow_with_rows(api, admin_user, tenants, profile):
    client = api.as_user(admin_user)
    few = make_servers(tenants[0], 3, prefix="few")
    services.nodeset(user=admin_user, servers=few, next_boot="install", profile=profile)
    client.get("/api/deploy/builds/")
    with CaptureQueriesContext(connection) as small:
        assert client.get("/api/deploy/builds/").status_code == 200
    many = make_servers(tenants[0], 30, prefix="many")
    services.nodeset(user=admin_user, servers=many, next_boot="install", profile=profile)
    with CaptureQueriesContext(connection) as large:
        assert len(client.get("/api/deploy/builds/").json()["results"]) == 33
    assert len(large) == len(small)

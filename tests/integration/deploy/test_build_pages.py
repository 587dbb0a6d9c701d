"""Portal pages of the build state machine: the builds list (the portal's table: filters, sort,
export, refresh while building, cancel in bulk), a server's deployment page and its buttons, the
Deploy section of the server page, bulk nodeset/rinstall from the server list."""

import csv
import html
import io
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from dcportal.models import Job
from deploy import services
from deploy.models import ServerDeploy
from inventory import power_services

from .build_helpers import deploy_row, make_profile, make_servers, token_of

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
        user=admin_user, servers=[mine[0], theirs[0]], next_boot="install", profile=profile
    )
    services.nodeset(user=admin_user, servers=[mine[1]], next_boot="install", profile=profile)
    services.report_failed(token_of(mine[1]), message="disk on fire")
    return mine, theirs


def page(client, url, status=200):
    response = client.get(url)
    assert response.status_code == status, response.content[:500]
    return response.content.decode()


BUILDS = reverse("deploy:builds")


def listed(text):
    return re.findall(r'<a href="/deploy/servers/\d+/">([^<]+)</a>', text)


def test_builds_lists_building_and_failed_in_scope(client, operator, fleet):
    client.force_login(operator)
    text = page(client, BUILDS)
    assert listed(text) == ["node01", "node02"] and "disk on fire" in text
    assert "node03" not in text and "globex01" not in text
    assert 'aria-current="page">Builds' in text
    assert 'aria-current="page">Building or failed <small>2</small>' in text
    assert '<a href="?state=failed">Failed <small>1</small>' in text
    assert '<span class="badge badge-failed">failed</span>' in text
    deployed = page(client, BUILDS + "?state=deployed")
    assert listed(deployed) == [] and "No server is deployed" in deployed
    assert 'aria-current="page">Deployed <small>0</small>' in deployed
    assert "node03" not in page(client, BUILDS + "?state=all")


def test_builds_filters_sort_and_export(client, operator, fleet, profile, admin_user):
    mine, _ = fleet
    services.nodeset(user=admin_user, servers=[mine[2]], next_boot="rescue")
    client.force_login(operator)
    assert listed(page(client, BUILDS + "?state=all")) == ["node01", "node02", "node03"]
    assert listed(page(client, BUILDS + "?state=failed")) == ["node02"]
    assert listed(page(client, BUILDS + "?state=all&next_boot=rescue")) == ["node03"]
    assert listed(page(client, BUILDS + "?stage=waiting")) == ["node01"]
    assert listed(page(client, BUILDS + f"?state=all&profile={profile.name}")) == [
        "node01",
        "node02",
    ]
    assert listed(page(client, BUILDS + "?state=all&q=03")) == ["node03"]
    text = page(client, BUILDS + "?state=all&sort=-hostname")
    assert listed(text) == ["node03", "node02", "node01"]
    assert 'aria-sort="descending"' in text
    assert listed(page(client, BUILDS + "?sort=-state"))[0] == "node02"  # failed > building
    # The profile filter offers the profiles the user may see.
    assert f'<option value="{profile.name}">' in text
    assert "Unknown filter" in page(client, BUILDS + "?colour=red")
    nonsense = page(client, BUILDS + "?state=nonsense")
    assert "Select a valid choice" in nonsense and listed(nonsense) == []

    response = client.get(BUILDS, {"state": "all", "export": "csv"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:5] == ["Server", "Tenant", "Profile", "Next boot", "State"]
    assert [(row[0], row[4]) for row in rows[1:]] == [
        ("node01", "building"),
        ("node02", "failed"),
        ("node03", "idle"),
    ]


def test_builds_refresh_themselves_while_building(client, operator, admin_user, fleet):
    mine, _ = fleet
    client.force_login(operator)
    text = page(client, BUILDS)
    assert '<div id="builds-live" data-builds data-polling>' in text
    assert '<script src="/static/deploy/builds.js" defer>' in text
    assert client.get("/static/deploy/builds.js").status_code == 200
    assert "data-polling" not in page(client, BUILDS + "?state=failed")
    services.nodeset(user=admin_user, servers=[mine[0]], next_boot="localboot")
    assert "data-polling" not in page(client, BUILDS)


def test_cancel_builds_from_the_list(client, operator, viewer, fleet):
    mine, theirs = fleet
    client.force_login(operator)
    text = page(client, BUILDS)
    bulk = reverse("deploy:server-bulk")
    assert f'formaction="{bulk}" name="action" value="localboot"' in text
    # The rows post server ids, as the inventory's list does.
    assert f'name="ids" value="{mine[0].pk}"' in text
    # The inventory's confirmation page, with local boot chosen.
    ids = [mine[0].pk, mine[1].pk, theirs[0].pk]
    response = client.post(bulk, {"ids": ids, "action": "localboot", "next": BUILDS})
    text = response.content.decode()
    assert response.status_code == 200 and "Deploy 2 servers" in text
    assert '<option value="localboot" selected>' in text and "globex01" not in text
    response = client.post(
        bulk, {"ids": ids, "deploy_action": "localboot", "confirm": "1", "next": BUILDS}
    )
    assert response.status_code == 302 and response["Location"] == BUILDS + "?state=all"
    assert deploy_row(mine[0]).next_boot == "localboot"
    assert deploy_row(mine[1]).next_boot == "localboot"
    assert deploy_row(theirs[0]).next_boot == "install"

    client.force_login(viewer)
    text = page(client, BUILDS + "?state=all")
    assert bulk not in text and 'name="ids"' not in text


def test_builds_needs_the_permission(client, make_user, tenants, fleet):
    nobody = make_user("nobody", tenants=[tenants[0]])
    client.force_login(nobody)
    assert client.get(reverse("deploy:builds")).status_code == 403


@pytest.mark.parametrize("query", ["", "?state=all&sort=-state&profile=rocky9"])
def test_builds_query_count_does_not_grow_with_rows(query, client, admin_user, tenants, profile):
    client.force_login(admin_user)
    url = reverse("deploy:builds") + query
    few = make_servers(tenants[0], 3, prefix="few")
    services.nodeset(user=admin_user, servers=few, next_boot="install", profile=profile)
    client.get(url)
    with CaptureQueriesContext(connection) as small:
        page(client, url)
    many = make_servers(tenants[0], 30, prefix="many")
    services.nodeset(user=admin_user, servers=many, next_boot="install", profile=profile)
    with CaptureQueriesContext(connection) as large:
        assert page(client, url).count("<progress") == 33
    assert len(large) == len(small)


def test_server_page_buttons(client, operator, fleet, profile):
    mine, theirs = fleet
    client.force_login(operator)
    url = reverse("deploy:server-deploy", args=[mine[2].pk])
    text = page(client, url)
    assert "never built here" in text and "Install at next boot" in text
    assert f'<option value="{profile.pk}"' in text
    # No BMC: no power cycle offered.
    assert "disabled" in text

    response = client.post(
        reverse("deploy:server-nodeset", args=[mine[2].pk]),
        {"next_boot": "install", "profile": profile.pk},
    )
    assert response.status_code == 302 and response["Location"] == url
    assert deploy_row(mine[2]).state == "building"
    client.post(reverse("deploy:server-nodeset", args=[mine[2].pk]), {"next_boot": "rescue"})
    assert deploy_row(mine[2]).next_boot == "rescue"

    response = client.post(url, {"profile": profile.pk, "parameters": '{"tz": "UTC"}'})
    assert response.status_code == 302
    assert deploy_row(mine[2]).parameters == {"tz": "UTC"}
    response = client.post(url, {"profile": profile.pk, "parameters": "[1]"})
    assert response.status_code == 200 and "must be a JSON object" in response.content.decode()

    assert client.get(reverse("deploy:server-deploy", args=[theirs[0].pk])).status_code == 404
    response = client.post(
        reverse("deploy:server-nodeset", args=[theirs[0].pk]), {"next_boot": "localboot"}
    )
    assert response.status_code == 404
    assert deploy_row(theirs[0]).next_boot == "install"


def test_rinstall_button(client, operator, admin_user, fleet, profile):
    mine, _ = fleet
    power_services.create_bmc(user=admin_user, server=mine[2], driver="ipmi", address="10.9.9.9")
    client.force_login(operator)
    url = reverse("deploy:server-deploy", args=[mine[2].pk])
    response = client.post(
        reverse("deploy:server-rinstall", args=[mine[2].pk]), {"profile": profile.pk}
    )
    assert response.status_code == 302
    job = Job.objects.get(kind=services.RINSTALL_JOB_KIND)
    assert deploy_row(mine[2]).job_id == job.pk
    text = page(client, url)
    assert f"#{job.pk}" in text and "Recent reinstalls" in text


def test_viewer_sees_no_buttons(client, viewer, fleet):
    mine, _ = fleet
    client.force_login(viewer)
    text = page(client, reverse("deploy:server-deploy", args=[mine[0].pk]))
    assert "Install at next boot" not in text and "Next boot: Rescue" not in text
    assert "<textarea" not in text
    response = client.post(
        reverse("deploy:server-nodeset", args=[mine[0].pk]), {"next_boot": "localboot"}
    )
    assert response.status_code == 403
    assert deploy_row(mine[0]).next_boot == "install"


def test_deploy_section_on_the_server_page(client, operator, viewer, fleet):
    mine, _ = fleet
    client.force_login(operator)
    text = page(client, reverse("inventory:server", args=[mine[1].pk]))
    assert 'id="deploy"' in text and 'href="#deploy"' in text
    assert html.escape("disk on fire") in text
    assert reverse("deploy:server-deploy", args=[mine[1].pk]) in text
    assert "Next boot: local disk" in text
    assert "never built here" in page(client, reverse("inventory:server", args=[mine[2].pk]))
    client.force_login(viewer)
    text = page(client, reverse("inventory:server", args=[mine[0].pk]))
    assert 'id="deploy"' in text and "Next boot: local disk" not in text


def test_bulk_from_the_server_list(client, operator, viewer, fleet, profile):
    mine, theirs = fleet
    client.force_login(operator)
    listing = page(client, reverse("inventory:index"))
    assert f'formaction="{reverse("deploy:server-bulk")}"' in listing

    ids = [mine[2].pk, theirs[0].pk]
    # The list's own fields come along (action=status…) and are not this page's business.
    response = client.post(
        reverse("deploy:server-bulk"), {"ids": ids, "action": "status", "next": "/inventory/"}
    )
    text = response.content.decode()
    assert response.status_code == 200 and "Deploy 1 server" in text
    assert "node03" in text and "globex01" not in text

    response = client.post(
        reverse("deploy:server-bulk"),
        {"ids": ids, "deploy_action": "install", "confirm": "1", "next": "/inventory/"},
    )
    assert "An install needs a profile" in response.content.decode()
    assert not ServerDeploy.objects.filter(server=mine[2]).exists()

    response = client.post(
        reverse("deploy:server-bulk"),
        {"ids": ids, "deploy_action": "install", "profile": profile.pk, "confirm": "1"},
    )
    assert response.status_code == 302 and response["Location"] == reverse("deploy:builds")
    assert deploy_row(mine[2]).state == "building"
    assert deploy_row(theirs[0]).token_hash  # untouched, still its own build

    response = client.post(
        reverse("deploy:server-bulk"),
        {"ids": [mine[2].pk], "deploy_action": "rinstall", "profile": profile.pk, "confirm": "1"},
    )
    assert "No BMC configured for node03" in response.content.decode()

    client.force_login(viewer)
    assert reverse("deploy:server-bulk") not in page(client, reverse("inventory:index"))
    assert client.post(reverse("deploy:server-bulk"), {"ids": ids}).status_code == 403

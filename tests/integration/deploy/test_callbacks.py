"""The installer's reports: progress, done and failed, authenticated by the build token alone
(no session, no CSRF token). A wrong, expired or used token answers 403 and changes nothing."""

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from dcportal.models import AuditEvent, Job, JobLog
from deploy import services, tokens
from deploy.models import ServerDeploy
from inventory.models import Server

from .build_helpers import deploy_row, make_profile, make_servers, token_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def node(tenants, admin_user):
    (server,) = make_servers(tenants[0], 1)
    services.nodeset(user=admin_user, servers=[server], next_boot="install", profile=make_profile())
    return server


def post(client, token, event, data=None, *, as_json=False):
    url = f"/boot/build/{token}/{event}"
    if as_json:
        return client.post(url, json.dumps(data or {}), content_type="application/json")
    return client.post(url, data or {})


def state(server):
    """Everything about the build that a report could change."""
    row = ServerDeploy.objects.filter(server=server).values().get()
    row.pop("updated")
    status = Server.objects.get(pk=server.pk).status
    events = AuditEvent.objects.count()
    return row, status, events


def test_progress_form_and_json(client, node):
    token = token_of(node)
    response = post(client, token, "progress", {"percent": "35", "message": "packages"})
    assert (response.status_code, response.content) == (200, b"ok\n")
    row = deploy_row(node)
    assert (row.stage, row.progress, row.message, row.state) == (
        "installing",
        35,
        "packages",
        "building",
    )
    assert row.last_report is not None
    response = post(client, token, "progress", {"percent": 62.5}, as_json=True)
    assert response.status_code == 200
    row = deploy_row(node)
    assert (row.progress, row.message) == (62, "packages")
    # Entering "installing" is audited once; percentages are not state changes.
    assert AuditEvent.objects.filter(verb="build-installing").count() == 1


def test_done_deploys_and_burns_the_token(client, node):
    token = token_of(node)
    response = post(client, token, "done", {"message": "anaconda finished"})
    assert response.status_code == 200
    row = deploy_row(node)
    assert (row.next_boot, row.state, row.stage, row.progress) == (
        "localboot",
        "deployed",
        "done",
        100,
    )
    assert row.message == "anaconda finished" and row.finished is not None
    assert (row.token_nonce, row.token_hash, row.token_expires) == ("", "", None)
    assert Server.objects.get(pk=node.pk).status == "deployed"
    event = AuditEvent.objects.get(verb="build-done")
    assert (event.actor, event.via, event.object_repr) == (None, "boot", "node01")
    assert event.changes["state"] == ["building", "deployed"]
    assert event.changes["server_status"] == ["deploying", "deployed"]

    before = state(node)
    for again in ("done", "progress", "failed"):
        assert post(client, token, again).status_code == 403
    assert client.get(f"/boot/build/{token}/install").status_code == 403
    assert state(node) == before


def test_failed_records_why(client, node):
    token = token_of(node)
    response = post(client, token, "failed", {"message": "no disk found\n/dev/sda missing"})
    assert response.status_code == 200
    row = deploy_row(node)
    assert (row.state, row.stage, row.next_boot) == ("failed", "failed", "localboot")
    assert row.error == "no disk found\n/dev/sda missing"
    assert row.message == "no disk found"
    assert row.token_hash == ""
    assert Server.objects.get(pk=node.pk).status == "failed"
    assert AuditEvent.objects.filter(verb="build-failed").count() == 1
    before = state(node)
    assert post(client, token, "done").status_code == 403
    assert state(node) == before


def test_failed_without_a_message(client, node):
    assert post(client, token_of(node), "failed").status_code == 200
    assert deploy_row(node).error == "The installer reported a failure."


@pytest.mark.parametrize("event", ["progress", "done", "failed"])
def test_wrong_and_expired_tokens(client, node, event):
    token = token_of(node)
    before = state(node)
    wrong = [
        "garbage",
        tokens.MARKER + "_" + "A" * 43,
        token[:-2] + "xx",
        token + "A" * 90,
    ]
    for bad in wrong:
        response = post(client, bad, event, {"percent": 50})
        assert response.status_code == 403
        assert response.content.decode().startswith("Forbidden")
    ServerDeploy.objects.filter(server=node).update(
        token_expires=timezone.now() - timedelta(seconds=1)
    )
    before = state(node)
    assert post(client, token, event).status_code == 403
    # A bad body does not tell a wrong token that it got further than the token.
    response = client.post(f"/boot/build/{token}/{event}", "{", content_type="application/json")
    assert response.status_code == 403
    assert state(node) == before


def test_another_servers_token_cannot_touch_this_build(client, node, tenants, admin_user):
    (other,) = make_servers(tenants[0], 1, prefix="other")
    services.nodeset(user=admin_user, servers=[other], next_boot="install", profile="rocky9")
    before = state(node)
    assert post(client, token_of(other), "done").status_code == 200
    assert state(node)[0] == before[0]
    assert deploy_row(other).state == "deployed"


def test_bad_input_is_a_400_with_nothing_changed(client, node):
    token = token_of(node)
    before = state(node)
    for body in ({"percent": "lots"}, {"percent": 101}, {"percent": -1}):
        response = post(client, token, "progress", body, as_json=True)
        assert response.status_code == 400
        assert "percent" in response.content.decode()
    for raw in ("{", "[1, 2]", '"text"'):
        response = client.post(
            f"/boot/build/{token}/progress", raw, content_type="application/json"
        )
        assert response.status_code == 400
    assert state(node) == before
    assert client.get(f"/boot/build/{token}/done").status_code == 405


def test_messages_are_bounded_and_printable(client, node):
    token = token_of(node)
    post(client, token, "progress", {"message": "a\x1b[31mred\x00" + "x" * 1000})
    message = deploy_row(node).message
    assert len(message) == 300 and message.startswith("a?[31mred?x")


def test_reports_reach_the_rinstall_job(client, node, tenants, admin_user):
    job = Job.objects.create(
        kind=services.RINSTALL_JOB_KIND, queue="deploy", status="running", tenant=tenants[0]
    )
    ServerDeploy.objects.filter(server=node).update(job=job)
    token = token_of(node)
    client.get(f"/boot/build/{token}/install")
    post(client, token, "progress", {"percent": 50, "message": "packages"})
    job.refresh_from_db()
    assert job.progress == 40 + 55 * 50 // 100
    assert job.message == "node01: installing 50%: packages"
    post(client, token, "done")
    lines = list(JobLog.objects.filter(job=job).order_by("pk").values_list("message", flat=True))
    assert lines == [
        "node01: template install fetched",
        "node01: installing 50%: packages",
        "node01: installed; next boot localboot",
    ]
    job.refresh_from_db()
    assert job.progress == 100 and job.status == "running"  # the job itself ends the job

    # A job that has ended is left alone.
    Job.objects.filter(pk=job.pk).update(status="failed", progress=10)
    services.nodeset(user=admin_user, servers=[node], next_boot="install", profile="rocky9")
    ServerDeploy.objects.filter(server=node).update(job=job)
    post(client, token_of(node), "progress", {"percent": 90})
    job.refresh_from_db()
    assert job.progress == 10 and JobLog.objects.filter(job=job).count() == 3

"""Portal pages of auto-inventory: the agent script, conflicts, enrolment tokens."""

# ruff: noqa: F401, F811 (the shared fixtures are imported by name, which pytest needs)

import re

import pytest
from django.urls import reverse

from inventory import registration
from inventory.models import Conflict, EnrolmentToken, Interface, Server
from tests.integration.inventory.registration_helpers import (
    acme,
    enrolment,
    globex,
    make_report,
    operator,
    register_as_agent,
)

pytestmark = pytest.mark.django_db


def test_the_agent_is_served_to_anyone_with_this_portals_url(client):
    response = client.get(reverse("inventory:agent"), HTTP_HOST="127.0.0.1:8000")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/x-shellscript; charset=utf-8"
    text = response.content.decode()
    assert text.startswith("#!/bin/sh\n")
    assert "PORTAL_REGISTER_URL=http://127.0.0.1:8000/api/inventory/register/ " in text
    assert 'PORTAL_REGISTER_URL=""' not in text
    assert client.head(reverse("inventory:agent")).status_code == 200
    assert client.post(reverse("inventory:agent")).status_code in (302, 405)


def test_conflict_page_lists_open_ones_with_actions_for_operators(client, enrolment, operator):
    other = Server.objects.create(tenant=operator.tenants.get(), hostname="old-box")
    Interface.objects.create(server=other, name="eth0", mac="aa:bb:cc:00:00:02")
    register_as_agent(enrolment, make_report())
    register_as_agent(enrolment, make_report(uuid=None, serial="", interfaces=[]))
    mac, lone = Conflict.objects.get(kind="mac"), Conflict.objects.get(kind="placeholder")
    registration.resolve_conflict(user=operator, conflict=lone, resolution="dismiss")
    client.force_login(operator)
    page = client.get(reverse("inventory:conflicts")).content.decode()
    assert "old-box" in page and mac.detail in page
    assert lone.detail not in page  # resolved: not in the default (open) view
    assert reverse("inventory:conflict-resolve", args=[mac.pk]) in page
    assert 'value="merge"' in page
    resolved = client.get(reverse("inventory:conflicts"), {"state": "resolved"}).content.decode()
    assert lone.detail in resolved and mac.detail not in resolved
    everything = client.get(reverse("inventory:conflicts"), {"state": ""}).content.decode()
    assert lone.detail in everything and mac.detail in everything
    detail = client.get(reverse("inventory:conflict", args=[mac.pk]))
    assert detail.status_code == 200 and b"aa:bb:cc:00:00:01" in detail.content

    response = client.post(
        reverse("inventory:conflict-resolve", args=[mac.pk]), {"resolution": "merge"}
    )
    assert response.status_code == 302
    assert Interface.objects.get(mac="aa:bb:cc:00:00:02").server.hostname == "node-aabbcc000001"
    # Resolving twice says so instead of failing.
    response = client.post(
        reverse("inventory:conflict-resolve", args=[mac.pk]),
        {"resolution": "dismiss", "next": "detail"},
        follow=True,
    )
    assert b"already resolved" in response.content


def test_viewers_see_conflicts_but_cannot_resolve(client, enrolment, make_user, acme, globex):
    register_as_agent(enrolment, make_report(uuid=None, serial=""))
    conflict = Conflict.objects.get()
    viewer = make_user("viewer", roles=["read-only"], tenants=[acme])
    client.force_login(viewer)
    page = client.get(reverse("inventory:conflicts")).content.decode()
    assert conflict.detail in page
    assert reverse("inventory:conflict-resolve", args=[conflict.pk]) not in page
    url = reverse("inventory:conflict-resolve", args=[conflict.pk])
    assert client.post(url, {"resolution": "dismiss"}).status_code == 403
    outsider = make_user("outsider", roles=["operator"], tenants=[globex])
    client.force_login(outsider)
    assert conflict.detail not in client.get(reverse("inventory:conflicts")).content.decode()
    assert client.get(reverse("inventory:conflict", args=[conflict.pk])).status_code == 404
    assert client.post(url, {"resolution": "dismiss"}).status_code == 404
    nobody = make_user("nobody", tenants=[acme])
    client.force_login(nobody)
    assert client.get(reverse("inventory:conflicts")).status_code == 403
    conflict.refresh_from_db()
    assert conflict.resolved is None


def test_enrolment_page_shows_a_new_key_once_with_a_command(client, operator, acme):
    client.force_login(operator)
    page = client.get(reverse("inventory:enrolment-tokens"))
    assert page.status_code == 200 and b"Create enrolment token" in page.content
    response = client.post(
        reverse("inventory:enrolment-tokens"),
        {"tenant": "acme", "name": "rack-7"},
        HTTP_HOST="127.0.0.1:8000",
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    token = EnrolmentToken.objects.get(tenant=acme, name="rack-7")
    key = re.search(rb'id="new-key">([^<]+)<', response.content).group(1).decode()
    assert registration.authenticate_enrolment_token(key) == token
    command = re.search(rb'id="agent-command">([^<]+)<', response.content).group(1).decode()
    assert command == (
        f"wget -qO- http://127.0.0.1:8000/inventory/agent.sh | sh -s -- --token {key}"
    )
    assert f"dcportal.url=http://127.0.0.1:8000 dcportal.token={key}".encode() in response.content
    again = client.get(reverse("inventory:enrolment-tokens"))
    assert b"rack-7" in again.content and key.encode() not in again.content
    assert token.key_hash.encode() not in again.content

    response = client.post(reverse("inventory:enrolment-token-revoke", args=[token.pk]))
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked is not None


def test_enrolment_page_keeps_to_the_users_tenants(client, operator, admin_user, globex, make_user):
    theirs, _ = registration.create_enrolment_token(user=admin_user, tenant=globex, name="theirs")
    client.force_login(operator)
    page = client.get(reverse("inventory:enrolment-tokens")).content.decode()
    assert "theirs" not in page and 'value="globex"' not in page
    response = client.post(reverse("inventory:enrolment-tokens"), {"tenant": "globex", "name": "x"})
    assert response.status_code == 200 and b"errors" in response.content
    assert not EnrolmentToken.objects.filter(name="x").exists()
    url = reverse("inventory:enrolment-token-revoke", args=[theirs.pk])
    assert client.post(url).status_code == 404
    viewer = make_user("viewer", roles=["read-only"], tenants=[globex])
    client.force_login(viewer)
    page = client.get(reverse("inventory:enrolment-tokens"))
    assert b"theirs" in page.content and b"Create enrolment token" not in page.content
    assert client.post(reverse("inventory:enrolment-tokens"), {"name": "y"}).status_code == 403
    assert client.post(url).status_code == 403
    theirs.refresh_from_db()
    assert theirs.revoked is None

import itertools
import logging

import pytest
from django.test import Client
from django.urls import reverse

from dcportal.models import AuditEvent

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery"
_addresses = (f"127.0.{i // 250}.{i % 250 + 2}" for i in itertools.count(1000))


@pytest.fixture
def client_from():
    """A client with a source address of its own, so throttling counters never collide."""
    return lambda: Client(REMOTE_ADDR=next(_addresses))


def _login(client, username, password):
    return client.post(reverse("login"), {"username": username, "password": password})


def _verbs(user):
    return list(
        AuditEvent.objects.filter(object_id=str(user.pk), content_type__model="user")
        .order_by("id")
        .values_list("verb", flat=True)
    )


def test_login_and_logout_are_audited(make_user, client_from):
    user = make_user("lina")
    client = client_from()
    assert _login(client, "lina", PASSWORD).status_code == 302
    client.post(reverse("logout"))
    assert _verbs(user) == ["login", "logout"]
    event = AuditEvent.objects.get(verb="login", object_id=str(user.pk))
    assert event.actor_id == user.pk and event.via == "web" and event.source.startswith("127.")


def test_failed_login_on_known_account_is_audited(make_user, client_from):
    user = make_user("omar")
    response = _login(client_from(), "omar", "wrong")
    assert response.status_code == 200
    assert "correct username and password" in response.content.decode()
    assert _verbs(user) == ["login-failed"]
    before = AuditEvent.objects.count()
    _login(client_from(), "nobody-by-that-name", "wrong")
    assert AuditEvent.objects.count() == before


def test_account_locks_after_too_many_failures_even_with_right_password(
    make_user, client_from, settings
):
    settings.LOGIN_MAX_FAILURES = 3
    make_user("pia")
    for _ in range(3):
        _login(client_from(), "pia", "wrong")
    response = _login(client_from(), "pia", PASSWORD)
    assert response.status_code == 200
    assert "Too many failed log-in attempts" in response.content.decode()
    assert "_auth_user_id" not in response.wsgi_request.session


def test_source_address_locks_for_every_account(make_user, client_from, settings):
    settings.LOGIN_MAX_FAILURES = 3
    make_user("quin")
    attacker = client_from()
    for name in ("a1", "a2", "a3"):
        _login(attacker, name, "guess")
    assert "Too many failed" in _login(attacker, "quin", PASSWORD).content.decode()
    # The account itself is not locked for others.
    assert _login(client_from(), "quin", PASSWORD).status_code == 302


def test_success_resets_the_account_counter(make_user, client_from, settings):
    settings.LOGIN_MAX_FAILURES = 3
    make_user("rui")
    for _ in range(2):
        _login(client_from(), "rui", "wrong")
    assert _login(client_from(), "rui", PASSWORD).status_code == 302
    for _ in range(2):
        _login(client_from(), "rui", "wrong")
    assert _login(client_from(), "rui", PASSWORD).status_code == 302


def test_admin_login_is_throttled_too(make_user, client_from, settings):
    settings.LOGIN_MAX_FAILURES = 2
    make_user("sol", roles=["admin"])
    client = client_from()
    for _ in range(2):
        client.post("/admin/login/", {"username": "sol", "password": "wrong"})
    response = client.post("/admin/login/", {"username": "sol", "password": PASSWORD})
    assert response.status_code == 200
    assert "Too many failed log-in attempts" in response.content.decode()


def test_a_lockout_is_logged_once(make_user, client_from, settings, caplog):
    settings.LOGIN_MAX_FAILURES = 2
    make_user("tao")
    with caplog.at_level(logging.WARNING, logger="dcportal.ratelimit"):
        for _ in range(4):
            _login(client_from(), "tao", "wrong")
    (record,) = [r for r in caplog.records if "locked out" in r.getMessage()]
    assert "tao" in record.getMessage() and "failed log-ins" in record.getMessage()


def test_without_redis_log_in_still_checks_the_password(make_user, client_from, settings):
    settings.LOGIN_MAX_FAILURES = 1
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there: counting fails open
    make_user("uma")
    for _ in range(3):
        response = _login(client_from(), "uma", "wrong")
        assert response.status_code == 200
        assert "correct username and password" in response.content.decode()
    assert _login(client_from(), "uma", PASSWORD).status_code == 302

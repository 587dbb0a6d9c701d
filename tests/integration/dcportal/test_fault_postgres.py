"""PostgreSQL goes away under a running portal: pages, the API and the boot endpoints answer a
clean 503 with Retry-After (never a 500, never a traceback), and the same server process
serves again once PostgreSQL is back on the same address, without a restart.

The portal runs under gunicorn against a PostgreSQL cluster of this test's own, so stopping it
touches nothing else. About 25 s, most of it `migrate` on the new cluster."""

import pytest
from django.conf import settings

from dcportal import embedded
from tests.integration.dcportal.fault_helpers import (
    PASSWORD,
    Browser,
    Portal,
    PrivatePostgres,
    assert_unavailable,
    csrf_token,
    manage,
    portal_env,
)

pytestmark = pytest.mark.slow

UNKNOWN_MAC = "52:54:00:fa:01:7e"
SETUP = f"""
from dcportal import rbac, services
from dcportal.models import Role, User
user = User.objects.create_user("root", password={PASSWORD!r})
Role.objects.get(name=rbac.ADMIN).users.add(user)
print(services.create_token(user=user, name="fault", write=True)[1])
"""


@pytest.fixture
def portal(tmp_path):
    with PrivatePostgres(tmp_path / "pg") as postgres:
        url = postgres.url("dcportal")
        embedded.ensure_database(url)
        env = portal_env(database_url=url, redis_url=settings.REDIS_URL)
        manage(env, "migrate", "--noinput", "-v", "0", timeout=180)
        token = manage(env, "shell", "-c", SETUP).stdout.split()[-1]
        with Portal(env, tmp_path) as running:
            running.postgres, running.token = postgres, token
            yield running


def test_a_database_outage_answers_503_and_the_same_server_recovers(portal):
    browser = Browser(portal)
    logged_in, login_form = browser.log_in()
    assert logged_in.status == 302, logged_in
    token = portal.token

    def answers():
        return {
            "page": browser.open("/"),
            "api": portal.get("/api/inventory/servers/", token=token),
            "boot": portal.get(f"/boot/ipxe/{UNKNOWN_MAC}"),
        }

    before = answers()
    assert {name: answer.status for name, answer in before.items()} == {
        "page": 200,
        "api": 200,
        "boot": 200,
    }, before
    assert before["boot"].text.startswith("#!ipxe")
    pid = portal.process.pid

    portal.postgres.stop()
    try:
        down = answers()
        assert_unavailable(down["page"], "html")
        assert_unavailable(down["api"], "api")
        assert_unavailable(down["boot"], "text")
        # The log-in page itself still renders; logging in needs the database: 503.
        stranger = Browser(portal)
        login_page = stranger.open("/login/")
        assert login_page.status == 200, login_page
        login_form["csrfmiddlewaretoken"] = csrf_token(login_page)
        assert_unavailable(stranger.open("/login/", login_form), "html")
        # A write through the API: the same clean 503, nothing half-done to report.
        write = portal.post(
            "/api/inventory/servers/", token=token, data={"hostname": "during-outage"}
        )
        assert_unavailable(write, "api")
    finally:
        portal.postgres.start()

    after = answers()
    assert {name: answer.status for name, answer in after.items()} == {
        "page": 200,
        "api": 200,
        "boot": 200,
    }, after
    assert portal.process.pid == pid and portal.process.poll() is None
    assert "during-outage" not in after["api"].text
    # The server's own log tells what happened; no request was taken for a bug.
    log = portal.log.read_text()
    assert "503 for GET /api/inventory/servers/" in log
    assert "Internal Server Error" not in log

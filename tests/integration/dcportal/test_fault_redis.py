"""Redis dies and comes back empty (no persistence, as a production Redis may) while jobs are
queued, and a request enqueues while it is down: no job is lost, none runs twice, and the
pages and API reads that do not need Redis keep answering.

The portal (gunicorn), the housekeeping run and the RQ worker are real processes on a
redis-server of this test's own; the database is the session's test database. About 20 s."""

import re

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from dcportal import services
from dcportal.models import Job, JobLog
from inventory import power_services
from tests.integration.dcportal.fault_helpers import (
    PASSWORD,
    Browser,
    Portal,
    PrivateRedis,
    csrf_token,
    manage,
    portal_env,
    test_database_url,
)
from tests.integration.inventory.power_helpers import make_servers

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

QUEUE_KEY = "rq:queue:power"


@pytest.fixture
def redis_server(tmp_path):
    with PrivateRedis(tmp_path / "redis") as running:
        yield running


@pytest.fixture
def env(redis_server):
    return portal_env(database_url=test_database_url(), redis_url=redis_server.url)


@pytest.fixture
def portal(env, tmp_path):
    with Portal(env, tmp_path) as running:
        yield running


def power_status(portal, token, server):
    return portal.post(
        f"/api/inventory/servers/{server.pk}/power/", token=token, data={"action": "status"}
    )


def test_jobs_survive_a_redis_restart_and_run_exactly_once(
    redis_server, env, portal, admin_user, tenants
):
    servers = make_servers(admin_user, tenants[0], [f"srv{i}" for i in range(1, 5)])
    for server in servers:
        power_services.create_bmc(
            user=admin_user, server=server, driver="manual", address=f"bmc-{server.hostname}"
        )
    _, token = services.create_token(user=admin_user, name="fault", write=True)
    # Hashed as the portal process can check it (this process uses a faster test hasher).
    admin_user.password = PBKDF2PasswordHasher().encode(PASSWORD, "faultsalt", iterations=1000)
    admin_user.save(update_fields=["password"])

    queued = [power_status(portal, token, server) for server in servers[:3]]
    assert [answer.status for answer in queued] == [202] * 3, queued
    assert redis_server.client().llen(QUEUE_KEY) == 3

    redis_server.kill()

    # A request that enqueues while Redis is down: the row is committed, so the answer is the
    # job, not an error; the job says on its log why it waits.
    during = power_status(portal, token, servers[3])
    assert during.status == 202, during
    waiting = Job.objects.get(pk=during.json()["job"])
    assert waiting.status == Job.Status.QUEUED
    assert JobLog.objects.filter(
        job=waiting, level="warning", message__startswith="Queue unavailable"
    ).exists()
    # What does not need Redis keeps working: API reads, log-in (its throttling fails open),
    # portal pages.
    assert portal.get("/api/inventory/servers/", token=token).status == 200
    assert portal.get(f"/api/jobs/{waiting.pk}/", token=token).json()["status"] == "queued"
    browser = Browser(portal)
    form = {"username": admin_user.username, "password": PASSWORD}
    form["csrfmiddlewaretoken"] = csrf_token(browser.open("/login/"))
    logged_in = browser.open("/login/", form)
    assert logged_in.status == 302, logged_in
    for page in ("/", "/jobs/", f"/jobs/{waiting.pk}/", "/inventory/servers/"):
        answer = browser.open(page)
        assert answer.status == 200, (page, answer)

    redis_server.start()  # same port, empty
    assert redis_server.client().llen(QUEUE_KEY) == 0

    # Nothing is older than this in the test; production waits JOB_REQUEUE_AFTER (60 s) so a
    # row whose push is on its way is not pushed twice.
    requeue = {**env, "DCPORTAL_JOB_REQUEUE_AFTER": "0"}
    housekeeping = manage(requeue, "housekeeping").stdout
    ids = sorted(Job.objects.values_list("pk", flat=True))
    assert len(ids) == 4
    assert sorted(map(int, re.findall(r"job (\d+): lost by the queue", housekeeping))) == ids
    assert redis_server.client().llen(QUEUE_KEY) == 4
    # Another housekeeping pass (they may run anywhere, any number) pushes nothing twice.
    assert "re-enqueued" not in manage(requeue, "housekeeping").stdout

    manage(env, "rqworker", "power", "--burst")

    for job in Job.objects.order_by("pk"):
        assert job.status == Job.Status.SUCCEEDED, (job.pk, job.error)
        assert job.attempts == 1
        # Each run of a power action logs what it asked the BMC once: one line, one run.
        asked = JobLog.objects.filter(job=job, message__contains="status through the manual")
        assert asked.count() == 1
    assert redis_server.client().llen(QUEUE_KEY) == 0
    assert not Job.objects.exclude(status=Job.Status.SUCCEEDED).exists()

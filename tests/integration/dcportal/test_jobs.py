"""Tracked jobs on the real Redis: a row per job, handed to RQ on commit, run by a real (in-process)
RQ worker that records progress, log, result or failure; cancellation; the jobs API and scoping.

Tests that run jobs use transaction=True: on_commit must really fire, and execute() manages
its own connection the way a worker does, which a test-wide transaction would not survive."""

import datetime

import django_rq
import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from rq.job import Job as RQJob

from dcportal import jobs, requestcontext, selectors, services
from dcportal.models import AuditEvent, Credential, Job, JobLog
from tests.workers import run_burst_worker

JOBS = "/api/jobs/"


def queue(name="default"):
    return django_rq.get_queue(name)


def enqueue_committed(kind="dcportal.ping", **kwargs):
    with transaction.atomic():
        job = jobs.enqueue(kind, **kwargs)
    return job


class Rollback(Exception):
    pass


@pytest.fixture
def job_kind():
    """Register job kinds for one test; the in-process worker shares this registry."""
    names = []

    def register(name, function, **kwargs):
        jobs.job_kind(name, **kwargs)(function)
        names.append(name)
        return name

    yield register
    for name in names:
        jobs._KINDS.pop(name, None)


@pytest.fixture
def failing_kind(job_kind):
    def explode(ctx, message="boom"):
        ctx.progress(30, "about to fail")
        ctx.log("failing on purpose")
        raise RuntimeError(message)

    return job_kind("tests.explode", explode, title="Always fails")


# Enqueue on commit ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_enqueue_pushes_to_rq_only_on_commit(admin_user):
    with transaction.atomic():
        job = jobs.enqueue("dcportal.ping", user=admin_user, params={"steps": 2})
        # The row is there for this transaction, but no worker may see the job yet.
        assert Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED).exists()
        assert queue().count == 0

    assert queue().job_ids == [job.rq_id]
    rq_job = RQJob.fetch(job.rq_id, connection=queue().connection)
    # RQ carries the id only: the params stay in the database.
    assert rq_job.args == (job.pk,)
    assert rq_job.func_name == "dcportal.jobs.execute"


@pytest.mark.django_db(transaction=True)
def test_rolled_back_enqueue_leaves_nothing(admin_user):
    with pytest.raises(Rollback), transaction.atomic():
        jobs.enqueue("dcportal.ping", user=admin_user)
        raise Rollback

    assert Job.objects.count() == 0
    assert queue().count == 0


@pytest.mark.django_db
def test_enqueue_defers_the_push_to_commit(admin_user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = jobs.enqueue("dcportal.ping", user=admin_user)
    assert queue().count == 0
    assert len(callbacks) == 1

    callbacks[0]()

    assert queue().job_ids == [job.rq_id]


@pytest.mark.django_db
def test_enqueue_records_who_what_and_which_request(admin_user, tenants):
    cred = services.create_credential(user=admin_user, tenant=tenants[1], name="c", secret="x")
    with requestcontext.bound(request_id="req-job-0001"):
        job = jobs.enqueue("dcportal.ping", user=admin_user, obj=cred, params={"steps": 1})

    job.refresh_from_db()
    assert (job.kind, job.queue, job.status) == ("dcportal.ping", "default", "queued")
    assert job.user == admin_user
    assert job.tenant == tenants[1]
    assert (job.object_id, job.object_repr) == (str(cred.pk), "c")
    assert job.content_type.model_class() is Credential
    assert job.request_id == "req-job-0001"
    assert job.params == {"steps": 1}
    assert job.message == "Worker self-test"


@pytest.mark.django_db
def test_enqueue_unknown_kind_is_refused(admin_user):
    with pytest.raises(ValueError, match="unknown job kind"):
        jobs.enqueue("no.such.kind", user=admin_user)

    assert Job.objects.count() == 0


@pytest.mark.django_db
def test_enqueue_unknown_queue_is_refused(admin_user):
    # Otherwise the row would be written and the push would fail after commit, out of sight.
    with pytest.raises(ValueError, match="unknown queue"):
        jobs.enqueue("dcportal.ping", user=admin_user, queue="nope")

    assert Job.objects.count() == 0


def test_registering_a_kind_on_an_unknown_queue_is_refused():
    with pytest.raises(ValueError, match="unknown queue"):
        jobs.job_kind("tests.misplaced", queue="nope")


# Running --------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_worker_runs_ping_and_records_everything(admin_user):
    job = enqueue_committed(user=admin_user, params={"steps": 3})

    run_burst_worker()

    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.traceback
    assert job.progress == 100
    assert job.result["steps"] == 3
    assert job.result["pid"] == job.worker_pid
    assert job.attempts == 1
    assert job.started is not None and job.finished is not None
    assert job.created <= job.started <= job.finished
    assert job.worker_name  # the RQ worker's name, for reaping
    assert (job.error, job.traceback) == ("", "")
    lines = list(job.log.values_list("message", flat=True))
    assert [line.split(" on ")[0] for line in lines] == [
        "step 1 of 3",
        "step 2 of 3",
        "step 3 of 3",
    ]
    assert queue().count == 0


@pytest.mark.django_db(transaction=True)
def test_failing_job_records_error_and_traceback(admin_user, failing_kind):
    job = enqueue_committed(failing_kind, user=admin_user, params={"message": "disk on fire"})

    run_burst_worker()

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error == "RuntimeError: disk on fire"
    assert "Traceback" in job.traceback
    assert "in explode" in job.traceback
    assert job.progress == 30
    assert job.finished is not None
    assert job.result is None
    assert list(job.log.values_list("message", flat=True)) == ["failing on purpose"]


@pytest.mark.django_db(transaction=True)
def test_job_of_unregistered_kind_fails_clearly(admin_user):
    job = Job.objects.create(kind="gone.away", queue="default", user=admin_user)
    jobs._push(job.pk, job.queue)

    run_burst_worker()

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "no function is registered" in job.error
    assert "gone.away" in job.error


@pytest.mark.django_db(transaction=True)
def test_unstorable_result_fails_the_job_instead_of_leaving_it_running(admin_user, job_kind):
    kind = job_kind("tests.bad_result", lambda ctx: {"when": datetime.datetime.now()})
    job = enqueue_committed(kind, user=admin_user)

    run_burst_worker()

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "result" in job.error
    assert job.finished is not None


@pytest.mark.django_db(transaction=True)
def test_job_sees_its_user_and_request_context(admin_user, job_kind):
    def introspect(ctx):
        current = requestcontext.current()
        return {
            "user": ctx.user.username,
            "via": current.via,
            "source": current.source,
            "request_id": current.request_id,
        }

    kind = job_kind("tests.introspect", introspect)
    with requestcontext.bound(request_id="req-from-web-1"):
        job = enqueue_committed(kind, user=admin_user)

    run_burst_worker()

    job.refresh_from_db()
    # Audit events a job writes carry the request that started it.
    assert job.result == {
        "user": "root",
        "via": "job",
        "source": f"job:{job.pk}",
        "request_id": "req-from-web-1",
    }


@pytest.mark.django_db(transaction=True)
def test_execute_is_idempotent(admin_user):
    job = enqueue_committed(user=admin_user, params={"steps": 2})
    run_burst_worker()
    job.refresh_from_db()
    snapshot = (job.status, job.started, job.finished, job.attempts, job.result, job.log.count())

    assert jobs.execute(job.pk) is None

    job.refresh_from_db()
    assert (
        job.status,
        job.started,
        job.finished,
        job.attempts,
        job.result,
        job.log.count(),
    ) == snapshot


@pytest.mark.django_db(transaction=True)
def test_execute_of_a_missing_job_does_nothing():
    assert jobs.execute(987654321) is None


@pytest.mark.django_db(transaction=True)
def test_progress_is_clamped_to_0_100(admin_user, job_kind):
    seen = []

    def swing(ctx):
        for value in (150, -20, 42.9):
            ctx.progress(value)
            seen.append(Job.objects.get(pk=ctx.job.pk).progress)

    job = enqueue_committed(job_kind("tests.swing", swing), user=admin_user)
    run_burst_worker()

    assert seen == [100, 0, 42]
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED


# Cancelling -----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_cancel_queued_job_never_runs(admin_user):
    job = enqueue_committed(user=admin_user)
    assert queue().job_ids == [job.rq_id]

    job = jobs.cancel(job, user=admin_user)

    assert job.status == Job.Status.CANCELLED
    assert queue().count == 0
    run_burst_worker()
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert job.started is None
    assert job.attempts == 0
    assert job.log.count() == 0
    assert job.message == "Cancelled by root"
    event = AuditEvent.objects.get(object_id=str(job.pk), verb="cancel")
    assert event.changes["status"] == ["queued", "cancelled"]


@pytest.mark.django_db(transaction=True)
def test_cancel_that_loses_the_race_with_the_queue_still_stops_the_job(admin_user):
    # The RQ entry survives (say, cancel raced a worker's dequeue): execute() itself refuses.
    job = enqueue_committed(user=admin_user)
    Job.objects.filter(pk=job.pk).update(cancel_requested=True)

    run_burst_worker()

    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert job.started is None
    assert job.log.count() == 0


@pytest.mark.django_db(transaction=True)
def test_cancel_running_job_is_honoured_at_next_progress(admin_user, job_kind):
    reached = []

    def long_task(ctx):
        ctx.progress(10, "working")
        # Someone else cancels while this runs (the row is running: only a request is made).
        cancelled = jobs.cancel(Job.objects.get(pk=ctx.job.pk), user=admin_user)
        reached.append(("cancel returned", cancelled.status, cancelled.cancel_requested))
        ctx.log("still going")
        ctx.progress(50, "halfway")
        reached.append("after progress")
        return "done"

    job = enqueue_committed(job_kind("tests.long", long_task), user=admin_user)
    run_burst_worker()

    job.refresh_from_db()
    assert reached == [("cancel returned", "running", True)]
    assert job.status == Job.Status.CANCELLED
    assert job.message == "Cancelled"
    assert job.result is None
    assert job.finished is not None


@pytest.mark.django_db(transaction=True)
def test_cancel_of_a_finished_job_changes_nothing(admin_user):
    job = enqueue_committed(user=admin_user, params={"steps": 1})
    run_burst_worker()
    events = AuditEvent.objects.count()

    job = jobs.cancel(job, user=admin_user)

    assert job.status == Job.Status.SUCCEEDED
    assert not job.cancel_requested
    assert AuditEvent.objects.count() == events


# API ------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_api_list_detail_and_log(api, admin_user):
    job = enqueue_committed(user=admin_user, params={"steps": 4})
    run_burst_worker()
    client = api.as_user(admin_user)

    listed = client.get(JOBS).json()["results"]
    detail = client.get(f"{JOBS}{job.pk}/").json()
    full_log = client.get(f"{JOBS}{job.pk}/log/").json()
    after_second = client.get(f"{JOBS}{job.pk}/log/", {"after": full_log[1]["id"]}).json()
    after_last = client.get(f"{JOBS}{job.pk}/log/", {"after": full_log[-1]["id"]}).json()

    assert [row["id"] for row in listed] == [job.pk]
    assert detail["status"] == "succeeded"
    assert detail["progress"] == 100
    assert detail["kind"] == "dcportal.ping"
    assert detail["user"] == "root"
    assert detail["result"]["steps"] == 4
    assert detail["duration"] >= 0
    assert [line["message"].split(" on ")[0] for line in full_log] == [
        f"step {n} of 4" for n in range(1, 5)
    ]
    assert after_second == full_log[2:]
    assert after_last == []


@pytest.mark.django_db
def test_api_log_after_must_be_a_number(api, admin_user):
    job = jobs.enqueue("dcportal.ping", user=admin_user)

    response = api.as_user(admin_user).get(f"{JOBS}{job.pk}/log/", {"after": "abc"})

    assert response.status_code == 400
    assert "after" in response.json()["error"]["fields"]


@pytest.mark.django_db
def test_api_list_filters(api, admin_user, make_user):
    other = make_user("other", roles=["admin"])
    mine = jobs.enqueue("dcportal.ping", user=admin_user)
    theirs = jobs.enqueue("dcportal.ping", user=other)
    Job.objects.filter(pk=theirs.pk).update(status=Job.Status.FAILED)
    client = api.as_user(admin_user)

    def ids(**params):
        response = client.get(JOBS, params)
        assert response.status_code == 200, response.json()
        return [row["id"] for row in response.json()["results"]]

    assert ids(user="other") == [theirs.pk]
    assert ids(status="queued") == [mine.pk]
    assert ids(kind="dcportal.ping") == [theirs.pk, mine.pk]
    assert client.get(JOBS, {"colour": "red"}).status_code == 400


@pytest.mark.django_db(transaction=True)
def test_api_cancel_queued_job(api, admin_user):
    job = enqueue_committed(user=admin_user)

    response = api.as_user(admin_user).post(f"{JOBS}{job.pk}/cancel/")

    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "cancelled"
    assert queue().count == 0
    run_burst_worker()
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert job.started is None


@pytest.mark.django_db
def test_api_cancel_running_job_only_requests_it(api, admin_user):
    job = jobs.enqueue("dcportal.ping", user=admin_user)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING)

    body = api.as_user(admin_user).post(f"{JOBS}{job.pk}/cancel/").json()

    assert (body["status"], body["cancel_requested"]) == ("running", True)
    with pytest.raises(jobs.JobCancelled):
        jobs.JobContext(job).progress(20)


@pytest.mark.django_db
def test_api_cancel_needs_the_right_for_others_jobs(api, admin_user, make_user, tenants):
    cred = services.create_credential(user=admin_user, tenant=tenants[0], name="c", secret="x")
    viewer = make_user("viewer", roles=["read-only"], tenants=[tenants[0]])
    operator = make_user("op", roles=["operator"], tenants=[tenants[0]])
    job = jobs.enqueue("dcportal.ping", user=admin_user, obj=cred)
    own = jobs.enqueue("dcportal.ping", user=viewer, obj=cred)

    refused = api.as_user(viewer).post(f"{JOBS}{job.pk}/cancel/")
    own_cancel = api.as_user(viewer).post(f"{JOBS}{own.pk}/cancel/")
    allowed = api.as_user(operator).post(f"{JOBS}{job.pk}/cancel/")

    assert refused.status_code == 403
    assert own_cancel.status_code == 200
    assert allowed.status_code == 200
    assert allowed.json()["status"] == "cancelled"


@pytest.mark.django_db
def test_api_job_of_another_tenant_is_404(api, admin_user, make_user, tenants):
    cred = services.create_credential(user=admin_user, tenant=tenants[1], name="c", secret="x")
    job = jobs.enqueue("dcportal.ping", user=admin_user, obj=cred)
    operator = make_user("op", roles=["operator"], tenants=[tenants[0]])
    client = api.as_user(operator)

    assert client.get(f"{JOBS}{job.pk}/").status_code == 404
    assert client.get(f"{JOBS}{job.pk}/log/").status_code == 404
    assert client.post(f"{JOBS}{job.pk}/cancel/").status_code == 404
    assert Job.objects.get(pk=job.pk).status == Job.Status.QUEUED


@pytest.mark.django_db
@pytest.mark.parametrize("job_id", ["null,null", "1.5", str(2**70)])
def test_api_job_id_that_is_no_job_is_404(api, admin_user, job_id):
    jobs.enqueue("dcportal.ping", user=admin_user)
    client = api.as_user(admin_user)

    for response in (
        client.get(f"{JOBS}{job_id}/"),
        client.get(f"{JOBS}{job_id}/log/"),
        client.post(f"{JOBS}{job_id}/cancel/"),
    ):
        assert response.status_code == 404, response.content
        assert response.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_api_log_after_beyond_any_id_is_empty(api, admin_user):
    job = jobs.enqueue("dcportal.ping", user=admin_user)
    client = api.as_user(admin_user)

    for after in (str(2**70), str(-(2**70))):
        response = client.get(f"{JOBS}{job.pk}/log/", {"after": after})
        assert response.status_code == 200, response.content
        assert response.json() == []


@pytest.mark.django_db
def test_api_jobs_are_read_only(api, admin_user):
    job = jobs.enqueue("dcportal.ping", user=admin_user)
    client = api.as_user(admin_user)

    assert client.post(JOBS, {"kind": "dcportal.ping"}, format="json").status_code == 405
    assert client.delete(f"{JOBS}{job.pk}/").status_code == 405
    assert (
        client.patch(f"{JOBS}{job.pk}/", {"status": "succeeded"}, format="json").status_code == 405
    )
    assert Job.objects.get(pk=job.pk).status == Job.Status.QUEUED


# Scoping --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_jobs_for_scoping(admin_user, make_user, tenants):
    acme, globex = tenants
    acme_cred = services.create_credential(user=admin_user, tenant=acme, name="a", secret="x")
    globex_cred = services.create_credential(user=admin_user, tenant=globex, name="g", secret="x")
    viewer = make_user("viewer", roles=["read-only"], tenants=[acme])
    plain = make_user("plain")  # no role at all: no view_job
    acme_job = jobs.enqueue("dcportal.ping", user=admin_user, obj=acme_cred)
    globex_job = jobs.enqueue("dcportal.ping", user=admin_user, obj=globex_cred)
    global_job = jobs.enqueue("dcportal.ping", user=admin_user)
    viewers_own = jobs.enqueue("dcportal.ping", user=viewer, obj=globex_cred)
    plains_own = jobs.enqueue("dcportal.ping", user=plain)

    def visible(user):
        return set(selectors.jobs_for(user).values_list("pk", flat=True))

    assert visible(admin_user) == {
        acme_job.pk,
        globex_job.pk,
        global_job.pk,
        viewers_own.pk,
        plains_own.pk,
    }
    # Tenant jobs, plus the ones the user started even in a tenant they cannot otherwise see.
    assert visible(viewer) == {acme_job.pk, viewers_own.pk}
    assert visible(plain) == {plains_own.pk}
    assert visible(AnonymousUser()) == set()


@pytest.mark.django_db
def test_api_list_is_scoped(api, admin_user, make_user, tenants):
    acme_cred = services.create_credential(user=admin_user, tenant=tenants[0], name="a", secret="x")
    globex_cred = services.create_credential(
        user=admin_user, tenant=tenants[1], name="g", secret="x"
    )
    viewer = make_user("viewer", roles=["read-only"], tenants=[tenants[0]])
    acme_job = jobs.enqueue("dcportal.ping", user=admin_user, obj=acme_cred)
    jobs.enqueue("dcportal.ping", user=admin_user, obj=globex_cred)

    listed = api.as_user(viewer).get(JOBS).json()["results"]

    assert [row["id"] for row in listed] == [acme_job.pk]
    assert listed[0]["tenant"] == "acme"
    assert listed[0]["object_type"] == "dcportal.credential"


@pytest.mark.django_db(transaction=True)
def test_job_log_lines_belong_to_their_job(admin_user):
    first = enqueue_committed(user=admin_user, params={"steps": 1})
    second = enqueue_committed(user=admin_user, params={"steps": 2})

    run_burst_worker()

    assert JobLog.objects.filter(job=first).count() == 1
    assert JobLog.objects.filter(job=second).count() == 2

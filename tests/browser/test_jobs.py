"""A job's page follows the job live: a real RQ worker runs it while the browser watches."""

import re

import pytest

from dcportal import jobs
from dcportal.models import Job
from tests.workers import run_burst_worker

from .conftest import need

expect = need("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_job_page_follows_the_job_to_the_end(open_as, operator):
    job = jobs.enqueue("dcportal.ping", user=operator, params={"seconds": 0.3, "steps": 3})
    page = open_as(operator)
    page.goto(f"/jobs/{job.pk}/")
    main = page.get_by_role("main")
    expect(page.get_by_role("heading", name=f"Job #{job.pk}")).to_be_visible()
    progress = page.get_by_role("progressbar", name="Progress")
    expect(main.get_by_text("queued", exact=True)).to_be_visible()
    expect(progress).to_have_js_property("value", 0)
    expect(page.get_by_role("button", name="Cancel job")).to_be_visible()
    # Marks this very document: a reload would lose it.
    page.evaluate("window.sameDocument = true")

    # RQ's worker runs in the main thread (it installs signal handlers), so it runs here while
    # the browser polls the live server on its own.
    run_burst_worker("default")
    assert Job.objects.get(pk=job.pk).status == Job.Status.SUCCEEDED

    expect(main.get_by_text("succeeded", exact=True)).to_be_visible()
    expect(progress).to_have_js_property("value", 100)
    expect(main.get_by_text("100%", exact=True)).to_be_visible()
    log = page.get_by_role("list").filter(has_text="step 1 of 3")
    expect(log.get_by_role("listitem")).to_have_text(
        [re.compile(rf"step {n} of 3 on ") for n in (1, 2, 3)]
    )
    expect(page.get_by_role("button", name="Cancel job")).to_be_hidden()
    assert page.evaluate("window.sameDocument") is True


def test_job_list_follows_running_jobs_without_a_reload(open_as, operator):
    job = jobs.enqueue("dcportal.ping", user=operator, params={"seconds": 0.3, "steps": 3})
    page = open_as(operator)
    page.goto("/jobs/")
    region = page.get_by_role("region", name="Jobs")
    row = region.get_by_role("row").filter(has_text=f"#{job.pk}")
    expect(row.get_by_text("queued", exact=True)).to_be_visible()
    expect(row.get_by_role("progressbar")).to_have_js_property("value", 0)
    # A selected row stays selected while the rows refresh.
    row.get_by_role("checkbox").check()
    expect(region.get_by_text("1 selected")).to_be_visible()
    page.evaluate("window.sameDocument = true")

    run_burst_worker("default")
    assert Job.objects.get(pk=job.pk).status == Job.Status.SUCCEEDED

    expect(row.get_by_text("succeeded", exact=True)).to_be_visible()
    expect(row.get_by_role("progressbar")).to_have_js_property("value", 100)
    expect(row.get_by_role("checkbox")).to_be_checked()
    expect(region.get_by_text("1 selected")).to_be_visible()
    assert page.evaluate("window.sameDocument") is True

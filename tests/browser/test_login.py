"""Logging in through the portal's form, as a person does, and the page's own scripts loading."""

import re

import pytest

from dcportal import ratelimit

from .conftest import need

expect = need("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery"


@pytest.fixture
def lina(make_user):
    """A user whose failed log-ins from the browser's address start from zero (the counters
    live in Redis, which outlives a test)."""
    ratelimit.clear()
    yield make_user("lina", roles=["operator"])
    ratelimit.clear()


def test_log_in_through_the_form(open_as, lina):
    page = open_as(None)
    page.goto("/inventory/servers/")
    # Not logged in: the portal asks first, and comes back to the page after.
    expect(page).to_have_url(re.compile(r"/login/\?next="))
    expect(page.get_by_role("heading", name="Log in to dcportal")).to_be_visible()

    page.get_by_label("Username").fill("lina")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("correct username and password")
    expect(page.get_by_role("navigation", name="Main")).to_have_count(0)

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/inventory/servers/$"))
    expect(page.get_by_role("heading", name="Servers", level=1)).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    expect(page.get_by_role("banner")).to_contain_text("lina")

    # The vendored htmx and the portal's script are served and running.
    assert page.evaluate("typeof window.htmx") == "object"
    assert page.evaluate("window.htmx.version") == "2.0.11"
    with page.expect_response(re.compile(r"/static/vendor/htmx/htmx\.min\.js$")) as served:
        page.reload()
    assert served.value.status == 200

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login/$"))
    expect(page.get_by_role("navigation", name="Main")).to_have_count(0)

"""The portal in a real browser: Debian's Chromium, driven by Playwright, against the portal that
pytest-django's live server runs (static files included) on the real PostgreSQL and Redis.

No browser is downloaded: Playwright launches the system's /usr/bin/chromium. Without it (or
without Playwright) the tests are skipped, except under CI, where that is a failure.
"""

import importlib
import os
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

# The live server binds here (pytest-django reads it when the session's server first starts).
os.environ.setdefault("DJANGO_LIVE_TEST_SERVER_ADDRESS", "127.0.0.1")

CHROMIUM = Path("/usr/bin/chromium")
# Chromium refuses its sandbox to root (CI runs as root); the rest keeps it from reaching out to
# Google's services, which a closed network refuses and which have no business in a test.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# How long a step may wait for the page to get where the test expects it (not a timed assert:
# every wait ends as soon as the page is there).
WAIT_MS = 15_000
VIEWPORT = {"width": 1366, "height": 900}
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"


def unavailable(what):
    """A missing browser: a failure under CI (a skipped check would hide a missing package),
    a skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and {what}", pytrace=False)
    pytest.skip(what, allow_module_level=True)


def need(module):
    """A module of the browser tests' own requirements (requirements-dev.txt), or unavailable."""
    try:
        return importlib.import_module(module)
    except ImportError:
        unavailable(f"{module} is not installed (pip install -r requirements-dev.txt)")


@pytest.fixture(scope="package")
def browser():
    playwright_api = need("playwright.sync_api")
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing (Debian package chromium)")
    playwright_api.expect.set_options(timeout=WAIT_MS)
    # Playwright's sync API keeps an asyncio loop running in this thread between calls, and
    # Django refuses ORM calls beside a running loop. The calls really are synchronous; the
    # permission lasts only while the browser does, so no other test runs without the check.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with playwright_api.sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                yield chromium
            finally:
                chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def open_as(browser, live_server):
    """open_as(user) -> a page of a fresh browser session logged in as `user` (None: logged out).

    Whatever breaks on the way fails the test: a script error, a console error, or a static file
    the server did not deliver."""
    contexts, problems = [], []

    def watch(page):
        page.on("pageerror", lambda error: problems.append(f"script error on {page.url}: {error}"))
        page.on(
            "console",
            lambda message: (
                message.type == "error"
                and problems.append(f"console error on {page.url}: {message.text}")
            ),
        )
        page.on(
            "response",
            lambda response: (
                response.status >= 400
                and "/static/" in response.url
                and problems.append(f"{response.status} for {response.url}")
            ),
        )

    def open_page(user=None):
        context = browser.new_context(base_url=live_server.url, viewport=VIEWPORT)
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        if user is not None:
            client = Client()
            client.force_login(user)
            session = client.cookies[settings.SESSION_COOKIE_NAME].value
            context.add_cookies(
                [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
            )
        page = context.new_page()
        watch(page)
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert not problems, "\n".join(problems)

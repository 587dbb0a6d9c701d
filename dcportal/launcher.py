"""`make run` / `make test` / `make manage`: one process that prepares the environment, starts
the embedded services when no DATABASE_URL / REDIS_URL is given, and runs the portal, the tests
or a management command under it.

    python -m dcportal.launcher run      web on 127.0.0.1:8000, one RQ worker, housekeeping
    python -m dcportal.launcher test [PYTEST ARGS]
    python -m dcportal.launcher manage COMMAND [ARGS]
    python -m dcportal.launcher bench SCRIPT     against a fresh dcportal_bench database
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from dcportal import embedded

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
MANAGE = [PYTHON, str(BASE_DIR / "manage.py")]


def log(message):
    print(f"dcportal: {message}", flush=True)


class Services:
    """The embedded PostgreSQL and Redis, started only for the URLs the environment lacks."""

    def __init__(self, var_dir, *, ephemeral=False):
        self.var_dir = var_dir
        self.ephemeral = ephemeral
        self.postgres = embedded.EmbeddedPostgres(var_dir, ephemeral=ephemeral)
        self.redis = embedded.EmbeddedRedis(var_dir, ephemeral=ephemeral)
        self.started = []

    def __enter__(self):
        env = os.environ
        if not env.get("DATABASE_URL"):
            env["DATABASE_URL"] = self.postgres.start()
            self.started.append(self.postgres)
            log(f"embedded PostgreSQL in {self.postgres.data_dir}")
        if not env.get("REDIS_URL"):
            if self.redis.socket.exists() and _redis_answers(f"unix://{self.redis.socket}"):
                env["REDIS_URL"] = f"unix://{self.redis.socket}"
            else:
                env["REDIS_URL"] = self.redis.start()
                self.started.append(self.redis)
                log(f"embedded Redis in {self.redis.dir}")
        embedded.ensure_database(env["DATABASE_URL"])
        return self

    def __exit__(self, *exc):
        for service in reversed(self.started):
            service.stop()
        if self.ephemeral:
            shutil.rmtree(self.var_dir, ignore_errors=True)
        return False


def _redis_answers(url):
    import redis

    try:
        return redis.Redis.from_url(url, socket_timeout=1).ping()
    except redis.RedisError:
        return False


def prepare_environment(var_dir, *, local):
    env = os.environ
    env.setdefault("DJANGO_SETTINGS_MODULE", "dcportal.settings")
    env.setdefault("DCPORTAL_VAR_DIR", str(var_dir))
    secret_key = embedded.ensure_keys(var_dir)
    env.setdefault("DCPORTAL_SECRET_KEY", secret_key)
    if local:
        # Loopback only, plain HTTP: secure cookies would never reach the browser.
        env.setdefault("DCPORTAL_PLAIN_HTTP", "1")


def manage(*args, check=True):
    return subprocess.run([*MANAGE, *args], check=check).returncode


def supervise(processes):
    """Wait until one process ends or Ctrl-C; then stop all of them, politely first."""
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping and all(p.poll() is None for p in processes.values()):
        time.sleep(0.3)
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20
    for name, process in processes.items():
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log(f"{name} did not stop in time; killing it")
            process.kill()
            process.wait()
        log(f"{name} stopped")
    return 0 if stopping else 1


def run(var_dir):
    prepare_environment(var_dir, local=True)
    with Services(var_dir):
        manage("migrate", "--noinput", "-v", "0")
        manage("collectstatic", "--noinput", "-v", "0")
        manage("ensure_admin")
        bind = os.environ.get("DCPORTAL_BIND", "127.0.0.1:8000")
        processes = {
            "web": subprocess.Popen(
                [
                    PYTHON,
                    "-m",
                    "gunicorn",
                    "dcportal.wsgi",
                    "--bind",
                    bind,
                    "--workers",
                    "2",
                    "--threads",
                    "4",
                    "--access-logfile",
                    "-",
                    "--graceful-timeout",
                    "10",
                ],
                cwd=BASE_DIR,
            ),
            "worker": subprocess.Popen(
                [*MANAGE, "rqworker", "default", "power", "deploy", "virt", "--with-scheduler"],
                cwd=BASE_DIR,
            ),
            "housekeeping": subprocess.Popen(
                [*MANAGE, "housekeeping", "--every", "30"], cwd=BASE_DIR
            ),
        }
        log(f"portal on http://{bind}/  (Ctrl-C stops everything)")
        return supervise(processes)


def test(var_dir, args):
    prepare_environment(var_dir, local=True)
    os.environ.setdefault("DCPORTAL_STATIC_FROM_FINDERS", "1")
    # Without given URLs, every test run gets its own throwaway PostgreSQL and Redis, so runs
    # in parallel (or beside `make run`) never share a queue or a test database.
    with Services(var_dir / "test" / str(os.getpid()), ephemeral=True):
        status = subprocess.run([PYTHON, "-m", "pytest", *args], cwd=BASE_DIR).returncode
    if status == 5:
        log("no tests were collected: that is a failure")
    return status


def bench(var_dir, args):
    """Run a benchmark script against a fresh database of its own (dcportal_bench)."""
    prepare_environment(var_dir, local=True)
    with Services(var_dir):
        url = os.environ["DATABASE_URL"]
        os.environ["DATABASE_URL"] = url.rsplit("/", 1)[0] + "/dcportal_bench"
        embedded.drop_database(os.environ["DATABASE_URL"])
        embedded.ensure_database(os.environ["DATABASE_URL"])
        manage("migrate", "--noinput", "-v", "0")
        env = {**os.environ, "PYTHONPATH": str(BASE_DIR)}
        # -P: bench/inventory.py must not shadow the inventory app on sys.path.
        return subprocess.run([PYTHON, "-P", *args], cwd=BASE_DIR, env=env).returncode


def manage_command(var_dir, args):
    prepare_environment(var_dir, local=True)
    with Services(var_dir):
        return manage(*args, check=False)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    var_dir = Path(os.environ.get("DCPORTAL_VAR_DIR", BASE_DIR / "var")).resolve()
    if not argv or argv[0] not in {"run", "test", "manage", "bench"}:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "run":
        return run(var_dir)
    if command == "test":
        return test(var_dir, rest)
    if command == "bench":
        return bench(var_dir, rest)
    return manage_command(var_dir, rest)


if __name__ == "__main__":
    sys.exit(main())

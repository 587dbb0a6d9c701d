"""Deployment at scale, printed as a table. Run: make bench-deploy.

- nodeset install of BENCH_NODESET (5000) servers: seconds and SQL statements
- boot storm: BENCH_STORM (2000) distinct MACs in install mode each fetch their iPXE script
  and then their install template, BENCH_CLIENTS at a time, against gunicorn as `make run`
  starts it (2 workers x 4 threads); requests/s, p50/p99 latency and errors, and the ratio to
  the same number of fetches of a static file of the same size from the same server
- makedhcp for 10k hosts: bench/dhcp.py (make bench-dhcp)
"""

import os
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dcportal.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from dcportal.models import Tenant, User  # noqa: E402
from deploy import services  # noqa: E402
from deploy.models import OperatingSystem, Profile, Template  # noqa: E402
from inventory.models import Interface, Server  # noqa: E402

NODESET = int(os.environ.get("BENCH_NODESET", "5000"))
STORM = int(os.environ.get("BENCH_STORM", "2000"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "32"))
TEMPLATE_URL = re.compile(r"inst\.ks=(\S+)")


def figure(name, value, unit=""):
    print(f"  {name:58} {value:>12} {unit}", flush=True)


def mac(n):
    raw = (0x020000000000 | n).to_bytes(6, "big")
    return ":".join(f"{b:02x}" for b in raw)


def load(tenant, count):
    servers = Server.objects.bulk_create(
        Server(hostname=f"node{n:05d}.bench.example", serial=f"SN{n:05d}", tenant=tenant)
        for n in range(count)
    )
    Interface.objects.bulk_create(
        Interface(server=server, name="eth0", mac=mac(n), boot=True)
        for n, server in enumerate(servers)
    )
    return servers


def profile():
    os_ = OperatingSystem.objects.create(
        name="rocky9",
        family="redhat",
        version="9.4",
        kernel="rocky9/vmlinuz",
        initrd="rocky9/initrd.img",
        install_url="http://mirror.example/rocky/9/BaseOS/x86_64/os/",
    )
    return Profile.objects.create(
        name="rocky9-base",
        os=os_,
        install_template=Template.objects.get(name="rhel9-kickstart"),
    )


def bench_nodeset(user, prof):
    servers = Server.objects.all()
    with CaptureQueriesContext(connection) as queries:
        start = time.perf_counter()
        services.nodeset(user=user, servers=servers, next_boot="install", profile=prof)
        seconds = time.perf_counter() - start
    figure(f"nodeset install, {servers.count()} servers", f"{seconds:.2f}", "s")
    figure("  SQL statements", len(queries.captured_queries))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(port):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "dcportal.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--threads",
            "4",
            "--log-level",
            "warning",
        ],
        # Every boot of the storm comes from 127.0.0.1: the per-source rate limit is off.
        env={
            **os.environ,
            "DCPORTAL_BOOT_URL": f"http://127.0.0.1:{port}",
            "DCPORTAL_BOOT_RATE_PER_SOURCE": "0",
        },
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/boot/ipxe", timeout=2).read()  # noqa: S310
            return process
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    process.kill()
    raise SystemExit("gunicorn did not start")


def fetch(url):
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:  # noqa: S310
            body = answer.read()
        return time.perf_counter() - start, body, None
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        return time.perf_counter() - start, b"", str(exc)


def node(base, n):
    """One booting node: its iPXE script, then the install template the script points at."""
    timings, errors, size = [], [], 0
    seconds, body, error = fetch(f"{base}/boot/ipxe/{mac(n).replace(':', '-')}")
    timings.append(seconds)
    if error:
        return timings, [error], 0
    script = body.decode()
    size = len(body)
    found = TEMPLATE_URL.search(script)
    if not found:
        return timings, [f"no template URL in the script of node {n}"], size
    seconds, body, error = fetch(found.group(1))
    timings.append(seconds)
    if error:
        errors.append(error)
    return timings, errors, size


def storm(base, count):
    start = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(lambda n: node(base, n), range(count)))
    wall = time.perf_counter() - start
    timings = [t for result in results for t in result[0]]
    errors = [e for result in results for e in result[1]]
    sizes = [result[2] for result in results if result[2]]
    return wall, timings, errors, sizes


def static_baseline(base, name, requests):
    start = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(lambda _: fetch(f"{base}/static/{name}"), range(requests)))
    wall = time.perf_counter() - start
    errors = [error for _, _, error in results if error]
    return wall, [t for t, _, _ in results], errors


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def main():
    print(f"dcportal deploy benchmark: {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}")
    print("  (DCPORTAL_BOOT_RATE_PER_SOURCE=0: the whole boot storm comes from one address)")
    tenant = Tenant.objects.create(name="Bench", slug="bench")
    user = User.objects.create_user("bench-admin", password=None, is_superuser=True)
    prof = profile()
    load(tenant, max(NODESET, STORM))
    bench_nodeset(user, prof)

    # A static file of the size of a per-MAC script, served by the same gunicorn (whitenoise).
    static_dir = Path(settings.STATIC_ROOT)
    static_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    probe = node_script_size(base, port)
    (static_dir / "bench-boot.txt").write_text("#" * probe)
    server = start_gunicorn(port)
    try:
        wall, timings, errors, sizes = storm(base, STORM)
        requests = len(timings)
        figure(f"boot storm: {STORM} nodes x (script + template), {CLIENTS} clients", "")
        figure("  requests/s", f"{requests / wall:.0f}")
        figure("  p50 latency", f"{statistics.median(timings) * 1000:.1f}", "ms")
        figure("  p99 latency", f"{percentile(timings, 0.99) * 1000:.1f}", "ms")
        figure("  errors", len(errors))
        for error in errors[:5]:
            print(f"    {error}")
        swall, stimings, serrors = static_baseline(base, "bench-boot.txt", requests)
        figure(f"static file of {probe} bytes, same count of requests", "")
        figure("  requests/s", f"{requests / swall:.0f}")
        figure("  p50 latency", f"{statistics.median(stimings) * 1000:.1f}", "ms")
        figure("  errors", len(serrors))
        figure("ratio boot storm / static (requests/s)", f"{swall / wall:.2f}")
        if sizes:
            figure("  median script size", int(statistics.median(sizes)), "bytes")
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 1 if errors else 0


def node_script_size(base, port):
    """The size of node 0's install script, rendered in-process before the storm."""
    from django.test import Client

    answer = Client(HTTP_HOST=f"127.0.0.1:{port}").get(f"/boot/ipxe/{mac(0).replace(':', '-')}")
    return max(len(answer.content), 256)


if __name__ == "__main__":
    sys.exit(main())

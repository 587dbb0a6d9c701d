"""Inventory at scale: loads BENCH_SERVERS (default 100k) servers x 2 interfaces into a fresh
benchmark database and prints a table of figures. Run: make bench-inventory.

  - register (upsert) throughput through the real registration service
  - list of 100 and 1000 servers with attributes through the API: median / p95 latency and
    the number of queries (which must not grow with the page size)
  - an attribute filter at full size
  - import of 10k servers from CSV
"""

import os
import random
import statistics
import sys
import time
import uuid

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dcportal.settings")
django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from dcportal import rbac, services  # noqa: E402
from dcportal.models import Role, Tenant, User  # noqa: E402
from inventory import imports, registration  # noqa: E402
from inventory.models import Interface, Server  # noqa: E402

N = int(os.environ.get("BENCH_SERVERS", "100000"))
REGISTRATIONS = int(os.environ.get("BENCH_REGISTRATIONS", "2000"))
IMPORT_ROWS = int(os.environ.get("BENCH_IMPORT", "10000"))
rng = random.Random(42)  # noqa: S311 (figures, not secrets)
rows = []


def figure(name, value, unit=""):
    rows.append((name, value, unit))
    print(f"  {name:55} {value:>12} {unit}", flush=True)


def mac(n, nic):
    raw = (0x020000000000 | (nic << 32) | n).to_bytes(6, "big")
    return ":".join(f"{b:02x}" for b in raw)


def facts(n):
    return {
        "cpu": {"cores": rng.choice([8, 16, 24, 32, 48, 64, 96]), "model": "Xeon"},
        "memory_mb": rng.choice([65536, 131072, 262144, 524288]),
        "disks": [{"name": "sda", "size_gb": rng.choice([480, 960, 1920])}],
        "contract": f"C-{n % 500:04d}",
    }


def load(tenant):
    start = time.perf_counter()
    batch = 5000
    for first in range(0, N, batch):
        servers = Server.objects.bulk_create(
            Server(
                hostname=f"node{n:06d}.bench.example",
                uuid=uuid.UUID(int=n + 1),
                serial=f"SN{n:08d}",
                vendor="BenchCorp",
                model="B1",
                tenant=tenant,
                attributes=facts(n),
            )
            for n in range(first, min(first + batch, N))
        )
        Interface.objects.bulk_create(
            Interface(server=s, name=f"eth{nic}", mac=mac(first + i, nic), boot=nic == 0)
            for i, s in enumerate(servers)
            for nic in (0, 1)
        )
    figure(f"bulk load of {N} servers x 2 interfaces", f"{time.perf_counter() - start:.1f}", "s")


def bench_register(tenant, user):
    reports = []
    for i in range(REGISTRATIONS):
        n = rng.randrange(N) if i % 2 == 0 else N + 10_000_000 + i  # half updates, half new
        reports.append(
            {
                "uuid": str(uuid.UUID(int=n + 1)),
                "serial": f"SN{n:08d}",
                "vendor": "BenchCorp",
                "model": "B1",
                "interfaces": [{"name": "eth0", "mac": mac(n, 0)}],
                "cpu": {"cores": 64},
                "last_boot": i,
            }
        )
    start = time.perf_counter()
    for report in reports:
        registration.register(report=report, tenant=tenant, actor_user=user)
    seconds = time.perf_counter() - start
    figure(
        f"register (upsert), {REGISTRATIONS} reports, half new",
        f"{REGISTRATIONS / seconds:.0f}",
        "reports/s",
    )


def timed_get(client, url, repeat):
    latencies, queries = [], set()
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as captured:
            start = time.perf_counter()
            response = client.get(url)
            latencies.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.content[:300]
        queries.add(len(captured))
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))]
    return statistics.median(latencies), p95, sorted(queries), response


def bench_lists(client):
    for size in (100, 1000):
        median, p95, queries, _ = timed_get(client, f"/api/inventory/servers/?page_size={size}", 20)
        figure(
            f"list {size} servers with attributes: median / p95", f"{median:.0f} / {p95:.0f}", "ms"
        )
        figure(f"list {size} servers: queries per request", ",".join(map(str, queries)))
    url = "/api/inventory/servers/?attr=cpu.cores__gte=64&attr=memory_mb__gte=262144&page_size=100"
    median, p95, queries, response = timed_get(client, url, 10)
    matching = Server.objects.filter(
        attributes__cpu__cores__gte=64, attributes__memory_mb__gte=262144
    ).count()
    figure(
        f"attribute filter at {Server.objects.count()} rows ({matching} match): median / p95",
        f"{median:.0f} / {p95:.0f}",
        "ms",
    )


def bench_import(tenant, user):
    lines = ["hostname,serial,vendor,model,tags,attr.cpu.cores,interfaces"]
    for i in range(IMPORT_ROWS):
        n = 50_000_000 + i
        lines.append(
            f"imp{i:06d}.bench.example,ISN{i:07d},ImportCorp,I1,bench;csv,{8 + i % 8},"
            f"eth0={mac(n, 0)}"
        )
    text = "\n".join(lines) + "\n"
    start = time.perf_counter()
    report = imports.import_inventory(user=user, text=text, fmt="csv", tenant=tenant)
    seconds = time.perf_counter() - start
    assert Server.objects.filter(vendor="ImportCorp").count() == IMPORT_ROWS, report
    figure(
        f"import {IMPORT_ROWS} servers from CSV",
        f"{seconds:.1f}",
        f"s ({IMPORT_ROWS / seconds:.0f} rows/s)",
    )


def main():
    print(
        f"dcportal inventory benchmark on {os.cpu_count()} CPUs, PostgreSQL "
        f"{connection.cursor().connection.server_version}",
        flush=True,
    )
    tenant = Tenant.objects.create(name="Bench", slug="bench")
    user = User.objects.create_user("bench-admin", password=None)
    Role.objects.get(name=rbac.ADMIN).users.add(user)
    tenant.members.add(user)
    load(tenant)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    bench_register(tenant, user)
    _, key = services.create_token(user=user, name="bench")
    client = APIClient(HTTP_HOST="localhost")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    bench_lists(client)
    bench_import(tenant, user)
    print("\n| figure | value | unit |\n|---|---:|---|")
    for name, value, unit in rows:
        print(f"| {name} | {value} | {unit} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""makedhcp at scale, printed as a table. Run: make bench-dhcp.

BENCH_DHCP_HOSTS (10000) servers, each with a boot interface and an address, spread over
/22 subnets of 1000 hosts with a small DHCP pool each, are bulk-loaded into a fresh benchmark
database. Then, BENCH_REPEAT (5) times each, median seconds:

  - a bare values_list of (MAC, address, host name) joined into lines: the floor any generator
    pays to read the same rows
  - `makedhcp --format isc|kea|dnsmasq -o FILE` (read, check conflicts, render, write): seconds,
    SQL statements, and the ratio to the floor; and the share of reading, checking and rendering
  - the daemon's own check of the file (dhcpd -t, kea-dhcp4 -t, dnsmasq --test), for scale
"""

import ipaddress
import os
import statistics
import sys
import tempfile
import time
from io import StringIO
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dcportal.settings")
django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from dcportal import rbac  # noqa: E402
from dcportal.models import Role, Tenant, User  # noqa: E402
from deploy import dhcp_services  # noqa: E402
from deploy.dhcp import check  # noqa: E402
from deploy.dhcp.conflicts import find_conflicts  # noqa: E402
from inventory.models import Interface, IPAddress, IPRange, Server, Subnet  # noqa: E402

HOSTS = int(os.environ.get("BENCH_DHCP_HOSTS", "10000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))
PER_SUBNET = 1000
BOOT_URL = "http://10.100.0.2:8000"
rows = []


def figure(name, value, unit=""):
    rows.append((name, value, unit))
    print(f"  {name:58} {value:>12} {unit}", flush=True)


def mac(n):
    raw = (0x020000000000 | n).to_bytes(6, "big")
    return ":".join(f"{b:02x}" for b in raw)


def load(tenant):
    start = time.perf_counter()
    subnets = []
    for index in range((HOSTS + PER_SUBNET - 1) // PER_SUBNET):
        network = ipaddress.ip_network(f"10.100.{index * 4}.0/22")
        subnet = Subnet.objects.create(
            network=network,
            name=f"rack{index:02d}",
            tenant=tenant,
            gateway=network[1],
            dns_servers=[network[2]],
            domain="bench.example",
        )
        # Reservations take .10 to .1009 of each /22; the pool is what is left at the top.
        IPRange.objects.create(
            subnet=subnet, start=network[1011], end=network[1021], kind=IPRange.Kind.DHCP
        )
        subnets.append(subnet)
    batch = 5000
    for first in range(0, HOSTS, batch):
        numbers = range(first, min(first + batch, HOSTS))
        servers = Server.objects.bulk_create(
            Server(hostname=f"node{n:05d}.bench.example", tenant=tenant) for n in numbers
        )
        interfaces = Interface.objects.bulk_create(
            Interface(server=server, name="eno1", mac=mac(n), boot=True)
            for n, server in zip(numbers, servers, strict=True)
        )
        IPAddress.objects.bulk_create(
            IPAddress(
                address=subnets[n // PER_SUBNET].network[10 + n % PER_SUBNET],
                subnet=subnets[n // PER_SUBNET],
                interface=interface,
            )
            for n, interface in zip(numbers, interfaces, strict=True)
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    figure(
        f"bulk load of {HOSTS} hosts in {len(subnets)} subnets",
        f"{time.perf_counter() - start:.1f}",
        "s",
    )


def timed(function, repeat=REPEAT):
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


def bare_join():
    rows = IPAddress.objects.filter(interface__isnull=False).values_list(
        "interface__mac", "address", "interface__server__hostname"
    )
    return "\n".join(f"{mac} {address} {hostname}" for mac, address, hostname in rows)


def bench_phases(user):
    boot = dhcp_services.boot_options(boot_url=BOOT_URL)
    read, config = timed(lambda: dhcp_services.build_config(user=user, boot=boot))
    checked, found = timed(lambda: find_conflicts(config))
    assert not found, found[:3]
    figure("  read the inventory (build_config)", f"{read:.3f}", "s")
    figure("  conflict checks", f"{checked:.3f}", "s")
    for fmt in dhcp_services.FORMATS:
        rendered, _ = timed(lambda fmt=fmt: dhcp_services.render(config, fmt))
        figure(f"  render {fmt}", f"{rendered:.3f}", "s")


def bench_makedhcp(user, floor, directory):
    for fmt in dhcp_services.FORMATS:
        path = Path(directory) / check.FILE_NAMES[fmt]

        def run(fmt=fmt, path=path):
            call_command(
                "makedhcp",
                "--format",
                fmt,
                "-o",
                str(path),
                "--boot-url",
                BOOT_URL,
                "--user",
                user.username,
                stdout=StringIO(),
            )

        seconds, _ = timed(run)
        with CaptureQueriesContext(connection) as queries:
            run()
        size = path.stat().st_size
        figure(f"makedhcp --format {fmt} -o FILE ({size / 1e6:.1f} MB)", f"{seconds:.3f}", "s")
        figure(f"  {fmt}: SQL statements", len(queries.captured_queries))
        figure(f"  {fmt}: ratio to the bare values_list + join", f"{seconds / floor:.1f}", "x")
        try:
            start = time.perf_counter()
            result = check.check(fmt, path.read_text(), timeout=600)
            figure(
                f"  {fmt}: {result.program} check of the file "
                f"({'accepted' if result.ok else 'REFUSED'})",
                f"{time.perf_counter() - start:.2f}",
                "s",
            )
        except check.CheckerMissing as exc:
            figure(f"  {fmt}: daemon check skipped ({exc})", "-")


def main():
    print(
        f"dcportal DHCP benchmark on {os.cpu_count()} CPUs, PostgreSQL "
        f"{connection.cursor().connection.server_version}",
        flush=True,
    )
    tenant = Tenant.objects.create(name="Bench", slug="bench")
    user = User.objects.create_user("bench-admin", password=None)
    Role.objects.get(name=rbac.ADMIN).users.add(user)
    load(tenant)
    floor, text = timed(bare_join)
    assert text.count("\n") == HOSTS - 1
    figure(f"bare values_list + join of {HOSTS} hosts", f"{floor:.3f}", "s")
    bench_phases(user)
    with tempfile.TemporaryDirectory(prefix="dcportal-bench-dhcp-") as directory:
        bench_makedhcp(user, floor, directory)
    print("\n| figure | value | unit |\n|---|---:|---|")
    for name, value, unit in rows:
        print(f"| {name.strip()} | {value} | {unit} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

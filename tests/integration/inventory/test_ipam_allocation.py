"""Next free address: the order it walks in, what it skips, IPv6 without enumerating, usage
figures, and real parallel allocations on their own database connections."""

import ipaddress
import threading
import time

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from inventory import ipam
from inventory.models import Interface, IPAddress, Server, Subnet
from tests.integration.inventory.ipam_helpers import field_errors

WAIT_SECONDS = 30


def allocate_all(user, subnet=None, iprange=None):
    """Allocate until the subnet (or range) is full; the addresses handed out, in order."""
    got = []
    while True:
        try:
            got.append(
                str(ipam.allocate_address(user=user, subnet=subnet, iprange=iprange).address)
            )
        except ValidationError as exc:
            assert exc.code == "full", exc
            return got


@pytest.fixture
def acme(tenants):
    return tenants[0]


@pytest.fixture
def subnet(admin_user, acme):
    return ipam.create_subnet(
        user=admin_user, network="192.0.2.0/28", tenant=acme, gateway="192.0.2.1"
    )


# Order and skipping -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_allocation_walks_up_skipping_network_gateway_and_broadcast(admin_user, subnet):
    got = allocate_all(admin_user, subnet)
    assert got == [f"192.0.2.{i}" for i in range(2, 15)]
    with pytest.raises(ValidationError) as caught:
        ipam.allocate_address(user=admin_user, subnet=subnet)
    assert caught.value.messages == ["No free address is left in the subnet 192.0.2.0/28."]


@pytest.mark.django_db
def test_allocation_fills_gaps_first(admin_user, subnet):
    for last in (2, 3, 5, 6):
        ipam.create_address(user=admin_user, address=f"192.0.2.{last}")
    first = ipam.allocate_address(user=admin_user, subnet=subnet, dns_name="a.example.com")
    second = ipam.allocate_address(user=admin_user, subnet=subnet)
    assert (str(first.address), str(second.address)) == ("192.0.2.4", "192.0.2.7")
    assert first.dns_name == "a.example.com" and first.subnet == subnet


@pytest.mark.django_db
def test_subnet_allocation_skips_dhcp_and_reserved_ranges_not_static_ones(admin_user, subnet):
    ipam.create_range(
        user=admin_user, subnet=subnet, start="192.0.2.2", end="192.0.2.4", kind="dhcp"
    )
    ipam.create_range(
        user=admin_user, subnet=subnet, start="192.0.2.8", end="192.0.2.9", kind="reserved"
    )
    ipam.create_range(
        user=admin_user, subnet=subnet, start="192.0.2.10", end="192.0.2.11", kind="static"
    )
    got = allocate_all(admin_user, subnet)
    assert got == ["192.0.2.5", "192.0.2.6", "192.0.2.7", *[f"192.0.2.{i}" for i in range(10, 15)]]


@pytest.mark.django_db
def test_range_allocation_stays_in_the_range_of_any_kind(admin_user, subnet):
    pool = ipam.create_range(
        user=admin_user, subnet=subnet, start="192.0.2.1", end="192.0.2.4", kind="dhcp"
    )
    ipam.create_address(user=admin_user, address="192.0.2.3")
    # The gateway (.1) stays out even inside a range.
    assert allocate_all(admin_user, iprange=pool) == ["192.0.2.2", "192.0.2.4"]
    with pytest.raises(ValidationError) as caught:
        ipam.allocate_address(user=admin_user, iprange=pool)
    assert caught.value.messages == ["No free address is left in the range 192.0.2.1-192.0.2.4."]
    # The rest of the subnet is untouched by the range's allocations.
    assert str(ipam.allocate_address(user=admin_user, subnet=subnet).address) == "192.0.2.5"


@pytest.mark.django_db
def test_a_range_of_another_subnet_is_refused(admin_user, subnet, acme):
    other = ipam.create_subnet(user=admin_user, network="198.51.100.0/24", tenant=acme)
    iprange = ipam.create_range(
        user=admin_user, subnet=other, start="198.51.100.10", end="198.51.100.20"
    )
    with pytest.raises(ValidationError) as caught:
        ipam.allocate_address(user=admin_user, subnet=subnet, iprange=iprange)
    assert set(field_errors(caught.value)) == {"iprange"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("network", "expected"),
    [
        ("192.0.2.0/31", ["192.0.2.0", "192.0.2.1"]),
        ("192.0.2.9/32", ["192.0.2.9"]),
        ("192.0.2.0/30", ["192.0.2.1", "192.0.2.2"]),
        ("2001:db8::/126", ["2001:db8::1", "2001:db8::2", "2001:db8::3"]),
        ("2001:db8::/127", ["2001:db8::", "2001:db8::1"]),
    ],
)
def test_small_networks(admin_user, acme, network, expected):
    small = ipam.create_subnet(user=admin_user, network=network, tenant=acme)
    assert allocate_all(admin_user, small) == expected


@pytest.mark.django_db
def test_ipv6_64_is_walked_not_enumerated(admin_user, acme):
    v6 = ipam.create_subnet(
        user=admin_user, network="2001:db8:1::/64", tenant=acme, gateway="2001:db8:1::1"
    )
    assert str(ipam.allocate_address(user=admin_user, subnet=v6).address) == "2001:db8:1::2"
    # A run of 500 taken addresses: the next free one is found in SQL, in a constant number
    # of queries, however long the run.
    IPAddress.objects.bulk_create(
        IPAddress(subnet=v6, address=ipaddress.ip_address("2001:db8:1::3") + i) for i in range(500)
    )
    with CaptureQueriesContext(connection) as captured:
        ip = ipam.allocate_address(user=admin_user, subnet=v6)
    assert str(ip.address) == "2001:db8:1::1f7"
    few = len(captured)
    IPAddress.objects.bulk_create(
        IPAddress(subnet=v6, address=ipaddress.ip_address("2001:db8:1::1f8") + i)
        for i in range(2000)
    )
    with CaptureQueriesContext(connection) as captured:
        ip = ipam.allocate_address(user=admin_user, subnet=v6)
    assert str(ip.address) == "2001:db8:1::9c8"
    assert len(captured) == few


@pytest.mark.django_db
def test_ipv6_range_at_the_top_of_a_64(admin_user, acme):
    v6 = ipam.create_subnet(user=admin_user, network="2001:db8:2::/64", tenant=acme)
    top = ipam.create_range(
        user=admin_user,
        subnet=v6,
        start="2001:db8:2::ffff:ffff:ffff:fffe",
        end="2001:db8:2::ffff:ffff:ffff:ffff",
    )
    assert allocate_all(admin_user, iprange=top) == [
        "2001:db8:2:0:ffff:ffff:ffff:fffe",
        "2001:db8:2:0:ffff:ffff:ffff:ffff",
    ]


@pytest.mark.django_db
def test_an_address_taken_behind_the_lock_is_skipped(admin_user, subnet, monkeypatch):
    """A writer that does not queue on the subnet lock (here: a raw insert slipped in between
    the search and the write) costs a retry, not a failure and not a duplicate."""
    real = ipam.next_free_address
    slipped = []

    def search_then_lose_the_race(subnet, iprange=None):
        found = real(subnet, iprange)
        if not slipped:
            IPAddress.objects.create(subnet=subnet, address=found)
            slipped.append(found)
        return found

    monkeypatch.setattr(ipam, "next_free_address", search_then_lose_the_race)
    ip = ipam.allocate_address(user=admin_user, subnet=subnet)
    assert str(slipped[0]) == "192.0.2.2"
    assert str(ip.address) == "192.0.2.3"


@pytest.mark.django_db
def test_allocation_checks_permission_tenant_and_interface(make_user, tenants, admin_user, subnet):
    acme, globex = tenants
    viewer = make_user("viewer", roles=["read-only"], tenants=[acme])
    stranger = make_user("stranger", roles=["operator"], tenants=[globex])
    with pytest.raises(PermissionDenied):
        ipam.allocate_address(user=viewer, subnet=subnet)
    with pytest.raises(PermissionDenied):
        ipam.allocate_address(user=stranger, subnet=subnet)
    server = Server.objects.create(hostname="g1.example.com", tenant=globex)
    nic = Interface.objects.create(server=server, name="eth0", mac="52:54:00:00:00:01")
    with pytest.raises(ValidationError) as caught:
        ipam.allocate_address(user=admin_user, subnet=subnet, interface=nic)
    assert set(field_errors(caught.value)) == {"interface"}
    assert not IPAddress.objects.exists()
    own = Server.objects.create(hostname="a1.example.com", tenant=acme)
    own_nic = Interface.objects.create(server=own, name="eth0", mac="52:54:00:00:00:02")
    ip = ipam.allocate_address(user=admin_user, subnet=subnet, interface=own_nic)
    assert ip.interface == own_nic


# Usage ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_subnet_usage_in_sql(admin_user, acme):
    subnet = ipam.create_subnet(user=admin_user, network="10.0.0.0/24", tenant=acme)
    pool = ipam.create_range(
        user=admin_user, subnet=subnet, start="10.0.0.100", end="10.0.0.199", kind="dhcp"
    )
    ipam.create_range(user=admin_user, subnet=subnet, start="10.0.0.200", end="10.0.0.209")
    for last in (5, 6, 100, 101, 150):
        ipam.create_address(user=admin_user, address=f"10.0.0.{last}")
    with CaptureQueriesContext(connection) as captured:
        usage = ipam.subnet_usage(subnet)
    assert len(captured) == 2
    ranges = usage.pop("ranges")
    assert usage == {"size": 254, "used": 5, "free": 249, "percent": 2.0}
    assert [(r["id"], r["size"], r["used"], r["free"], r["percent"]) for r in ranges] == [
        (pool.pk, 100, 3, 97, 3.0),
        (ranges[1]["id"], 10, 0, 10, 0.0),
    ]
    v6 = ipam.create_subnet(user=admin_user, network="2001:db8::/64", tenant=acme)
    ipam.create_address(user=admin_user, address="2001:db8::5")
    assert ipam.subnet_usage(v6)["size"] == 2**64 - 1
    assert ipam.subnet_usage(v6)["free"] == 2**64 - 2


@pytest.mark.django_db
def test_usage_of_many_subnets_is_one_query(admin_user, acme):
    for i in range(5):
        ipam.create_subnet(user=admin_user, network=f"10.{i}.0.0/24", tenant=acme)
        for j in range(i):
            ipam.create_address(user=admin_user, address=f"10.{i}.0.{j + 1}")
    with CaptureQueriesContext(connection) as captured:
        used = {str(s.network): s.used for s in ipam.with_used(Subnet.objects.all())}
    assert len(captured) == 1
    assert used == {f"10.{i}.0.0/24": i for i in range(5)}


# Real concurrency -------------------------------------------------------------------------------


class Allocator(threading.Thread):
    """One parallel client on its own database connection (Django's are per thread)."""

    def __init__(self, barrier, user, **target):
        super().__init__(daemon=True)
        self.barrier, self.user, self.target = barrier, user, target
        self.address = self.error = None

    def run(self):
        try:
            self.barrier.wait(timeout=WAIT_SECONDS)
            self.address = ipam.allocate_address(user=self.user, **self.target).address
        except ValidationError as exc:
            self.error = exc
        finally:
            connections.close_all()


def run_in_parallel(clients, user, **target):
    """Start `clients` allocations at once; (addresses got, errors)."""
    barrier = threading.Barrier(clients)
    threads = [Allocator(barrier, user, **target) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_SECONDS)
        assert not thread.is_alive()
    got = [str(t.address) for t in threads if t.address is not None]
    errors = [t.error for t in threads if t.error is not None]
    assert len(got) + len(errors) == clients
    return got, errors


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("clients", [5, 12])
def test_parallel_allocations_never_share_an_address(admin_user, tenants, clients):
    # 192.0.2.0/29 without network, broadcast and gateway: 5 addresses.
    small = ipam.create_subnet(
        user=admin_user, network="192.0.2.0/29", tenant=tenants[0], gateway="192.0.2.1"
    )
    got, errors = run_in_parallel(clients, admin_user, subnet=small)
    assert len(got) == len(set(got)) == min(clients, 5)
    assert sorted(got) == [f"192.0.2.{i}" for i in range(2, 2 + len(got))]
    assert len(errors) == clients - len(got)
    for error in errors:
        assert error.code == "full"
        assert error.messages == ["No free address is left in the subnet 192.0.2.0/29."]
    assert IPAddress.objects.filter(subnet=small).count() == len(got)


@pytest.mark.django_db(transaction=True)
def test_parallel_allocations_from_an_ipv6_range(admin_user, tenants):
    v6 = ipam.create_subnet(user=admin_user, network="2001:db8:9::/64", tenant=tenants[0])
    pool = ipam.create_range(
        user=admin_user, subnet=v6, start="2001:db8:9::a", end="2001:db8:9::d", kind="dhcp"
    )
    got, errors = run_in_parallel(8, admin_user, iprange=pool)
    assert sorted(got) == [f"2001:db8:9::{last}" for last in "abcd"]
    assert [e.messages for e in errors] == [
        ["No free address is left in the range 2001:db8:9::a-2001:db8:9::d."]
    ] * 4


def backends_waiting_on_a_lock(query_part):
    with connection.cursor() as cursor:
        # Inside a transaction PostgreSQL keeps serving its first snapshot of the statistics.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid() AND query LIKE %s",
            [f"%{query_part}%"],
        )
        return cursor.fetchone()[0]


def wait_for(predicate, what):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


class Worker(threading.Thread):
    def __init__(self, work):
        super().__init__(daemon=True)
        self.work, self.result, self.error = work, None, None

    def run(self):
        try:
            self.result = self.work()
        except ValidationError as exc:
            self.error = exc
        finally:
            connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_a_second_allocation_waits_for_the_first_to_commit(admin_user, tenants):
    subnet = ipam.create_subnet(user=admin_user, network="198.51.100.0/24", tenant=tenants[0])
    with transaction.atomic():
        first = ipam.allocate_address(user=admin_user, subnet=subnet)
        second = Worker(lambda: ipam.allocate_address(user=admin_user, subnet=subnet))
        second.start()
        # The second client is queued on the subnet's row lock, not guessing past it.
        wait_for(lambda: backends_waiting_on_a_lock("FOR UPDATE") == 1, "the lock wait")
    second.join(WAIT_SECONDS)
    assert second.error is None
    assert (str(first.address), str(second.result.address)) == ("198.51.100.1", "198.51.100.2")


@pytest.mark.django_db(transaction=True)
def test_overlap_caught_only_by_the_database_under_a_real_race(admin_user, tenants):
    """Two requests create overlapping subnets at once: the second passes every check (the first
    is not committed yet), waits on the exclusion constraint, and gets a field error."""
    acme = tenants[0]
    with transaction.atomic():
        ipam.create_subnet(user=admin_user, network="203.0.113.0/24", tenant=acme, name="first")
        second = Worker(
            lambda: ipam.create_subnet(user=admin_user, network="203.0.113.128/25", tenant=acme)
        )
        second.start()
        wait_for(lambda: backends_waiting_on_a_lock("INSERT INTO") == 1, "the constraint wait")
    second.join(WAIT_SECONDS)
    assert second.result is None
    assert field_errors(second.error) == {
        "network": ["203.0.113.128/25 overlaps the subnet 203.0.113.0/24 (first)."]
    }
    assert Subnet.objects.count() == 1

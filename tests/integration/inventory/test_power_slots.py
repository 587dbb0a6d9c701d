"""The concurrency limits of power actions: Redis counting semaphores (on the real Redis of the
power queue) that expire when their holder dies, and the parallelism they really allow when
many actions run at once (measured inside a slow test driver)."""

import threading
import time
import uuid

import pytest
from django.db import connections

from dcportal import rbac
from inventory import power_services, power_slots
from tests.integration.inventory.power_helpers import (  # noqa: F401 (fixtures)
    add_fake_bmc,
    fake_bmcs_fixture,
    make_rack,
    make_servers,
)


@pytest.fixture
def redis():
    return power_services.slot_connection()


@pytest.fixture
def key(redis):
    name = f"tests:slots:{uuid.uuid4().hex}"
    yield name
    redis.delete(name, f"{name}:rack")


def test_a_full_semaphore_makes_the_next_caller_wait_then_time_out(redis, key):
    first = power_slots.acquire(redis, {key: 2}, wait=1)
    second = power_slots.acquire(redis, {key: 2}, wait=1)
    assert power_slots.holders(redis, key) == 2

    with pytest.raises(power_slots.SlotTimeout):
        power_slots.acquire(redis, {key: 2}, wait=0.2)

    first.release()
    third = power_slots.acquire(redis, {key: 2}, wait=1)
    assert power_slots.holders(redis, key) == 2
    second.release()
    third.release()
    assert power_slots.holders(redis, key) == 0


def test_several_semaphores_are_taken_all_or_none(redis, key):
    rack = f"{key}:rack"
    held = power_slots.acquire(redis, {key: 5, rack: 1}, wait=1)

    with pytest.raises(power_slots.SlotTimeout):
        power_slots.acquire(redis, {key: 5, rack: 1}, wait=0.2)
    # The waiter did not keep a global slot while it waited for the rack's.
    assert power_slots.holders(redis, key) == 1
    held.release()


def test_a_crashed_holders_slot_lapses(redis, key):
    # A holder that never releases nor renews: what a killed process leaves behind.
    power_slots.acquire(redis, {key: 1}, wait=1, lease=0.4, renew=False)
    with pytest.raises(power_slots.SlotTimeout):
        power_slots.acquire(redis, {key: 1}, wait=0.1)

    # Within the wait, once the 0.4 s lease has lapsed (SlotTimeout otherwise).
    taken = power_slots.acquire(redis, {key: 1}, wait=5)
    taken.release()
    # The semaphore key itself expires too: an idle Redis keeps no leftovers.
    assert redis.pttl(key) > 0 or not redis.exists(key)


def test_a_live_holder_keeps_its_slot_past_the_lease(redis, key):
    held = power_slots.acquire(redis, {key: 1}, wait=1, lease=0.3)
    time.sleep(1.0)  # more than three leases: only the renewer keeps it
    assert power_slots.holders(redis, key) == 1
    with pytest.raises(power_slots.SlotTimeout):
        power_slots.acquire(redis, {key: 1}, wait=0.1)
    held.release()
    assert not held.renew()


def test_a_limit_of_zero_means_no_limit(redis, key):
    slots = [power_slots.acquire(redis, {key: 0}, wait=0.1) for _ in range(5)]
    for slot in slots:
        slot.release()


# The limits of power actions ------------------------------------------------------------------


@pytest.fixture
def racks_of_nodes(admin_user, tenants, fake_bmcs):
    """Two racks of six nodes each, behind slow fake BMCs."""
    fake_bmcs.delay = 0.1
    servers = []
    for rack_name in ("r1", "r2"):
        rack = make_rack(rack_name)
        names = [f"{rack_name}n{i}.acme.example" for i in range(1, 7)]
        for server in make_servers(admin_user, tenants[0], names, rack=rack):
            add_fake_bmc(server)
            servers.append(server)
    return servers


@pytest.mark.django_db(transaction=True)
def test_parallel_actions_stay_within_the_global_and_rack_limits(
    settings, operator, racks_of_nodes, fake_bmcs
):
    settings.POWER_MAX_PARALLEL = 3
    settings.POWER_MAX_PARALLEL_PER_RACK = 2
    results = []
    # The user's permission and tenant caches are filled once, before threads share the user.
    assert power_services.may(operator, "on") and rbac.tenant_ids(operator)

    def act(server):
        try:
            results.append(
                power_services.run_power_action(user=operator, server=server, action="on")
            )
        finally:
            connections.close_all()

    # Far more threads than slots: the semaphores alone must hold them back.
    threads = [threading.Thread(target=act, args=(server,)) for server in racks_of_nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert [r["status"] for r in results] == ["ok"] * 12
    assert 2 <= fake_bmcs.max_in_flight <= 3
    assert max(fake_bmcs.max_by_rack.values()) <= 2
    redis = power_services.slot_connection()
    assert power_slots.holders(redis, f"{power_services.SLOT_PREFIX}:global") == 0

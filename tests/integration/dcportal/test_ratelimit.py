"""dcportal.ratelimit against the real Redis of REDIS_URL: windows, lockouts, hashed keys,
atomic counting from many threads, and failing open when Redis does not answer."""

import logging
import threading
import time

import pytest
import redis
from django.conf import settings as django_settings

from dcportal import ratelimit

UNREACHABLE = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connection refused at once


@pytest.fixture(autouse=True)
def _no_counters():
    ratelimit.clear()
    yield
    ratelimit.clear()


@pytest.fixture
def server():
    return redis.Redis.from_url(django_settings.REDIS_URL)


def test_a_counter_allows_its_limit_then_refuses_until_the_window_ends(server):
    verdicts = [ratelimit.hit("t", "10.0.0.1", limit=3, window=60) for _ in range(5)]
    assert [v.allowed for v in verdicts] == [True, True, True, False, False]
    assert [v.count for v in verdicts] == [1, 2, 3, 4, 5]
    assert all(0 < v.retry_after <= 60 for v in verdicts)
    assert 0 < server.pttl(ratelimit.key("t", "10.0.0.1")) <= 60_000
    # Other values and other scopes count on their own.
    assert ratelimit.hit("t", "10.0.0.2", limit=3).allowed
    assert ratelimit.hit("u", "10.0.0.1", limit=3).allowed


def test_the_window_passes(server):
    for _ in range(2):
        ratelimit.hit("t", "a", limit=1, window=60)
    assert not ratelimit.peek("t", "a", limit=1).allowed
    server.pexpire(ratelimit.key("t", "a"), 20)  # the minute is nearly over
    time.sleep(0.05)
    assert ratelimit.peek("t", "a", limit=1).allowed
    assert ratelimit.hit("t", "a", limit=1, window=60).count == 1


def test_a_window_may_be_shorter_than_a_second(server):
    verdict = ratelimit.hit("t", "a", limit=1, window=0.25)
    assert verdict.retry_after == 1  # Retry-After is in whole seconds
    assert 0 < server.pttl(ratelimit.key("t", "a")) <= 250


def test_peek_counts_nothing():
    for _ in range(3):
        assert ratelimit.peek("t", "a", limit=1).allowed
    ratelimit.hit("t", "a", limit=1)
    locked = ratelimit.peek("t", "a", limit=1, window=60)
    assert not locked.allowed and locked.count == 1 and 0 < locked.retry_after <= 60


def test_zero_turns_a_counter_off(server):
    for _ in range(5):
        assert ratelimit.hit("t", "a", limit=0).allowed
        assert ratelimit.peek("t", "a", limit=0).allowed
    assert not server.exists(ratelimit.key("t", "a"))


def test_a_hold_counter_restarts_its_window_when_it_locks(server):
    name = ratelimit.key("t", "a")
    ratelimit.hit("t", "a", limit=3, window=600, hold=True)
    ratelimit.hit("t", "a", limit=3, window=600, hold=True)
    server.pexpire(name, 2000)  # as if the first failures were nearly ten minutes old
    verdict = ratelimit.hit("t", "a", limit=3, window=600, hold=True)
    assert verdict.count == 3 and verdict.retry_after == 600
    assert server.pttl(name) > 590_000
    # Without hold, the window keeps its end.
    ratelimit.hit("t", "b", limit=2, window=600)
    server.pexpire(ratelimit.key("t", "b"), 2000)
    ratelimit.hit("t", "b", limit=2, window=600)
    assert server.pttl(ratelimit.key("t", "b")) <= 2000


def test_a_counter_left_without_expiry_gets_one(server):
    server.set(ratelimit.key("t", "a"), 7)
    assert ratelimit.hit("t", "a", limit=100, window=60).count == 8
    assert 0 < server.pttl(ratelimit.key("t", "a")) <= 60_000


def test_keys_hold_no_request_input(server):
    value = "52:54:00:ab:cd:ef\r\nFLUSHALL *"
    ratelimit.hit(ratelimit.MAC, value, limit=5)
    (name,) = list(server.scan_iter(match=ratelimit.KEY_PREFIX + "*"))
    name = name.decode()
    assert name.startswith(f"{ratelimit.KEY_PREFIX}{ratelimit.MAC}:")
    digest = name.rsplit(":", 1)[1]
    assert len(digest) == 32 and int(digest, 16) >= 0
    assert "52:54" not in name and "FLUSH" not in name


def test_counting_is_atomic_across_threads():
    def worker():
        for _ in range(50):
            ratelimit.hit("t", "shared", limit=10_000, window=60)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ratelimit.peek("t", "shared", limit=10_000).count == 400


def test_reset_and_clear(server):
    ratelimit.hit("t", "a", limit=1)
    ratelimit.hit("t", "b", limit=1)
    server.set("dcportal:something-else", 1)
    try:
        ratelimit.reset("t", "a")
        assert ratelimit.peek("t", "a", limit=1).allowed
        assert not ratelimit.peek("t", "b", limit=1).allowed
        ratelimit.clear()
        assert ratelimit.peek("t", "b", limit=1).allowed
        assert server.exists("dcportal:something-else")  # only rate-limit counters go
    finally:
        server.delete("dcportal:something-else")


def test_a_lockout_is_logged_once(caplog):
    with caplog.at_level(logging.WARNING, logger="dcportal.ratelimit"):
        verdicts = [
            ratelimit.count_failure("t", "10.1.2.3", limit=3, window=60, what="refused tokens")
            for _ in range(6)
        ]
    assert [v.allowed for v in verdicts] == [True, True, True, False, False, False]
    locked = [r for r in caplog.records if "locked out" in r.getMessage()]
    assert len(locked) == 1
    assert "10.1.2.3" in locked[0].getMessage() and "3 refused tokens" in locked[0].getMessage()


def test_without_redis_everything_is_allowed_with_one_warning(settings, caplog):
    settings.REDIS_URL = UNREACHABLE
    with caplog.at_level(logging.WARNING, logger="dcportal.ratelimit"):
        for _ in range(5):
            assert ratelimit.hit("t", "a", limit=1).allowed
            assert ratelimit.peek("t", "a", limit=1).allowed
            assert ratelimit.count_failure("t", "a", limit=1, window=60, what="x").allowed
            ratelimit.reset("t", "a")
    warnings = [r for r in caplog.records if "Redis does not answer" in r.getMessage()]
    # Redis is left alone for a while after it failed: one warning, not one per call.
    assert len(warnings) == 1


def test_the_429_answer():
    response = ratelimit.too_many(ratelimit.Verdict(False, 9, 42, "Slow down."))
    assert response.status_code == 429
    assert response["Retry-After"] == "42"
    assert response["Cache-Control"] == "no-store"
    assert response.content == b"Slow down.\n"

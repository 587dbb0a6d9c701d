"""Counting semaphores in Redis that bound how many BMCs are talked to at once.

Every process that runs power actions (RQ workers on any machine, a `manage.py rpower` run)
takes its slot here, so the limits hold across all of them. A slot is a member of a sorted set
scored by its expiry time: a holder renews it while it works (one renewer thread per process),
and a process that crashed stops renewing, so its slots lapse after LEASE seconds instead of
being held forever. Several semaphores (the global one and the rack's) are taken in one Lua
script, all or none, so a holder never sits on one slot while it waits for another.

Pure Redis: no ORM here; the caller picks the keys and limits.
"""

import logging
import os
import random
import threading
import time
import uuid
import weakref

logger = logging.getLogger(__name__)

LEASE = 30.0  # seconds a slot lives without renewal; renewed every LEASE / 3
POLL_MIN, POLL_MAX = 0.02, 0.5  # seconds between tries while waiting for a slot

# KEYS: the semaphores; ARGV: token, lease in ms, then one limit per key (0 or less: no limit).
# Redis' own clock decides expiry, so the clocks of the machines holding slots do not matter.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local limit = tonumber(ARGV[i + 2])
  if limit > 0 and redis.call('ZCARD', key) >= limit then
    return 0
  end
end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + lease, ARGV[1])
  redis.call('PEXPIRE', key, lease * 2)
end
return 1
"""

# Extends the token's expiry in every key that still holds it; 0 if it had already lapsed.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
local held = 1
for i, key in ipairs(KEYS) do
  local score = redis.call('ZSCORE', key, ARGV[1])
  if score and tonumber(score) > now then
    redis.call('ZADD', key, now + lease, ARGV[1])
    redis.call('PEXPIRE', key, lease * 2)
  else
    held = 0
  end
end
return held
"""


class SlotTimeout(Exception):
    """No slot became free within the wait."""


class Slot:
    """Held slots of one or more semaphores; release() (or leaving the `with`) gives them back."""

    def __init__(self, connection, keys, token, lease):
        self.connection, self.keys, self.token, self.lease = connection, tuple(keys), token, lease
        self.released = False

    def renew(self):
        """Push the expiry LEASE further; False if the slot had lapsed (it is not re-taken)."""
        if self.released:
            return False
        return bool(
            self.connection.eval(_RENEW, len(self.keys), *self.keys, self.token, _ms(self.lease))
        )

    def release(self):
        if self.released:
            return
        self.released = True
        _renewer.forget(self)
        pipe = self.connection.pipeline()
        for key in self.keys:
            pipe.zrem(key, self.token)
        pipe.execute()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False


def acquire(connection, limits, *, wait, lease=LEASE, renew=True):
    """Take one slot in each semaphore of `limits` ({key: limit}) at once, waiting up to `wait`
    seconds. Returns a Slot; raises SlotTimeout. `renew=False` leaves the slot to lapse after
    `lease` seconds unless renewed by hand (tests use it to play a crashed holder)."""
    keys = list(limits)
    args = [_ms(lease), *(int(limits[key]) for key in keys)]
    token = uuid.uuid4().hex
    deadline = time.monotonic() + wait
    pause = POLL_MIN
    while True:
        if connection.eval(_ACQUIRE, len(keys), *keys, token, *args):
            slot = Slot(connection, keys, token, lease)
            if renew:
                _renewer.add(slot)
            return slot
        left = deadline - time.monotonic()
        if left <= 0:
            raise SlotTimeout(f"no free slot within {wait:g} s")
        # Jitter keeps many waiters from retrying in lock step.
        time.sleep(min(left, pause * random.uniform(0.5, 1.0)))  # noqa: S311
        pause = min(POLL_MAX, pause * 2)


def holders(connection, key):
    """How many live slots a semaphore has right now (expired ones do not count)."""
    now_s, now_us = connection.time()
    now = now_s * 1000 + now_us // 1000
    return connection.zcount(key, f"({now}", "+inf")


def _ms(seconds):
    return max(1, int(seconds * 1000))


class _Renewer:
    """One daemon thread per process renews every held slot; it dies with the process, which is
    the point: a dead process's slots lapse."""

    def __init__(self):
        self._slots = weakref.WeakSet()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None
        self._pid = None

    def add(self, slot):
        with self._lock:
            self._slots.add(slot)
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()
                self._wake = threading.Event()
                self._thread = threading.Thread(
                    target=self._run, name="power-slot-renewer", daemon=True
                )
                self._thread.start()
        self._wake.set()  # a shorter lease than the current sleep must not lapse

    def forget(self, slot):
        with self._lock:
            self._slots.discard(slot)

    def _run(self):
        last = time.monotonic()
        while True:
            with self._lock:
                slots = list(self._slots)
            interval = min((slot.lease for slot in slots), default=LEASE) / 3
            # Measured from the last round, so a steady stream of new slots (each one wakes
            # this thread) cannot postpone the renewal of the older ones.
            if self._wake.wait(max(0.0, last + interval - time.monotonic())):
                self._wake.clear()
                continue
            last = time.monotonic()
            for slot in slots:
                try:
                    if not slot.released and not slot.renew():
                        logger.warning("a power slot lapsed before it was renewed: %s", slot.keys)
                except Exception:  # a Redis hiccup must not kill the renewer for everyone
                    logger.exception("renewing a power slot failed")

    def reset_after_fork(self):
        # A forked child (an RQ work horse) has none of the parent's threads, and a lock the
        # parent's renewer held at the fork would stay locked forever: start afresh.
        self._slots = weakref.WeakSet()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None
        self._pid = None


_renewer = _Renewer()
os.register_at_fork(after_in_child=_renewer.reset_after_fork)

"""Rate limits and lockouts, counted in Redis: one place for every "too many" of the portal.

Two kinds of counter share one mechanism (a fixed window per key):

- request rates of the public endpoints (boot scripts, install callbacks, /pki/, the inventory
  agent and its register call): per source address (settings.BOOT_RATE_PER_SOURCE a minute)
  and per MAC or per build token (settings.BOOT_RATE_PER_MAC a minute);
- failures that lock a source out: refused tokens of every kind (build, enrolment, API;
  settings.TOKEN_MAX_FAILURES within settings.TOKEN_LOCKOUT_SECONDS) and failed log-ins. Once
  locked, even a valid token is refused until the lockout ends: guessing is pointless.

Counting is one Lua script (INCR, and PEXPIRE when the key is new), so concurrent web processes
never lose a count or leave a key without expiry; its answer carries the time left, which
becomes Retry-After. The Django cache would need add+incr+set in three round trips and cannot
say how long a key has left. Keys hold a SHA-256 of the counted value, never the value itself.

A fixed window lets a client send up to twice the limit across a window boundary; that is
enough here (the limits stop floods and guessing, not fair sharing), and it costs one key.

When Redis does not answer, nothing is counted and everything is allowed (machines must still
boot), with a warning in the log; Redis is then left alone for a few seconds so that each
request does not wait for it again.
"""

import hashlib
import logging
import math
import threading
import time
from dataclasses import dataclass, replace
from functools import wraps

import redis
from django.conf import settings
from django.http import HttpResponse

from dcportal.middleware import client_address

logger = logging.getLogger(__name__)

KEY_PREFIX = "dcportal:ratelimit:"
RATE_WINDOW = 60  # the boot rates are per minute
# Seconds to wait for Redis before the request goes ahead uncounted (connecting, answering):
# long enough for a busy Redis, short enough for a firmware's HTTP timeout.
CONNECT_TIMEOUT = 1.0
TIMEOUT = 2.0
RETRY_AFTER_OUTAGE = 5.0  # seconds Redis is not asked again after it failed to answer

# Scopes: constants of the code, never request input (that is only ever hashed into a key).
SOURCE = "source"
MAC = "mac"
BUILD = "build"
REFUSALS = "refused-tokens"  # per source address

# KEYS[1]: the counter; ARGV[1]: the window (ms); ARGV[2]: the count that restarts the window
# (a lockout lasts a whole window from the failure that reached the limit), 0 for none.
_HIT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 or count == tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""


@dataclass(frozen=True)
class Verdict:
    """The state of one counter: `allowed` is False over the limit; `retry_after` is the number
    of seconds until the counter's window ends (0 when nothing was counted)."""

    allowed: bool
    count: int = 0
    retry_after: int = 0
    message: str = "Too many requests; try again later."


ALLOWED = Verdict(True)


class _Redis:
    """A client per Redis URL, and the time until which an unanswering one is left alone."""

    def __init__(self):
        self._lock = threading.Lock()
        self._clients = {}
        self._down_until = {}

    def client(self):
        url = settings.REDIS_URL
        if self._down_until.get(url, 0.0) > time.monotonic():
            return None, url
        with self._lock:
            entry = self._clients.get(url)
            if entry is None:
                client = redis.Redis.from_url(
                    url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=TIMEOUT
                )
                entry = self._clients[url] = (client, client.register_script(_HIT))
        return entry, url

    def failed(self, url, exc):
        self._down_until[url] = time.monotonic() + RETRY_AFTER_OUTAGE
        logger.warning("Rate limits are not counted: Redis does not answer (%s); allowing.", exc)


_redis = _Redis()


def key(scope, value):
    digest = hashlib.sha256(f"{scope}\0{value}".encode(errors="replace")).hexdigest()[:32]
    return f"{KEY_PREFIX}{scope}:{digest}"


def _seconds(ms, window):
    return max(1, math.ceil((ms if ms > 0 else window * 1000) / 1000))


def hit(scope, value, *, limit, window=RATE_WINDOW, hold=False):
    """Count one event of `value` in `scope`; allowed while at most `limit` in `window` seconds.

    `limit` 0 (or less) turns the counter off. With `hold`, the window restarts when the count
    reaches `limit`, so what is refused stays refused for a whole window from then.
    """
    if limit <= 0:
        return ALLOWED
    entry, url = _redis.client()
    if entry is None:
        return ALLOWED
    _, script = entry
    try:
        count, ttl = script(
            keys=[key(scope, value)], args=[int(window * 1000), limit if hold else 0]
        )
    except redis.RedisError as exc:
        _redis.failed(url, exc)
        return ALLOWED
    return Verdict(count <= limit, count, _seconds(ttl, window))


def peek(scope, value, *, limit, window=RATE_WINDOW):
    """Whether `value` may go on without counting anything: refused once `limit` were counted."""
    if limit <= 0:
        return ALLOWED
    entry, url = _redis.client()
    if entry is None:
        return ALLOWED
    client, _ = entry
    name = key(scope, value)
    try:
        with client.pipeline() as pipe:
            count, ttl = pipe.get(name).pttl(name).execute()
    except redis.RedisError as exc:
        _redis.failed(url, exc)
        return ALLOWED
    count = int(count or 0)
    return Verdict(count < limit, count, _seconds(ttl, window) if count else 0)


def reset(scope, value):
    """Forget the counter of `value` (a successful log-in clears its account's failures)."""
    entry, url = _redis.client()
    if entry is None:
        return
    try:
        entry[0].delete(key(scope, value))
    except redis.RedisError as exc:
        _redis.failed(url, exc)


def clear():
    """Forget every counter: all rates start over and every lockout is lifted."""
    entry, _ = _redis.client()
    if entry is None:
        return
    client, _ = entry
    names = list(client.scan_iter(match=KEY_PREFIX + "*", count=1000))
    if names:
        client.delete(*names)


def count_failure(scope, value, *, limit, window, what):
    """Count one failure of `value`; the one that reaches `limit` locks it out for `window`
    seconds and is logged (once per lockout, whatever number of requests follow)."""
    verdict = hit(scope, value, limit=limit, window=window, hold=True)
    if verdict.count == limit:
        logger.warning(
            "%s locked out for %d s after %d %s.", value, verdict.retry_after, limit, what
        )
    return verdict


# Refused tokens ---------------------------------------------------------------------------------

LOCKED_OUT = "Too many refused tokens from this address; try again later."


def token_lockout(request):
    """Whether the request's source may present a token at all (it may, unless locked out)."""
    verdict = peek(
        REFUSALS,
        client_address(request),
        limit=settings.TOKEN_MAX_FAILURES,
        window=settings.TOKEN_LOCKOUT_SECONDS,
    )
    return verdict if verdict.allowed else replace(verdict, message=LOCKED_OUT)


def refused_token(request):
    """Count a refused build, enrolment or API token against the request's source."""
    count_failure(
        REFUSALS,
        client_address(request),
        limit=settings.TOKEN_MAX_FAILURES,
        window=settings.TOKEN_LOCKOUT_SECONDS,
        what="refused tokens",
    )


# The public endpoints ---------------------------------------------------------------------------


def check(request, *, mac=None, build=None, token=False):
    """The refusing Verdict of a request to a public endpoint, or None when it may go on.

    Counts the request against its source, its MAC (a per-MAC boot script) and its build token
    (a token-bound endpoint); `token`: the request presents a token, refused outright while its
    source is locked out.
    """
    source = client_address(request)
    if token:
        verdict = token_lockout(request)
        if not verdict.allowed:
            return verdict
    counters = [(SOURCE, source, settings.BOOT_RATE_PER_SOURCE)]
    if mac:
        counters.append((MAC, mac.lower(), settings.BOOT_RATE_PER_MAC))
    if build:
        counters.append((BUILD, build, settings.BOOT_RATE_PER_MAC))
    for scope, value, limit in counters:
        verdict = hit(scope, value, limit=limit)
        if not verdict.allowed:
            return verdict
    return None


def too_many(verdict):
    """The 429 answer for a refusing Verdict, with Retry-After."""
    response = HttpResponse(
        f"{verdict.message}\n", status=429, content_type="text/plain; charset=utf-8"
    )
    response["Retry-After"] = str(verdict.retry_after)
    response["Cache-Control"] = "no-store"
    return response


def limited(view):
    """A public view limited per source address only (nothing in it names a MAC or a token)."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        verdict = check(request)
        if verdict is not None:
            return too_many(verdict)
        return view(request, *args, **kwargs)

    return wrapped

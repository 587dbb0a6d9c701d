"""Retries with backoff and a deadline, for the callers of power drivers (drivers stay simple).

Deadlines are absolute readings of `clock` (time.monotonic by default), so one deadline can be
shared by several steps of one job: ``deadline = deadline_in(60)``, then
``call_with_retry(driver.on, deadline=deadline)`` and ``wait_for_state(driver, ON, deadline)``.

Every attempt that starts does so no later than the deadline; an attempt in flight is bounded by
the driver's own per-call timeout, so the whole can overrun the deadline by at most one call.
"""

import random
import time

from inventory.power.base import FatalPowerError, PowerState, RetryablePowerError


def deadline_in(seconds, *, clock=time.monotonic):
    """The deadline `seconds` from now, on `clock`."""
    return clock() + seconds


class RetriesExhausted(RetryablePowerError):
    """The last RetryablePowerError, after the deadline passed; says how often and how long."""

    def __init__(self, message, *, attempts, elapsed, last_error):
        super().__init__(message)
        self.attempts = attempts
        self.elapsed = elapsed
        self.last_error = last_error


def call_with_retry(
    fn,
    *,
    deadline,
    first_delay=0.5,
    max_delay=5,
    jitter=0.1,
    sleep=time.sleep,
    clock=time.monotonic,
    on_retry=None,
):
    """Call fn() until it returns, retrying RetryablePowerError with exponential backoff.

    The delay starts at `first_delay` seconds and doubles up to `max_delay`, each stretched by a
    random fraction of at most `jitter` (so that many workers do not retry in step), and never
    sleeps past the deadline. At least one attempt is always made. FatalPowerError (and any other
    exception) passes through at once. When the deadline has passed, raises RetriesExhausted (a
    RetryablePowerError) whose message gives the number of attempts, the time spent and the last
    error. `on_retry(attempt, error, delay)` is called before each sleep, e.g. for a job log.
    """
    start = clock()
    attempt = 0
    delay = first_delay
    while True:
        attempt += 1
        try:
            return fn()
        except FatalPowerError:
            raise
        except RetryablePowerError as error:
            now = clock()
            remaining = deadline - now
            if remaining <= 0:
                elapsed = now - start
                noun = "attempt" if attempt == 1 else "attempts"
                raise RetriesExhausted(
                    f"Gave up after {attempt} {noun} over {elapsed:.1f} s: {error}",
                    attempts=attempt,
                    elapsed=elapsed,
                    last_error=error,
                ) from error
            pause = min(delay * (1 + jitter * random.random()), remaining)  # noqa: S311
            if on_retry is not None:
                on_retry(attempt, error, pause)
            sleep(pause)
            delay = min(delay * 2, max_delay)


def wait_for_state(
    driver,
    state,
    deadline,
    *,
    interval=1.0,
    sleep=time.sleep,
    clock=time.monotonic,
):
    """Poll driver.status() until it reports `state`; return the number of seconds waited.

    For BMCs whose power changes land a while after the request was accepted (Redfish services
    typically, and IPMI power cycles). Retryable errors while polling are tolerated (a BMC may be
    busy while the machine changes state) and polling goes on; fatal ones pass through. When the
    deadline passes, raises RetryablePowerError saying what the BMC reported last.
    """
    state = PowerState(state)
    start = clock()
    polls = 0
    last = None
    while True:
        polls += 1
        try:
            last = driver.status()
        except FatalPowerError:
            raise
        except RetryablePowerError as error:
            last = error
        if last == state:
            return clock() - start
        now = clock()
        if now >= deadline:
            elapsed = now - start
            if isinstance(last, RetryablePowerError):
                seen = f"the last status query failed: {last}"
            else:
                seen = f"it still reports {last}"
            raise RetryablePowerError(
                f"{driver.target} did not reach power state {state} within {elapsed:.1f} s "
                f"({polls} status queries); {seen}"
            )
        sleep(min(interval, deadline - now))

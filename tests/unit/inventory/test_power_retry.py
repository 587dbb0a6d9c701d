"""inventory.power.retry with a fake clock: backoff, deadline, fatal errors, waiting for a state."""

import pytest

from inventory.power.base import BmcTarget, FatalPowerError, PowerState, RetryablePowerError
from inventory.power.retry import RetriesExhausted, call_with_retry, deadline_in, wait_for_state


class FakeClock:
    """time.monotonic and time.sleep in one: sleeping moves the clock on."""

    def __init__(self, now=1000.0):
        self.now = now
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


class Flaky:
    """Fails with the given errors in turn, then returns "done"; each call may take time."""

    def __init__(self, clock, errors, *, takes=0.0):
        self.clock = clock
        self.errors = list(errors)
        self.takes = takes
        self.calls = 0

    def __call__(self):
        self.calls += 1
        self.clock.now += self.takes
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def retry(fn, clock, deadline, **kwargs):
    return call_with_retry(fn, deadline=deadline, sleep=clock.sleep, clock=clock, **kwargs)


def test_success_at_once_does_not_sleep():
    clock = FakeClock()
    fn = Flaky(clock, [])
    assert retry(fn, clock, clock() + 10) == "done"
    assert fn.calls == 1 and clock.sleeps == []


def test_retryable_errors_back_off_exponentially_up_to_max_delay():
    clock = FakeClock()
    fn = Flaky(clock, [RetryablePowerError("busy")] * 6)
    seen = []
    result = retry(
        fn,
        clock,
        clock() + 100,
        first_delay=0.5,
        max_delay=5,
        jitter=0,
        on_retry=lambda attempt, error, delay: seen.append((attempt, str(error), delay)),
    )
    assert result == "done"
    assert fn.calls == 7
    assert clock.sleeps == [0.5, 1, 2, 4, 5, 5]
    assert seen[0] == (1, "busy", 0.5) and seen[-1][0] == 6


def test_jitter_stretches_each_delay_a_little():
    clock = FakeClock()
    fn = Flaky(clock, [RetryablePowerError("busy")] * 4)
    retry(fn, clock, clock() + 100, first_delay=1, max_delay=8, jitter=0.1)
    for slept, base in zip(clock.sleeps, [1, 2, 4, 8], strict=True):
        assert base <= slept <= base * 1.1


def test_gives_up_at_the_deadline_saying_how_often_and_how_long():
    clock = FakeClock()
    start = clock()
    fn = Flaky(clock, [RetryablePowerError("BMC 10.0.0.5:623 did not answer")] * 100, takes=1.0)
    with pytest.raises(RetriesExhausted) as caught:
        retry(fn, clock, start + 10, first_delay=0.5, max_delay=5, jitter=0)
    error = caught.value
    assert isinstance(error, RetryablePowerError)
    # attempts start at 0, 1.5, 3.5, 6.5 and 10 (the last sleep is cut to end at the deadline)
    assert error.attempts == fn.calls == 5
    assert clock.sleeps == [0.5, 1, 2, 2.5]
    assert error.elapsed == pytest.approx(11.0)
    assert str(error) == ("Gave up after 5 attempts over 11.0 s: BMC 10.0.0.5:623 did not answer")
    assert isinstance(error.last_error, RetryablePowerError)
    assert error.__cause__ is error.last_error


def test_never_sleeps_past_the_deadline_and_always_tries_once():
    clock = FakeClock()
    fn = Flaky(clock, [RetryablePowerError("down")] * 10)
    with pytest.raises(RetriesExhausted) as caught:
        retry(fn, clock, clock() - 5)  # already past: one attempt, no sleep
    assert fn.calls == 1 and clock.sleeps == []
    assert str(caught.value).startswith("Gave up after 1 attempt over 0.0 s: down")

    clock = FakeClock()
    fn = Flaky(clock, [RetryablePowerError("down")] * 10)
    with pytest.raises(RetriesExhausted):
        retry(fn, clock, clock() + 0.2, first_delay=0.5, jitter=0)
    assert clock.sleeps == [pytest.approx(0.2)]
    assert fn.calls == 2


def test_fatal_errors_pass_through_at_once():
    clock = FakeClock()
    fn = Flaky(clock, [RetryablePowerError("busy"), FatalPowerError("refused the credentials")])
    with pytest.raises(FatalPowerError, match="refused the credentials") as caught:
        retry(fn, clock, clock() + 100, jitter=0)
    assert not isinstance(caught.value, RetryablePowerError)
    assert fn.calls == 2 and clock.sleeps == [0.5]


def test_other_exceptions_are_not_retried():
    clock = FakeClock()
    fn = Flaky(clock, [KeyError("bug")])
    with pytest.raises(KeyError):
        retry(fn, clock, clock() + 100)
    assert fn.calls == 1


def test_deadline_in():
    clock = FakeClock(50)
    assert deadline_in(7, clock=clock) == 57


class FakeDriver:
    """status() answers from a script; a script entry may be an exception to raise."""

    target = BmcTarget(address="10.0.0.9", port=623, label="node9")

    def __init__(self, clock, script, *, takes=0.1):
        self.clock = clock
        self.script = list(script)
        self.takes = takes
        self.polls = 0

    def status(self):
        self.polls += 1
        self.clock.now += self.takes
        answer = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def wait(driver, state, clock, deadline, **kwargs):
    return wait_for_state(driver, state, deadline, sleep=clock.sleep, clock=clock, **kwargs)


def test_wait_for_state_polls_until_the_state_lands():
    clock = FakeClock()
    driver = FakeDriver(clock, [PowerState.OFF, PowerState.OFF, PowerState.ON])
    waited = wait(driver, "on", clock, clock() + 30, interval=1.0)
    assert driver.polls == 3
    assert clock.sleeps == [1.0, 1.0]
    assert waited == pytest.approx(2.3)


def test_wait_for_state_returns_at_once_when_already_there():
    clock = FakeClock()
    driver = FakeDriver(clock, [PowerState.OFF])
    assert wait(driver, PowerState.OFF, clock, clock() + 30) == pytest.approx(0.1)
    assert clock.sleeps == []


def test_wait_for_state_rides_out_retryable_errors_but_not_fatal_ones():
    clock = FakeClock()
    busy = RetryablePowerError("busy")
    driver = FakeDriver(clock, [busy, PowerState.UNKNOWN, busy, PowerState.ON])
    wait(driver, "on", clock, clock() + 30, interval=0.5)
    assert driver.polls == 4

    driver = FakeDriver(clock, [PowerState.OFF, FatalPowerError("refused the credentials")])
    with pytest.raises(FatalPowerError, match="credentials"):
        wait(driver, "on", clock, clock() + 30)
    assert driver.polls == 2


def test_wait_for_state_gives_up_at_the_deadline_saying_what_it_saw():
    clock = FakeClock()
    driver = FakeDriver(clock, [PowerState.OFF], takes=0)
    with pytest.raises(RetryablePowerError) as caught:
        wait(driver, "on", clock, clock() + 5, interval=2.0)
    assert clock.sleeps == [2.0, 2.0, 1.0]  # the last sleep ends at the deadline
    assert str(caught.value) == (
        "node9 (BMC 10.0.0.9:623) did not reach power state on within 5.0 s "
        "(4 status queries); it still reports off"
    )

    driver = FakeDriver(clock, [RetryablePowerError("BMC 10.0.0.9:623 did not answer")], takes=0)
    with pytest.raises(RetryablePowerError, match="the last status query failed: BMC 10.0.0.9"):
        wait(driver, "off", clock, clock() + 1)

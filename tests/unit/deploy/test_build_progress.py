"""What a rinstall job shows for each stage of a build, and the fields nodeset writes."""

from datetime import UTC, datetime

import pytest

from deploy import services

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("stage", "percent", "expected"),
    [
        ("", 0, 10),
        ("waiting", 0, 10),
        ("booted", 0, 20),
        ("template", 0, 40),
        ("installing", 0, 40),
        ("installing", 50, 67),
        ("installing", 100, 95),
        ("installing", 250, 95),
        ("installing", None, 40),
        ("done", 0, 100),
    ],
)
def test_job_progress(stage, percent, expected):
    assert services.job_progress(stage, percent) == expected


def test_progress_never_goes_back_through_the_stages():
    order = ["waiting", "booted", "template", "installing", "done"]
    values = [services.job_progress(stage, 0) for stage in order]
    assert values == sorted(values)


def building(**changes):
    values = dict(services._DEFAULTS, next_boot="install", state="building", stage="installing")
    values.update(progress=55, token_nonce="n", token_hash="h", job=7, profile=3, **changes)
    return values


def test_install_starts_a_fresh_build(settings):
    settings.BUILD_TOKEN_HOURS = 1
    after = services._nodeset_values(building(error="old"), "install", None, NOW)
    assert (after["state"], after["stage"], after["progress"], after["error"]) == (
        "building",
        "waiting",
        0,
        "",
    )
    assert after["token_nonce"] not in ("", "n") and after["token_hash"] not in ("", "h")
    assert (after["job"], after["build_started"], after["booted"]) == (None, NOW, None)
    assert after["profile"] == 3  # kept when none is given


@pytest.mark.parametrize("mode", ["localboot", "rescue", "discovery"])
def test_other_modes_cancel_a_build_and_burn_its_token(mode):
    after = services._nodeset_values(building(), mode, None, NOW)
    assert (after["next_boot"], after["state"], after["stage"], after["progress"]) == (
        mode,
        "idle",
        "",
        0,
    )
    assert (after["token_nonce"], after["token_hash"], after["token_expires"]) == ("", "", None)
    assert after["job"] is None and after["profile"] == 3


def test_other_modes_keep_a_finished_state():
    for state in ("deployed", "failed", "idle"):
        before = building(state=state, stage="done", message="kept")
        after = services._nodeset_values(before, "localboot", None, NOW)
        assert (after["state"], after["stage"], after["message"]) == (state, "done", "kept")

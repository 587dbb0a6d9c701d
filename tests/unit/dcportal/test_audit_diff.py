"""audit.diff / audit._plain and SecretStr: pure functions, no database."""

import copy
import datetime
import decimal
import ipaddress
import json
import pickle
import uuid

import pytest

from dcportal import audit
from dcportal.models import ApiToken, Credential, Tenant, User
from dcportal.secrets import REDACTED, SecretStr

PLAIN = "hunter2-unit-plaintext"


# diff -----------------------------------------------------------------------------------------


def test_diff_lists_only_changed_fields():
    before = {"name": "a", "kind": "password", "username": "root", "description": ""}
    after = {"name": "b", "kind": "password", "username": "admin", "description": ""}

    assert audit.diff(Tenant, before, after) == {
        "name": ["a", "b"],
        "username": ["root", "admin"],
    }


def test_diff_of_identical_snapshots_is_empty():
    snap = {"name": "a", "members": [1, 2], "created": datetime.datetime(2025, 1, 1)}

    assert audit.diff(Tenant, snap, dict(snap)) == {}


def test_diff_covers_fields_present_on_one_side_only():
    # A create diffs against {}, a delete against {}: every field shows up with None opposite.
    assert audit.diff(Tenant, {}, {"name": "x"}) == {"name": [None, "x"]}
    assert audit.diff(Tenant, {"name": "x"}, {}) == {"name": ["x", None]}


def test_diff_keeps_none_as_none():
    assert audit.diff(Tenant, {"description": None}, {"description": "d"}) == {
        "description": [None, "d"]
    }


def test_encrypted_field_values_are_redacted_on_both_sides():
    changes = audit.diff(Credential, {"secret": SecretStr(PLAIN)}, {"secret": SecretStr("new")})

    assert changes == {"secret": [REDACTED, REDACTED]}
    assert PLAIN not in json.dumps(changes)


def test_encrypted_field_set_from_plain_string_is_redacted():
    # A service assigns the clear text (a str, not yet a SecretStr) before saving.
    changes = audit.diff(Credential, {"secret": None}, {"secret": PLAIN})

    assert changes == {"secret": [None, REDACTED]}


def test_redacted_field_removed_shows_none():
    assert audit.diff(Credential, {"secret": SecretStr(PLAIN)}, {}) == {"secret": [REDACTED, None]}


def test_unchanged_secret_is_not_reported():
    assert audit.diff(Credential, {"secret": SecretStr(PLAIN)}, {"secret": SecretStr(PLAIN)}) == {}


@pytest.mark.parametrize(
    ("model", "field"),
    [(User, "password"), (ApiToken, "key_hash"), (Tenant, "password"), (Tenant, "private_key")],
)
def test_fields_named_like_secrets_are_redacted(model, field):
    changes = audit.diff(model, {field: "old-" + PLAIN}, {field: "new-" + PLAIN})

    assert changes == {field: [REDACTED, REDACTED]}


def test_auto_now_timestamp_alone_is_not_a_change():
    # `updated` moves on every save; by itself it must not make a no-op update look like one.
    t0 = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    before = {"name": "a", "updated": t0}
    after = {"name": "a", "updated": t0 + datetime.timedelta(seconds=5)}

    assert audit.diff(Credential, before, after) == {}


# _plain ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (True, True),
        (3, 3),
        (1.5, 1.5),
        ("text", "text"),
        (datetime.datetime(2025, 3, 4, 5, 6, 7), "2025-03-04T05:06:07"),
        (datetime.date(2025, 3, 4), "2025-03-04"),
        (datetime.time(5, 6), "05:06:00"),
        (datetime.timedelta(minutes=2), 120.0),
        (decimal.Decimal("1.10"), "1.10"),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (ipaddress.ip_address("192.0.2.1"), "192.0.2.1"),
        (ipaddress.ip_network("2001:db8::/32"), "2001:db8::/32"),
        ((1, 2), [1, 2]),
        ({1: "a"}, {"1": "a"}),
    ],
)
def test_plain_makes_json_values(value, expected):
    plain = audit._plain(value)

    assert plain == expected
    json.dumps(plain)


def test_plain_redacts_secrets_wherever_they_are_nested():
    value = {"outer": [SecretStr(PLAIN), {"inner": SecretStr(PLAIN)}], "top": SecretStr(PLAIN)}

    plain = audit._plain(value)

    assert plain == {"outer": [REDACTED, {"inner": REDACTED}], "top": REDACTED}
    assert PLAIN not in json.dumps(plain)


# SecretStr ------------------------------------------------------------------------------------


def test_secret_str_never_prints_its_value():
    secret = SecretStr(PLAIN)

    for shown in (
        str(secret),
        repr(secret),
        f"{secret}",
        f"{secret!r}",
        "%s" % secret,  # noqa: UP031  (the logging module formats this way)
        str([secret]),
        str({"k": secret}),
    ):
        assert PLAIN not in shown
        assert REDACTED in shown


def test_secret_str_reveals_on_request():
    assert SecretStr(PLAIN).reveal() == PLAIN
    # Wrapping a SecretStr must not nest (or stringify it to the redaction marker).
    assert SecretStr(SecretStr(PLAIN)).reveal() == PLAIN


def test_secret_str_is_not_json_serializable():
    with pytest.raises(TypeError):
        json.dumps({"secret": SecretStr(PLAIN)})


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_secret_str_refuses_pickling(protocol):
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(SecretStr(PLAIN), protocol=protocol)


def test_secret_str_refuses_copying_through_reduce():
    # copy uses the pickle protocol; refusing it is the price of never pickling.
    with pytest.raises(TypeError):
        copy.deepcopy({"secret": SecretStr(PLAIN)})


def test_secret_str_equality_and_truth():
    assert SecretStr(PLAIN) == SecretStr(PLAIN)
    assert SecretStr(PLAIN) != SecretStr("other")
    # Comparing with the clear text must not confirm a guess.
    assert SecretStr(PLAIN) != PLAIN
    assert bool(SecretStr(PLAIN))
    assert not SecretStr("")

"""Every bearer secret (build, enrolment and API tokens) is checked the same way: the row is
found by a hash of the token (or by the key's public prefix), never by the secret itself, and
the stored hash is compared with hmac.compare_digest, also when no row matched, so a wrong
token takes the same steps whatever it shares with a real one. What is asserted is the code
path (compare_digest is called, with what, and what the SQL holds), not timings."""

import hashlib
import hmac

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dcportal import services
from deploy import tokens
from inventory import registration

from ..deploy.build_helpers import make_profile, make_servers, token_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def compare_calls(monkeypatch):
    """The arguments of every hmac.compare_digest call (the real one still answers)."""
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    return calls


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def build_token(tenants, admin_user):
    from deploy import services as deploy_services

    (server,) = make_servers(tenants[0], 1)
    deploy_services.nodeset(
        user=admin_user, servers=[server], next_boot="install", profile=make_profile()
    )
    return token_of(server)


def test_build_tokens_are_found_by_hash_and_compared_with_compare_digest(
    build_token, compare_calls
):
    with CaptureQueriesContext(connection) as queries:
        row = tokens.authenticate(build_token)
    assert compare_calls == [(row.token_hash, sha256(build_token))]
    sql = " ".join(q["sql"] for q in queries.captured_queries)
    assert sha256(build_token) in sql and build_token not in sql


@pytest.mark.parametrize(
    "change",
    [lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), lambda t: "dcb_" + "x" * 43],
    ids=["last-character", "unrelated"],
)
def test_a_wrong_build_token_is_compared_too(build_token, compare_calls, change):
    wrong = change(build_token)
    with pytest.raises(tokens.InvalidToken):
        tokens.authenticate(wrong)
    ((stored, given),) = compare_calls
    assert given == sha256(wrong) and stored != given


@pytest.fixture
def api_key(admin_user):
    return services.create_token(user=admin_user, name="cmp")


@pytest.fixture
def enrolment_key(admin_user, tenants):
    return registration.create_enrolment_token(user=admin_user, tenant=tenants[0], name="cmp")


def _wrong_secret(key):
    marker, prefix, secret = key.split("_", 2)
    return f"{marker}_{prefix}_{'A' if secret[0] != 'A' else 'B'}{secret[1:]}"


def _wrong_prefix(key):
    marker, _, secret = key.split("_", 2)
    return f"{marker}_000000000000_{secret}"


@pytest.mark.parametrize(
    "authenticate, fixture",
    [
        (services.authenticate_token, "api_key"),
        (registration.authenticate_enrolment_token, "enrolment_key"),
    ],
    ids=["api", "enrolment"],
)
def test_prefixed_keys_are_compared_with_compare_digest(
    request, compare_calls, authenticate, fixture
):
    row, key = request.getfixturevalue(fixture)
    secret = key.split("_", 2)[2]
    with CaptureQueriesContext(connection) as queries:
        assert authenticate(key) == row
    assert compare_calls == [(row.key_hash, sha256(key))]
    assert secret not in " ".join(q["sql"] for q in queries.captured_queries)
    # A wrong secret under a real prefix, and an unknown prefix: the same single comparison.
    for wrong in (_wrong_secret(key), _wrong_prefix(key)):
        compare_calls.clear()
        assert authenticate(wrong) is None
        ((stored, given),) = compare_calls
        assert given == sha256(wrong) and stored != given

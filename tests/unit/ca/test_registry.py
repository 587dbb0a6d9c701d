"""ca.autosign's registries, the model choices that mirror ca.crypto, and deploy's name rules."""

import pytest

from ca import autosign, crypto
from ca.models import KeyType, Profile, RevocationReason
from deploy.autosign import qualified


def test_model_choices_match_what_crypto_supports():
    assert set(KeyType.values) == set(crypto.KEY_TYPES)
    assert set(RevocationReason.values) == set(crypto.REASONS)
    assert set(Profile.values) == set(crypto.PROFILES)


@pytest.fixture
def registry(monkeypatch):
    monkeypatch.setattr(autosign, "_AUTHORIZERS", [])
    monkeypatch.setattr(autosign, "_NAME_LOOKUPS", [])
    return autosign


def test_the_first_authorizer_that_knows_the_token_answers(registry):
    grant = registry.Grant(tenant_id=1, subject="web01", names=registry.Names())

    def other(token):
        return None

    def ours(token):
        if token == "good":
            return grant
        if token.startswith("ours"):
            raise registry.Denied("expired")
        return None

    registry.register_authorizer(other)
    registry.register_authorizer(ours)
    registry.register_authorizer(ours)  # registering twice is harmless
    assert registry.authorize("good") is grant
    with pytest.raises(registry.Denied, match="expired"):
        registry.authorize("ours-old")
    with pytest.raises(registry.Denied, match="Unknown"):
        registry.authorize("nobody")
    with pytest.raises(registry.Denied):
        registry.authorize("")


def test_without_registrations_nothing_is_owned(registry):
    assert registry.names_of_server(1) == registry.Names()
    with pytest.raises(registry.Denied):
        registry.authorize("dcb_anything")


def test_name_lookups_are_merged_and_unowned_names_listed(registry):
    registry.register_name_lookup(lambda pk: registry.Names(frozenset({"a"}), frozenset()))
    registry.register_name_lookup(lambda pk: None)
    registry.register_name_lookup(
        lambda pk: registry.Names(frozenset({"b"}), frozenset({"10.0.0.1"}))
    )
    owned = registry.names_of_server(7)
    assert registry.unowned(["a", "b", "10.0.0.1", "c", "10.0.0.2"], owned) == ["c", "10.0.0.2"]
    assert registry.names_of_server(None) == registry.Names()


@pytest.mark.parametrize(
    ("hostname", "domain", "fqdn"),
    [
        ("web01", "example.com", "web01.example.com"),
        ("web01", "Example.COM.", "web01.example.com"),
        ("web01.example.com", "example.com", "web01.example.com"),
        ("web01.dc1", "example.com", "web01.dc1"),
        ("web01", "", "web01"),
    ],
)
def test_host_names_are_qualified_by_the_subnet_domain(hostname, domain, fqdn):
    assert qualified(hostname, domain) == fqdn

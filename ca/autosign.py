"""What the CA needs to know about hosts, without depending on the apps that know it.

Two registries, filled by other apps in their AppConfig.ready() (deploy.autosign for the portal's
servers):

- authorizers: fn(token) -> Grant, or None when the token is not of the kind fn understands;
  fn raises Denied for a token of its kind that it refuses (unknown, expired, not building).
  A grant lets whoever holds the token have one certificate signed for the names it lists.
- subject name lookups: fn(server_id) -> Names (the host names and IP addresses a server owns),
  or None when fn knows nothing of that server. A manual CSR for a server may name these without
  approval; any other name needs an operator's approval.

Without registrations, autosign refuses every token and every name needs approval.
"""

from dataclasses import dataclass, field

_AUTHORIZERS = []
_NAME_LOOKUPS = []


class Denied(Exception):
    """A token that may not autosign; str() says why (the public endpoint answers 403)."""


@dataclass(frozen=True)
class Names:
    dns_names: frozenset = field(default_factory=frozenset)
    ip_addresses: frozenset = field(default_factory=frozenset)

    def __contains__(self, name):
        return name in self.dns_names or name in self.ip_addresses

    def __or__(self, other):
        return Names(self.dns_names | other.dns_names, self.ip_addresses | other.ip_addresses)


@dataclass(frozen=True)
class Grant:
    """What a valid token entitles its holder to."""

    tenant_id: int
    subject: str
    names: Names
    server_id: int | None = None


def register_authorizer(fn):
    if fn not in _AUTHORIZERS:
        _AUTHORIZERS.append(fn)
    return fn


def register_name_lookup(fn):
    if fn not in _NAME_LOOKUPS:
        _NAME_LOOKUPS.append(fn)
    return fn


def authorize(token):
    """The Grant for `token`; Denied if no authorizer accepts it."""
    if not isinstance(token, str) or not token or len(token) > 200:
        raise Denied("That is not a token.")
    for fn in _AUTHORIZERS:
        grant = fn(token)
        if grant is not None:
            return grant
    raise Denied("Unknown token.")


def names_of_server(server_id):
    """Every name the registered lookups say the server owns (empty when none knows it)."""
    names = Names()
    if server_id is None:
        return names
    for fn in _NAME_LOOKUPS:
        found = fn(server_id)
        if found is not None:
            names |= found
    return names


def unowned(requested, owned):
    """The requested names (normalised, as ca.crypto gives them) that `owned` does not hold."""
    return [name for name in requested if name not in owned]

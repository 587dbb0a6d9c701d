"""What the CA's autosign needs from deployment and inventory, registered with ca.autosign when
this module is imported (by DeployConfig.ready):

- a build token of a server in build mode grants one certificate for that server's own names;
- a server's own names are its host name, a short host name qualified by the domain of each
  subnet it has an address in (hostname + subnet domain), the DNS names recorded on its
  addresses, and the addresses themselves.
"""

from ca import autosign
from deploy import tokens
from inventory.models import IPAddress, Server


def qualified(hostname, domain):
    """A dotted host name is already fully qualified (as install templates see it: see
    deploy.rendering's server.fqdn); a short one takes the subnet's domain."""
    domain = domain.strip().lower().rstrip(".")
    if not domain or "." in hostname:
        return hostname
    return f"{hostname}.{domain}"


def server_names(server_id):
    """The names server `server_id` owns, or None if there is no such server."""
    server = Server.objects.filter(pk=server_id).only("hostname").first()
    if server is None:
        return None
    dns, ips = {server.hostname}, set()
    addresses = IPAddress.objects.filter(interface__server_id=server_id).select_related("subnet")
    for address in addresses:
        ips.add(address.address.compressed)
        dns.add(qualified(server.hostname, address.subnet.domain))
        if address.dns_name:
            dns.add(address.dns_name.strip().lower().rstrip("."))
    return autosign.Names(frozenset(dns), frozenset(ips))


def authorize(token):
    """A Grant for the build token of a server in build mode; None for other kinds of token."""
    if not token.startswith(tokens.MARKER + "_"):
        return None
    try:
        row = tokens.authenticate(token)
    except tokens.InvalidToken as exc:
        raise autosign.Denied(str(exc)) from None
    server = row.server
    return autosign.Grant(
        tenant_id=server.tenant_id,
        subject=server.hostname,
        names=server_names(server.pk),
        server_id=server.pk,
    )


autosign.register_authorizer(authorize)
autosign.register_name_lookup(server_names)

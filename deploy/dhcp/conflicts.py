"""What the portal refuses to put in a DHCP configuration, found over a DhcpConfig.

The daemons check far less than this (dnsmasq takes a MAC twice, dhcpd a reservation inside a
pool; none of them knows the rest of the fleet), and what they do catch they report in their own
words about a file, not about the servers and subnets it came from. So the portal checks first
and names the objects. Each check is one pass over sorted or hashed values: 10k hosts cost
milliseconds.
"""

import bisect
import re
from dataclasses import dataclass

DUPLICATE_MAC = "duplicate-mac"
DUPLICATE_ADDRESS = "duplicate-address"
DUPLICATE_HOSTNAME = "duplicate-hostname"
IN_POOL = "reservation-in-pool"
OUTSIDE_SUBNET = "reservation-outside-subnet"
POOL_OVERLAP = "pool-overlap"
POOL_OUTSIDE_SUBNET = "pool-outside-subnet"
INVALID_HOSTNAME = "invalid-hostname"
INVALID_DOMAIN = "invalid-domain"

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DNS_NAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*", re.IGNORECASE)


@dataclass(frozen=True)
class Conflict:
    kind: str
    message: str
    objects: tuple = ()  # labels of the objects involved, as the message names them

    def __str__(self):
        return self.message


def is_dns_name(value):
    return bool(_DNS_NAME.fullmatch(value))


def _where(host, subnet):
    return f"{host.describe()} -> {host.address} in {subnet.network}"


def _duplicates(config):
    conflicts = []
    by_mac, by_address, by_hostname = {}, {}, {}
    for subnet in config.subnets:
        for host in subnet.hosts:
            earlier = by_mac.setdefault(host.mac, (host, subnet))
            if earlier[0] is not host:
                first, first_subnet = earlier
                conflicts.append(
                    Conflict(
                        DUPLICATE_MAC,
                        f"MAC {host.mac} has two reservations: {_where(first, first_subnet)} "
                        f"and {_where(host, subnet)}.",
                        (first.name, host.name),
                    )
                )
            earlier = by_address.setdefault(host.address, host)
            if earlier is not host:
                conflicts.append(
                    Conflict(
                        DUPLICATE_ADDRESS,
                        f"Address {host.address} is reserved twice: for {earlier.describe()} "
                        f"and for {host.describe()}.",
                        (earlier.name, host.name),
                    )
                )
            key = host.hostname.lower()
            earlier = by_hostname.setdefault(key, host)
            # One interface reserved twice is already a duplicate MAC; its name says nothing new.
            if earlier is not host and earlier.mac != host.mac:
                conflicts.append(
                    Conflict(
                        DUPLICATE_HOSTNAME,
                        f"Host name {host.hostname} is given to two reservations: "
                        f"{earlier.describe()} and {host.describe()}.",
                        (earlier.name, host.name),
                    )
                )
    return conflicts


def _names(config):
    conflicts = []
    for subnet in config.subnets:
        if subnet.domain and not is_dns_name(subnet.domain.rstrip(".")):
            conflicts.append(
                Conflict(
                    INVALID_DOMAIN,
                    f"Subnet {subnet.describe()}: its domain {subnet.domain!r} is not a DNS name.",
                    (str(subnet.network),),
                )
            )
        for host in subnet.hosts:
            if not is_dns_name(host.hostname):
                conflicts.append(
                    Conflict(
                        INVALID_HOSTNAME,
                        f"{host.describe()}: {host.hostname!r} is not a valid host name "
                        "(letters, digits and hyphens in dot-separated labels).",
                        (host.name,),
                    )
                )
    return conflicts


def _placement(config):
    """Reservations outside their subnet or inside a dynamic pool; pools outside their subnet."""
    conflicts = []
    for subnet in config.subnets:
        network = subnet.network
        edges = (
            {network.network_address: "network", network.broadcast_address: "broadcast"}
            if network.prefixlen < 31
            else {}
        )
        pools = sorted(subnet.pools, key=lambda pool: pool.start)
        starts = [pool.start for pool in pools]
        # The highest end among the pools up to each one: pools may overlap (reported below),
        # so the pool holding an address is not always the last one starting before it.
        reach, highest = [], None
        for pool in pools:
            highest = pool.end if highest is None else max(highest, pool.end)
            reach.append(highest)
        for pool in pools:
            if pool.start not in network or pool.end not in network:
                conflicts.append(
                    Conflict(
                        POOL_OUTSIDE_SUBNET,
                        f"Pool {pool} is not inside its subnet {subnet.describe()}.",
                        (f"pool {pool}", str(network)),
                    )
                )
        for host in subnet.hosts:
            address = host.address
            if address not in network:
                conflicts.append(
                    Conflict(
                        OUTSIDE_SUBNET,
                        f"{host.describe()}: {address} is outside its subnet {subnet.describe()}.",
                        (host.name, str(network)),
                    )
                )
                continue
            if address in edges:
                conflicts.append(
                    Conflict(
                        OUTSIDE_SUBNET,
                        f"{host.describe()}: {address} is the {edges[address]} address of "
                        f"{subnet.describe()}.",
                        (host.name, str(network)),
                    )
                )
                continue
            index = bisect.bisect_right(starts, address) - 1
            if index < 0 or reach[index] < address:
                continue
            while address not in pools[index]:
                index -= 1
            pool = pools[index]
            conflicts.append(
                Conflict(
                    IN_POOL,
                    f"{host.describe()}: {address} lies in the dynamic pool {pool} of "
                    f"{subnet.describe()}; a client without a reservation could lease it.",
                    (host.name, f"pool {pool}"),
                )
            )
    return conflicts


def _pool_overlaps(config):
    conflicts = []
    pools = sorted(
        ((pool, subnet) for subnet in config.subnets for pool in subnet.pools),
        key=lambda item: (item[0].start, item[0].end),
    )
    reach = None  # the pool reaching highest so far
    for pool, subnet in pools:
        if reach is not None and pool.start <= reach[0].end:
            other, other_subnet = reach
            conflicts.append(
                Conflict(
                    POOL_OVERLAP,
                    f"Pools {other} ({other_subnet.describe()}) and {pool} "
                    f"({subnet.describe()}) overlap.",
                    (f"pool {other}", f"pool {pool}"),
                )
            )
        if reach is None or pool.end > reach[0].end:
            reach = (pool, subnet)
    return conflicts


def find_conflicts(config):
    """Every conflict in `config`, as a list of Conflict (empty when it can be written)."""
    return [
        *_duplicates(config),
        *_names(config),
        *_placement(config),
        *_pool_overlaps(config),
    ]

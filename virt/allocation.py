"""What the portal hands out to new VMs: MAC addresses and console (VNC) ports.

MACs come from settings.VIRT_MAC_PREFIX (locally administered, so they never clash with a
vendor's) plus random bits. The inventory's Interface.mac is unique, so the Interface row
itself is the reservation: a candidate taken by a concurrent transaction fails its INSERT and
the next candidate is tried. Random rather than sequential: concurrent creations rarely pick
the same candidate, and a deleted VM's MAC is not handed to the next one at once (DHCP leases
and ARP caches still remember it).

VNC ports: the lowest free port of the pool's range; the pool row is locked while one is
chosen, so two creations never pick the same port (a unique constraint backs it up).
"""

import re
import secrets

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import IntegrityError, transaction

from inventory.models import Interface

OCTET = re.compile(r"^[0-9a-f]{2}$")
CANDIDATES = 16  # tried per query
ATTEMPTS = 8  # queries before the prefix counts as full
SMALL_SPACE_OCTETS = 2  # up to 65536 MACs: list the free ones instead of drawing at random


def mac_prefix(prefix=None):
    """The configured prefix as a list of octets, checked: 1 to 5 octets, first one locally
    administered (bit 0x02) and unicast (bit 0x01 clear)."""
    text = (settings.VIRT_MAC_PREFIX if prefix is None else prefix).strip().lower()
    octets = [part for part in re.split(r"[:-]", text) if part] if text else []
    if not 1 <= len(octets) <= 5 or not all(OCTET.match(octet) for octet in octets):
        raise ImproperlyConfigured(
            f"DCPORTAL_VIRT_MAC_PREFIX must be 1 to 5 hex octets (e.g. 02:dc:00), not {text!r}"
        )
    first = int(octets[0], 16)
    if not first & 0x02 or first & 0x01:
        raise ImproperlyConfigured(
            f"DCPORTAL_VIRT_MAC_PREFIX {text!r} is not a locally administered unicast prefix: "
            "its first octet needs the 0x02 bit set and the 0x01 bit clear (e.g. 02, 06, 0a)."
        )
    return octets


def random_mac(octets):
    rest = [f"{byte:02x}" for byte in secrets.token_bytes(6 - len(octets))]
    return ":".join([*octets, *rest])


def free_macs(count, octets=None):
    """Up to `count` random MACs of the prefix that no Interface has right now. A small
    space (a long prefix) is listed whole, so that its last free MAC is found too."""
    octets = octets or mac_prefix()
    if 6 - len(octets) <= SMALL_SPACE_OCTETS:
        prefix = ":".join(octets) + ":"
        taken = set(Interface.objects.filter(mac__startswith=prefix).values_list("mac", flat=True))
        free = [
            mac
            for mac in (
                prefix + ":".join(f"{(n >> shift) & 0xFF:02x}" for shift in _shifts(octets))
                for n in range(256 ** (6 - len(octets)))
            )
            if mac not in taken
        ]
        return secrets.SystemRandom().sample(free, min(count, len(free)))
    candidates = {random_mac(octets) for _ in range(max(count, CANDIDATES))}
    taken = set(Interface.objects.filter(mac__in=candidates).values_list("mac", flat=True))
    return [mac for mac in candidates if mac not in taken][:count]


def _shifts(octets):
    return [8 * index for index in reversed(range(6 - len(octets)))]


def create_interface(*, server, name, boot=False, description=""):
    """A new Interface of `server` with a freshly allocated MAC (the row is the reservation).
    Must run inside a transaction; raises ValidationError when the prefix seems exhausted."""
    octets = mac_prefix()
    for _ in range(ATTEMPTS):
        candidates = free_macs(CANDIDATES, octets)
        if not candidates:
            break
        for mac in candidates:
            try:
                with transaction.atomic():
                    return Interface.objects.create(
                        server=server, name=name, mac=mac, boot=boot, description=description
                    )
            except IntegrityError:
                continue  # taken since the query (or by this very server): next candidate
    raise ValidationError(
        {"networks": f"No free MAC address left under the prefix {':'.join(octets)}."}
    )


def vnc_port(pool):
    """The lowest port of the pool's range no VM of the pool holds. Locks the pool row until
    the surrounding transaction ends; raises ValidationError when the range is full."""
    from virt.models import Pool, Vm

    locked = Pool.objects.select_for_update().only("pk", "vnc_port_min", "vnc_port_max")
    locked = locked.get(pk=pool.pk)
    used = set(
        Vm.objects.filter(pool_id=pool.pk, vnc_port__isnull=False).values_list(
            "vnc_port", flat=True
        )
    )
    for port in range(locked.vnc_port_min, locked.vnc_port_max + 1):
        if port not in used:
            return port
    raise ValidationError(
        {
            "pool": f"All console ports of {pool} ({locked.vnc_port_min}-"
            f"{locked.vnc_port_max}) are taken; widen the range."
        }
    )

"""The inventory the DHCP tests generate configurations from, and access to the real daemons.

A realistic fleet: two subnets (one with two pools, one with one), 50 reservations. Servers'
boot interfaces are in the provisioning subnet; 20 of them have a second interface in the
storage subnet, so host names need the interface suffix there.
"""

import os
import shutil

import pytest

from inventory.models import Interface, IPAddress, IPRange, Server, Subnet

PROVISIONING = "10.20.0.0/24"
STORAGE = "10.20.1.0/24"
BOOT_URL = "http://10.20.0.2:8000"
SCRIPT_URL = BOOT_URL + "/boot/ipxe"
NEXT_SERVER = "10.20.0.2"
SERVERS = 30
SECOND_INTERFACES = 20
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])


def unavailable(what):
    """A missing daemon: a failure under CI (a skipped check would hide a missing package),
    a skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and {what}", pytrace=False)
    pytest.skip(what)


def daemon(name, package):
    path = shutil.which(name, path=SEARCH_PATH)
    if path is None:
        unavailable(f"{name} is not installed (Debian package {package})")
    return path


def mac(n, nic=0):
    return f"52:54:00:{nic:02x}:{n >> 8:02x}:{n & 0xFF:02x}"


def make_fleet(tenant):
    """The realistic inventory; returns {"provisioning": Subnet, "storage": Subnet}."""
    provisioning = Subnet.objects.create(
        network=PROVISIONING,
        name="provisioning",
        tenant=tenant,
        gateway="10.20.0.1",
        dns_servers=["10.20.0.53", "10.20.0.54"],
        domain="lab.example.com",
    )
    storage = Subnet.objects.create(
        network=STORAGE, name="storage", tenant=tenant, gateway="10.20.1.1"
    )
    IPRange.objects.create(
        subnet=provisioning, start="10.20.0.200", end="10.20.0.229", kind=IPRange.Kind.DHCP
    )
    IPRange.objects.create(
        subnet=provisioning, start="10.20.0.230", end="10.20.0.249", kind=IPRange.Kind.DHCP
    )
    IPRange.objects.create(
        subnet=storage, start="10.20.1.100", end="10.20.1.149", kind=IPRange.Kind.DHCP
    )
    # Not a pool: a static range must not reach the configuration.
    IPRange.objects.create(
        subnet=storage, start="10.20.1.150", end="10.20.1.199", kind=IPRange.Kind.STATIC
    )
    for n in range(SERVERS):
        server = Server.objects.create(hostname=f"node{n:02d}.lab.example.com", tenant=tenant)
        boot = Interface.objects.create(server=server, name="eno1", mac=mac(n), boot=True)
        IPAddress.objects.create(address=f"10.20.0.{10 + n}", subnet=provisioning, interface=boot)
        if n < SECOND_INTERFACES:
            data = Interface.objects.create(server=server, name="ens2f0", mac=mac(n, 1))
            IPAddress.objects.create(address=f"10.20.1.{10 + n}", subnet=storage, interface=data)
    return {"provisioning": provisioning, "storage": storage}

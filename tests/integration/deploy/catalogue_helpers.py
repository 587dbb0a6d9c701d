"""A realistic server to render templates for: interfaces, addresses in a subnet with gateway,
DNS and domain, a deploy profile, and parameters at every level."""

import ipaddress

from deploy.models import OperatingSystem, Parameter, Profile, ServerDeploy, Template
from deploy.rendering import builtin_source
from inventory.models import Interface, IPAddress, Rack, Server, Site, Subnet

BASE = "http://10.0.0.1:8000"
TOKEN = "dcb_" + "A" * 43


def make_os(name="rocky9", family="redhat", tenant=None, **extra):
    defaults = {
        "version": "9.4",
        "kernel": "rocky9/vmlinuz",
        "initrd": "rocky9/initrd.img",
        "install_url": "http://mirror.example.net/rocky/9/BaseOS/x86_64/os/",
        "boot_args": "console=ttyS0,115200",
    }
    return OperatingSystem.objects.create(
        name=name, family=family, tenant=tenant, **(defaults | extra)
    )


def make_template(name, kind, content=None, tenant=None, builtin=False):
    if content is None:
        content = builtin_source(name)
    template, _ = Template.objects.update_or_create(
        name=name,
        defaults={"kind": kind, "content": content, "tenant": tenant, "builtin": builtin},
    )
    return template


def make_profile(name, os, install_template, tenant=None, **extra):
    return Profile.objects.create(
        name=name, os=os, install_template=install_template, tenant=tenant, **extra
    )


def make_server(tenant, hostname="node01", *, profile=None, parameters=None, subnet=None):
    site, _ = Site.objects.get_or_create(slug="par1", defaults={"name": "Paris 1"})
    rack, _ = Rack.objects.get_or_create(site=site, name="r12")
    server = Server.objects.create(
        hostname=hostname,
        tenant=tenant,
        uuid="11111111-2222-3333-4444-555555555555" if hostname == "node01" else None,
        serial=f"SN-{hostname.upper()}",
        vendor="Dell Inc.",
        model="PowerEdge R650",
        rack=rack,
        tags=["web", "prod"],
        attributes={"cpu": {"cores": 32}, "disks": [{"name": "sda", "size_gb": 480}]},
    )
    if subnet is None:
        subnet = Subnet.objects.filter(tenant=tenant).first() or Subnet.objects.create(
            network=ipaddress.ip_network(f"10.{tenant.pk % 200}.0.0/24"),
            tenant=tenant,
            name="prov",
            vlan=120,
            gateway=ipaddress.ip_address(f"10.{tenant.pk % 200}.0.1"),
            dns_servers=[
                ipaddress.ip_address("10.0.0.53"),
                ipaddress.ip_address("10.0.1.53"),
            ],
            domain="dc1.example.net",
        )
    count = Interface.objects.count()
    eno1 = Interface.objects.create(server=server, name="eno1", mac=_mac(count + 1), boot=False)
    eno2 = Interface.objects.create(server=server, name="eno2", mac=_mac(count + 2), boot=True)
    host = 10 + IPAddress.objects.filter(subnet=subnet).count()
    IPAddress.objects.create(
        address=subnet.network.network_address + host, subnet=subnet, interface=eno2
    )
    IPAddress.objects.create(
        address=subnet.network.network_address + host + 1, subnet=subnet, interface=eno1
    )
    if profile is not None or parameters:
        ServerDeploy.objects.create(server=server, profile=profile, parameters=parameters or {})
    return server


def _mac(n):
    return f"52:54:00:{(n >> 16) & 0xFF:02x}:{(n >> 8) & 0xFF:02x}:{n & 0xFF:02x}"


def set_param(name, value, tenant=None):
    Parameter.objects.update_or_create(name=name, tenant=tenant, defaults={"value": value})

"""Shared pieces of the build state machine tests: a profile, servers with MACs in bulk, the
build token of a server, and calls to the unauthenticated boot endpoints."""

from deploy import tokens
from deploy.models import OperatingSystem, Profile, ServerDeploy, Template
from inventory.models import Interface, Server

KICKSTART = """\
# kickstart of {{ server.hostname }}
url --url={{ os.install_url }}
%post
curl -X POST {{ urls.done }}
%end
"""


def make_profile(name="rocky9", *, tenant=None, family="redhat", **os_fields):
    os_values = {
        "version": "9.4",
        "kernel": "rocky9/vmlinuz",
        "initrd": "rocky9/initrd.img",
        "install_url": "http://mirror.example.net/rocky/9/BaseOS/x86_64/os/",
        "boot_args": "console=ttyS0",
    } | os_fields
    os = OperatingSystem.objects.create(
        name=f"{name}-os", family=family, tenant=tenant, **os_values
    )
    template = Template.objects.create(
        name=f"{name}-ks", kind=Template.Kind.KICKSTART, content=KICKSTART, tenant=tenant
    )
    return Profile.objects.create(name=name, os=os, install_template=template, tenant=tenant)


def mac(n, prefix="52:54:00"):
    return f"{prefix}:{(n >> 16) & 0xFF:02x}:{(n >> 8) & 0xFF:02x}:{n & 0xFF:02x}"


def make_servers(tenant, count, *, prefix="node", start=1, mac_base=None):
    """`count` servers node001…, each with one boot interface of a distinct MAC (bulk)."""
    width = max(2, len(str(start + count - 1)))
    servers = Server.objects.bulk_create(
        Server(hostname=f"{prefix}{n:0{width}d}", tenant=tenant, serial=f"SN-{prefix}{n}")
        for n in range(start, start + count)
    )
    base = Interface.objects.count() + 1 if mac_base is None else mac_base
    Interface.objects.bulk_create(
        Interface(server=server, name="eth0", mac=mac(base + i), boot=True)
        for i, server in enumerate(servers)
    )
    return servers


def mac_of(server):
    return server.interfaces.get(boot=True).mac


def deploy_row(server):
    return ServerDeploy.objects.get(server=server)


def token_of(server):
    return tokens.token_for(deploy_row(server).token_nonce)

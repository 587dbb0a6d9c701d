"""Fixtures of the CA tests: a shared root and the `hosts` intermediate, a server with its own
names (web01, web01.example.com, 10.0.0.5), and that server in build mode with a real token."""

import pytest

from ca import services
from deploy import tokens
from deploy.models import OperatingSystem, Profile, ServerDeploy, Template
from inventory.models import Interface, IPAddress, Server, Subnet


@pytest.fixture
def authorities(admin_user):
    """A shared root and the shared `hosts` intermediate under it (settings.CA_HOST_AUTHORITY)."""
    root = services.create_authority(user=admin_user, name="Fleet root", slug="root")
    hosts = services.create_authority(
        user=admin_user, name="Hosts", slug="hosts", parent=root, key_type="rsa-2048"
    )
    return root, hosts


def make_server(tenant, hostname="web01", address="10.0.0.5", network="10.0.0.0/24"):
    server = Server.objects.create(hostname=hostname, tenant=tenant)
    subnet = Subnet.objects.filter(network=network).first() or Subnet.objects.create(
        network=network, tenant=tenant, domain="example.com"
    )
    interface = Interface.objects.create(
        server=server, name="eth0", mac=f"52:54:00:00:00:{server.pk % 256:02x}", boot=True
    )
    IPAddress.objects.create(address=address, subnet=subnet, interface=interface)
    return server


@pytest.fixture
def web01(tenants):
    return make_server(tenants[0])


def put_in_build_mode(server):
    """The server's ServerDeploy row as nodeset install leaves it; returns (row, token)."""
    os_row, _ = OperatingSystem.objects.get_or_create(
        name="ca-test-os", defaults={"family": "redhat", "version": "9", "kernel": "os/vmlinuz"}
    )
    template, _ = Template.objects.get_or_create(
        name="ca-test-ks", defaults={"kind": Template.Kind.KICKSTART, "content": "text\n"}
    )
    profile, _ = Profile.objects.get_or_create(
        name="ca-test-profile", defaults={"os": os_row, "install_template": template}
    )
    fields = tokens.issue()
    row, _ = ServerDeploy.objects.update_or_create(
        server=server,
        defaults={
            "profile": profile,
            "next_boot": ServerDeploy.NextBoot.INSTALL,
            "state": ServerDeploy.State.BUILDING,
            **fields,
        },
    )
    return row, tokens.token_for(fields["token_nonce"])


@pytest.fixture
def building(web01):
    return put_in_build_mode(web01)


def crls_of(*authorities):
    """The current CRLs (PEM) of the given authorities, concatenated for -CRLfile."""
    text = ""
    for authority in authorities:
        authority.refresh_from_db()
        authority.crl.refresh_from_db()
        text += authority.crl.pem
    return text

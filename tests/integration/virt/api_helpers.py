"""Shared pieces of the virt API tests: a running XAPI server, users of each VM role in acme,
and pools with synced-looking rows and VMs written straight to the database for the tests that
check scope, permissions and query counts without a hypervisor."""

import uuid as uuidlib

import pytest

from inventory.models import Interface, Server
from tests.fakes.xapi_server import XapiServer
from virt.drivers import xenapi
from virt.models import Host, Network, Pool, StorageRepository, Vif, Vm, VmTemplate

POOLS = "/api/virt/pools/"
VMS = "/api/virt/vms/"
GIB = 1024**3


def vm_url(vm_id, action=""):
    return f"{VMS}{vm_id}/{action + '/' if action else ''}"


@pytest.fixture(name="xapi")
def xapi_fixture():
    with XapiServer() as server:
        yield server
    xenapi.close_all()


@pytest.fixture(name="roles")
def roles_fixture(make_user, tenants):
    """One user per role, all of acme; `operator` is conftest's."""
    acme = [tenants[0]]
    return {
        role: make_user(role, roles=[role], tenants=acme)
        for role in ("read-only", "vm-operator", "vm-admin", "vm-power-admin")
    }


def make_pool(name, tenant=None, *, networks=("lan",), url="http://192.0.2.1/"):
    """A XenAPI pool as a sync would have left it: two hosts, a template, storage, networks."""
    pool = Pool.objects.create(name=name, url=url, tenant=tenant)
    for host in ("xen1", "xen2"):
        Host.objects.create(pool=pool, uuid=str(uuidlib.uuid4()), name=host)
    VmTemplate.objects.create(
        pool=pool, uuid=str(uuidlib.uuid4()), name="debian12", vcpus=1, memory_bytes=GIB
    )
    StorageRepository.objects.create(
        pool=pool, uuid=str(uuidlib.uuid4()), name="local", size_bytes=100 * GIB
    )
    for network in networks:
        Network.objects.create(pool=pool, uuid=str(uuidlib.uuid4()), name=network)
    return pool


def make_vms(pool, tenant, count, *, prefix="vm"):
    """`count` present, running VMs of the pool in `tenant`, each with two VIFs."""
    start = Vm.objects.count()
    host = pool.hosts.first()
    network = pool.networks.first()
    vms = []
    for n in range(start, start + count):
        server = Server.objects.create(
            hostname=f"{prefix}{n:03d}",
            tenant=tenant,
            kind=Server.Kind.VIRTUAL,
            uuid=uuidlib.uuid4(),
        )
        vm = Vm.objects.create(
            server=server,
            pool=pool,
            uuid=str(server.uuid),
            state=Vm.State.PRESENT,
            power_state=Vm.PowerState.RUNNING,
            host=host,
            template=pool.templates.first(),
            vcpus=2,
            memory_bytes=2 * GIB,
        )
        for device in range(2):
            interface = Interface.objects.create(
                server=server,
                name=f"eth{device}",
                mac=f"02:dc:01:{n >> 8:02x}:{n & 0xFF:02x}:{device:02x}",
            )
            Vif.objects.create(vm=vm, device=device, interface=interface, network=network)
        vms.append(vm)
    return vms

"""A libvirt guest PXE-installed through the portal: the pool, the sync, create_vm with an
install profile, the deploy flow over a real DHCP server, and the return to disk boot.

The hypervisor is a real libvirtd driving QEMU under TCG, private to the test
(tests/peers/libvirt_session.py): a pool of driver libvirt at qemu:///session with the
daemon's socket. That is not a per-user session daemon: for root, libvirt's client sends
qemu:///session to the system daemon's socket (a per-user daemon is auto-started only for a
non-root caller), so the test runs a privileged libvirtd of its own, its state directories
private (a mount namespace), reached through `?socket=`. Privileged, it plugs guests into a
host bridge itself.

The network is what a datacenter has: a Linux bridge made by the test (a free 10.x.y.0/24, the
host on .1) carried by a libvirt network `<forward mode='bridge'/>`, which the portal syncs
like any other, so create_vm gives the guest one `<interface type='network'>` with the
portal's MAC and nothing in the driver is special to the test. DHCP on the bridge is dnsmasq
run with the configuration the portal generates (`makedhcp --format dnsmasq`: the subnet's
DHCP range, iPXE's user class answered with the portal's /boot/ipxe URL). The live portal
listens on 127.0.0.1, which a guest on the bridge cannot reach: a TCP relay on the bridge's
address forwards to it, so the portal URL guests use is http://<bridge address>:<relay port>.
QEMU user networking (`<interface type='user'>`) was not an option: libvirt gives it no boot
file, and it would sidestep the portal's DHCP configuration.

The flow: the sync reads the template domain (`<dcportal:template/>` in its metadata), the
network and a directory storage pool; create_vm(..., install_profile=...) makes the Vm, its
virtual Server and the VIF; the create job defines the domain, issues the build token, sets
network boot first and starts it. SeaBIOS's iPXE ROM gets a lease and the boot URL from
dnsmasq, fetches /boot/ipxe, its per-MAC script, kernel and initrd; the initramfs (the deploy
QEMU test's installer, with one step added: it writes a boot sector to the VM's disk) runs the
inventory agent, fetches the kickstart with the build token, reports progress and posts
`done`, then reboots, which the template turns into a power-off. `done` queues
virt.finish-install, which switches the guest to disk boot and starts it: the boot sector
prints a line on the serial console, so the guest is seen booting its own disk.

Kernel, QEMU, libvirtd, dnsmasq and iPXE's ROM as for the other QEMU tests: without them (or
without root) the test is skipped, except under CI (the CI variable set), where that is a
failure. About 40 s on two TCG cores.
"""

# ruff: noqa: F401, F811 (the shared fixtures are imported by name, which pytest needs)

import gzip
import re
import shutil
import socket
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

from dcportal.models import Job
from deploy import dhcp_services, tokens
from deploy.models import OperatingSystem, Profile, ServerDeploy, Template
from inventory.models import IPRange, Server, Subnet
from tests.integration.deploy.dhcp_helpers import unavailable
from tests.integration.deploy.test_install_qemu import FINISHED, INIT, IPXE_ROM, KICKSTART
from tests.integration.inventory.registration_helpers import acme, enrolment
from tests.integration.inventory.test_agent_qemu import (
    BUSYBOX,
    TOOL_TIMEOUT,
    build_initramfs,
    vm_kernel,
)
from tests.peers.libvirt_session import (
    Dnsmasq,
    HostBridge,
    LibvirtDaemon,
    PeerMissing,
    PortalRelay,
    libvirt,
)
from tests.workers import run_burst_worker
from virt import services
from virt.drivers.libvirt import TEMPLATE_NS
from virt.models import Network, StorageRepository, Vm, VmTemplate

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

INSTALL_TIMEOUT = 180  # seconds from the start to `done`; about 25 s on two TCG cores
DISK_BOOT_TIMEOUT = 60  # the second boot only gets as far as the boot sector
MIB = 1024**2
HOSTNAME = "pxevm01.test.example"
DISK_MARKER = "dcportal-disk: booted from the installed disk"

# The installer's last step before `done`: the boot sector goes to the VM's disk.
DONE_STEP = 'timeout 30 wget -q -O /dev/null --post-data "message=installed+by+qemu" "$done_url"'
WRITE_DISK = (
    "dd if=/bootsector.bin of=/dev/vda bs=512 count=1 conv=fsync 2>/dev/null"
    ' || finish "failed: writing /dev/vda"\n'
)

TEMPLATE_XML = """<domain type='qemu'>
  <name>tpl-pxe</name>
  <metadata><dcportal:template xmlns:dcportal='{ns}'/></metadata>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <devices>
    <serial type='file'><source path='{console}' append='on'/><target port='0'/></serial>
  </devices>
</domain>"""
NETWORK_XML = "<network><name>pxe</name><forward mode='bridge'/><bridge name='{bridge}'/></network>"
STORAGE_XML = "<pool type='dir'><name>images</name><target><path>{path}</path></target></pool>"


def boot_sector(message):
    """A 512-byte MBR that writes `message` to COM1 and halts (real mode, loaded at 0x7c00)."""
    text = f"{message}\r\n".encode() + b"\0"
    code = bytes.fromhex(
        "31c0"  # xor ax, ax
        "8ed8"  # mov ds, ax
        "be177c"  # mov si, 0x7c17 (the text, right after this code)
        "baf803"  # mov dx, 0x3f8
        "fc"  # cld
        "ac"  # lodsb
        "84c0"  # test al, al
        "7403"  # jz halt
        "ee"  # out dx, al
        "ebf8"  # jmp lodsb
        "fa"  # halt: cli
        "f4"  # hlt
        "ebfd"  # jmp hlt
    )
    assert len(code) == 0x17
    return (code + text).ljust(510, b"\0") + b"\x55\xaa"


def installer_initrd(kernel, directory):
    """The deploy QEMU test's installer initramfs, with /init writing the boot sector to the
    disk before it posts `done` (a second newc archive laid over the first)."""
    assert DONE_STEP in INIT, "the installer's done step changed; update DONE_STEP"
    root = directory / "overlay"
    root.mkdir()
    (root / "init").write_text(INIT.replace(DONE_STEP, WRITE_DISK + DONE_STEP))
    (root / "init").chmod(0o755)
    (root / "bootsector.bin").write_bytes(boot_sector(DISK_MARKER))
    archive = subprocess.run(
        [BUSYBOX, "cpio", "-o", "-H", "newc"],
        input=b"init\nbootsector.bin\n",
        cwd=root,
        capture_output=True,
        timeout=TOOL_TIMEOUT,
        check=True,
    ).stdout
    combined = directory / "install-initrd.gz"
    base = build_initramfs(kernel, directory)
    combined.write_bytes(base.read_bytes() + gzip.compress(archive, mtime=0))
    return combined


def free_local_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def hypervisor():
    """The private libvirtd and the bridge its guests are plugged into."""
    if not IPXE_ROM.is_file():
        unavailable(f"no iPXE ROM at {IPXE_ROM} (Debian: ipxe-qemu)")
    try:
        daemon, bridge = LibvirtDaemon(), HostBridge()
    except PeerMissing as exc:
        unavailable(str(exc))
    with daemon, bridge:
        yield daemon, bridge


class Console:
    """The guest's serial console (a file QEMU appends to) and what to show when a wait fails."""

    def __init__(self, path, daemon, dnsmasq):
        self.path = path
        self.daemon = daemon
        self.dnsmasq = dnsmasq

    def text(self):
        return self.path.read_text(errors="replace") if self.path.exists() else ""

    def report(self):
        tail = "\n".join(self.text().splitlines()[-60:])
        dhcp = "\n".join(self.dnsmasq.log().splitlines()[-20:])
        return f"console:\n{tail}\nQEMU log:\n{self.daemon.guest_log(HOSTNAME)}\ndnsmasq:\n{dhcp}"

    def wait_for(self, pattern, timeout, domain):
        """The match of `pattern` on the console; fails when the guest stops without it."""
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.text())
            if match:
                return match
            if not domain.isActive():
                match = re.search(pattern, self.text())  # written just before it stopped
                if match:
                    return match
                pytest.fail(f"the guest stopped without {pattern!r}\n{self.report()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {pattern!r} within {timeout} s\n{self.report()}")
            time.sleep(0.2)


def wait_stopped(domain, timeout):
    deadline = time.monotonic() + timeout
    while domain.isActive() and time.monotonic() < deadline:
        time.sleep(0.2)
    return not domain.isActive()


def boot_order(domain):
    root = ET.fromstring(domain.XMLDesc(0))
    return [boot.get("dev") for boot in root.findall("os/boot")]


def test_a_libvirt_guest_pxe_installs_through_the_portal_and_then_boots_its_disk(
    hypervisor,
    vm_kernel,
    live_server,
    enrolment,
    acme,
    admin_user,
    make_user,
    tmp_path,
    settings,
    request,
):
    daemon, bridge = hypervisor
    _, enrolment_key = enrolment
    relay = PortalRelay(bridge.address, live_server.thread.port)
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, bridge.address]
    portal = f"http://{bridge.address}:{relay.port}"

    # DHCP on the bridge: the portal's own dnsmasq configuration for the bridge's subnet.
    subnet = Subnet.objects.create(
        network=str(bridge.network), name="vm-pxe", tenant=acme, gateway=bridge.address
    )
    hosts = list(bridge.network.hosts())
    IPRange.objects.create(
        subnet=subnet, start=str(hosts[99]), end=str(hosts[199]), kind=IPRange.Kind.DHCP
    )
    dhcp = dhcp_services.generate(
        user=admin_user,
        fmt="dnsmasq",
        boot_url=portal,
        boot_mode="ipxe",
        next_server=bridge.address,
    )
    assert f"dhcp-boot=tag:ipxe,{portal}/boot/ipxe," in dhcp.text
    (tmp_path / "dnsmasq.conf").write_text(dhcp.text)
    dnsmasq = Dnsmasq(tmp_path / "dnsmasq.conf", bridge.name, tmp_path)

    # The hypervisor's side: a template domain, the bridge's network, a storage pool.
    console_path = tmp_path / "console.log"
    images = daemon.directory / "images"
    images.mkdir()
    conn = daemon.connect()
    request.addfinalizer(conn.close)
    conn.defineXML(TEMPLATE_XML.format(ns=TEMPLATE_NS, console=console_path))
    conn.networkDefineXML(NETWORK_XML.format(bridge=bridge.name)).create()
    conn.storagePoolDefineXML(STORAGE_XML.format(path=images)).create()

    # What the profile boots: the test kernel and the installer initramfs, served by the portal.
    boot_files = tmp_path / "boot"
    (boot_files / "test").mkdir(parents=True)
    shutil.copy(vm_kernel.path, boot_files / "test" / "vmlinuz")
    shutil.copy(installer_initrd(vm_kernel, tmp_path), boot_files / "test" / "initrd.gz")
    settings.BOOT_FILES_DIR = boot_files
    os_ = OperatingSystem.objects.create(
        name="testlinux",
        family="redhat",
        version="1",
        kernel="test/vmlinuz",
        initrd="test/initrd.gz",
        boot_args=(
            f"console=ttyS0 quiet panic=-1 dcportal.url={portal} dcportal.token={enrolment_key}"
        ),
    )
    template = Template.objects.create(name="test-ks", kind="kickstart", content=KICKSTART)
    profile = Profile.objects.create(name="testlinux", os=os_, install_template=template)

    vnc_port = free_local_port()
    pool = services.create_pool(
        user=admin_user,
        name="qemu-session",
        driver="libvirt",
        url=daemon.url,
        vnc_port_min=vnc_port,
        vnc_port_max=vnc_port,
    )
    services.enqueue_sync(user=admin_user, pool=pool)
    run_burst_worker("virt")
    pool.refresh_from_db()
    assert pool.last_sync_error == "" and pool.last_sync is not None
    vm_template = VmTemplate.objects.get(pool=pool, name="tpl-pxe")
    network = Network.objects.get(pool=pool, name="pxe")
    assert network.bridge == bridge.name
    storage = StorageRepository.objects.get(pool=pool, name="images")

    vm_admin = make_user("vmadmin", roles=["vm-admin"], tenants=[acme])
    with dnsmasq, relay:
        vm = services.create_vm(
            user=vm_admin,
            pool=pool,
            name=HOSTNAME,
            tenant=acme,
            template=vm_template,
            vcpus=1,
            memory_bytes=512 * MIB,
            disk_bytes=16 * MIB,
            storage=storage,
            networks=[network],
            install_profile=profile,
        )
        started = time.monotonic()
        run_burst_worker("virt")  # virt.create: define, build token, network boot, start
        vm.refresh_from_db()
        create_job = Job.objects.get(pk=vm.job_id)
        assert create_job.status == Job.Status.SUCCEEDED, create_job.error
        assert (vm.state, vm.boot) == (Vm.State.INSTALLING, "network")
        domain = conn.lookupByUUIDString(vm.uuid)
        assert domain.isActive() and boot_order(domain) == ["network", "hd"]
        token = tokens.token_for(ServerDeploy.objects.get(server=vm.server).token_nonce)

        console = Console(console_path, daemon, dnsmasq)
        finished = console.wait_for(FINISHED, INSTALL_TIMEOUT, domain)
        installed = time.monotonic() - started
        assert finished[1] == "finished", console.report()
        assert wait_stopped(domain, 30), "the guest did not power off after `done`"

        # The guest's DHCP came from the generated configuration, its boot files from the portal.
        interface = vm.server.interfaces.get()
        leases = dnsmasq.log()
        assert re.search(rf"DHCPACK\({bridge.name}\) \S+ {interface.mac}", leases), leases
        assert f"bootfile-name  {portal}/boot/ipxe" in leases
        text = console.text()
        assert "Registered pxevm01.test.example (updated)." in text, console.report()
        assert "dcportal-install: template: # kickstart for pxevm01.test.example" in text

        row = ServerDeploy.objects.get(server=vm.server)
        assert (row.state, row.next_boot, row.stage, row.progress) == (
            "deployed",
            "localboot",
            "done",
            100,
        )
        assert (row.token_nonce, row.token_hash) == ("", "")
        assert row.booted and row.template_fetched
        with pytest.raises(tokens.InvalidToken):
            tokens.authenticate(token)

        # `done` queued the return to disk; the job switches the boot and starts the guest.
        finish = Job.objects.get(kind=services.FINISH_INSTALL_JOB_KIND)
        run_burst_worker("virt")
        finish.refresh_from_db()
        assert finish.status == Job.Status.SUCCEEDED, finish.error
        console.wait_for(re.escape(DISK_MARKER), DISK_BOOT_TIMEOUT, domain)
    print(f"guest installed in {installed:.1f} s")

    vm.refresh_from_db()
    assert (vm.state, vm.boot, vm.power_state, vm.install_profile) == (
        Vm.State.PRESENT,
        "disk",
        Vm.PowerState.RUNNING,
        None,
    )
    server = Server.objects.get(pk=vm.server_id)
    assert server.kind == Server.Kind.VIRTUAL
    assert str(server.uuid) == domain.UUIDString() == vm.uuid
    assert server.status == "deployed"
    assert server.last_inventory is not None  # the agent reported from the installer
    # Defined: one NIC on the portal's network with the portal's MAC, booting its disk only;
    # running: that NIC is a port of the bridge.
    defined = ET.fromstring(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    (nic,) = defined.findall("devices/interface")
    assert (nic.get("type"), nic.find("source").get("network")) == ("network", "pxe")
    assert nic.find("mac").get("address") == interface.mac
    assert [boot.get("dev") for boot in defined.findall("os/boot")] == ["hd"]
    (running,) = ET.fromstring(domain.XMLDesc(0)).findall("devices/interface")
    assert running.find("source").get("bridge") == bridge.name
    assert domain.isActive() and boot_order(domain) == ["hd"]

"""The build loop with a real PXE client: a QEMU guest (TCG) whose iPXE ROM boots from the live
portal on 127.0.0.1.

The server is registered with the guest's MAC, SMBIOS UUID and serial and set to install a
profile whose kernel and initrd are test files in the boot files directory. The guest's iPXE
fetches /boot/ipxe, then its per-MAC script, then kernel and initrd from /boot/files/; the
initramfs (busybox, built by the inventory agent's QEMU test helpers, with an /init of its own
laid over) reads its DMI UUID and serial, runs the inventory agent, takes the kickstart URL
from inst.ks= on its command line, fetches the template with its build token, reports progress
and posts the `done` URL the template gives it, then reboots. The portal then has the server
deployed, booting its disk, its token burnt; a second boot of the guest gets the local-disk
script (`exit`).

Kernel and QEMU as for tests/integration/inventory/test_agent_qemu.py: without them the test
is skipped, except under CI, where that is a failure.
"""

# ruff: noqa: F401, F811 (the shared fixtures are imported by name, which pytest needs)

import gzip
import re
import secrets
import shutil
import subprocess
import time
import uuid as uuidlib
from pathlib import Path

import pytest

from deploy import services, tokens
from deploy.models import OperatingSystem, Profile, ServerDeploy, Template
from inventory.models import Interface, Server
from tests.integration.inventory.registration_helpers import acme, enrolment
from tests.integration.inventory.test_agent_qemu import (
    BUSYBOX,
    HOST_FROM_GUEST,
    QEMU,
    TOOL_TIMEOUT,
    build_initramfs,
    portal_port,
    unavailable,
    vm_kernel,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

INSTALL_TIMEOUT = 180  # seconds for the install boot; about 30 s on two TCG cores
LOCALBOOT_TIMEOUT = 90  # the second boot only gets as far as iPXE's script
MEMORY_MIB = 512
IPXE_ROM = Path("/usr/lib/ipxe/qemu/efi-virtio.rom")  # what QEMU loads for virtio-net
FINISHED = re.compile(r"dcportal-install: (finished|failed: .*)")

# Laid over the agent test's /init: same start (modules, DHCP), then the installer's work.
INIT = r"""#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1

finish() {
    echo "dcportal-install: $1"
    sync
    reboot -f
}

ks=
for word in $(cat /proc/cmdline); do
    case $word in inst.ks=*) ks=${word#*=} ;; esac
done
while read -r module; do
    insmod "/modules/$module.ko" || echo "dcportal-install: insmod $module failed"
done </modules/order
tries=0
while [ ! -e /sys/class/net/eth0 ] && [ "$tries" -lt 50 ]; do
    sleep 0.1
    tries=$((tries + 1))
done
ip link set lo up
ip link set eth0 up || finish "failed: no eth0"
udhcpc -i eth0 -s /etc/udhcpc.script -n -q -t 10 -T 1 || finish "failed: no DHCP lease"

echo "dcportal-install: dmi uuid=$(cat /sys/class/dmi/id/product_uuid)" \
    "serial=$(cat /sys/class/dmi/id/product_serial)"
portal=
for word in $(cat /proc/cmdline); do
    case $word in dcportal.url=*) portal=${word#*=} ;; esac
done
timeout 60 wget -q -O /agent.sh "$portal/inventory/agent.sh" || finish "failed: agent.sh"
sh /agent.sh || finish "failed: the agent exited with $?"

[ -n "$ks" ] || finish "failed: no inst.ks= on the command line"
timeout 60 wget -q -O /ks.cfg "$ks" || finish "failed: fetching $ks"
echo "dcportal-install: template: $(head -n 1 /ks.cfg)"
done_url=$(sed -n 's/^curl -X POST //p' /ks.cfg)
[ -n "$done_url" ] || finish "failed: no done URL in the template"
progress_url=${done_url%/done}/progress
timeout 30 wget -q -O /dev/null --post-data "percent=60&message=writing+disk" "$progress_url" \
    || finish "failed: progress"
timeout 30 wget -q -O /dev/null --post-data "message=installed+by+qemu" "$done_url" \
    || finish "failed: done"
finish finished
"""

KICKSTART = """\
# kickstart for {{ server.hostname }} ({{ server.uuid }})
text
reboot
%post
curl -X POST {{ urls.done }}
%end
"""


def laid_over(initrd, directory):
    """`initrd` with a second newc archive appended that replaces /init (the kernel unpacks
    concatenated archives in order, later files over earlier ones)."""
    root = directory / "overlay"
    root.mkdir()
    (root / "init").write_text(INIT)
    (root / "init").chmod(0o755)
    archive = subprocess.run(
        [BUSYBOX, "cpio", "-o", "-H", "newc"],
        input=b"init\n",
        cwd=root,
        capture_output=True,
        timeout=TOOL_TIMEOUT,
        check=True,
    ).stdout
    combined = directory / "install-initrd.gz"
    combined.write_bytes(initrd.read_bytes() + gzip.compress(archive, mtime=0))
    return combined


class Guest:
    def __init__(self, directory):
        self.directory = directory
        self.uuid = str(uuidlib.uuid4())
        self.serial = f"SN-PXE-{secrets.token_hex(3).upper()}"
        self.mac = "52:54:00:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))

    def boot(self, port, name, *, until, timeout):
        """PXE-boot the guest until QEMU exits or `until` (a regex) shows on its console;
        returns the serial console's text."""
        log = self.directory / f"{name}.serial.log"
        argv = [
            QEMU,
            "-accel",
            "tcg",
            "-m",
            str(MEMORY_MIB),
            "-nographic",
            "-no-reboot",
            "-boot",
            "n",
            "-uuid",
            self.uuid,
            "-smbios",
            f"type=1,serial={self.serial},manufacturer=QEMUCorp,product=PxeBox",
            "-netdev",
            f"user,id=n0,bootfile=http://{HOST_FROM_GUEST}:{port}/boot/ipxe",
            "-device",
            # QEMU's own iPXE ROM for virtio-net (Debian ipxe-qemu).
            f"virtio-net-pci,netdev=n0,mac={self.mac}",
            "-serial",
            f"file:{log}",
            "-monitor",
            "none",
        ]
        stderr = self.directory / f"{name}.qemu.stderr"
        with stderr.open("wb") as errors:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=errors, stderr=subprocess.STDOUT
            )
            try:
                deadline = time.monotonic() + timeout
                while process.poll() is None:
                    text = log.read_text(errors="replace") if log.exists() else ""
                    if re.search(until, text):
                        break
                    if "No bootable device" in text:
                        pytest.fail(f"{name}: the guest found nothing to boot:\n{text}")
                    if time.monotonic() > deadline:
                        pytest.fail(
                            f"{name}: no {until!r} within {timeout} s; console:\n"
                            + "\n".join(text.splitlines()[-60:])
                        )
                    time.sleep(0.2)
            finally:
                if process.poll() is None:
                    process.kill()
                process.wait(timeout=30)
        text = log.read_text(errors="replace") if log.exists() else ""
        problems = stderr.read_text(errors="replace")
        assert "failed to find romfile" not in problems, problems
        return text


@pytest.fixture
def ipxe_rom():
    if not IPXE_ROM.is_file():
        unavailable(f"no iPXE ROM at {IPXE_ROM} (Debian: ipxe-qemu)")
    return IPXE_ROM


def test_a_guest_pxe_boots_installs_and_then_boots_its_disk(
    vm_kernel, ipxe_rom, portal_port, enrolment, acme, admin_user, tmp_path, settings
):
    _, enrolment_key = enrolment
    portal = f"http://{HOST_FROM_GUEST}:{portal_port}"
    boot_files = tmp_path / "boot"
    (boot_files / "test").mkdir(parents=True)
    shutil.copy(vm_kernel.path, boot_files / "test" / "vmlinuz")
    initrd = laid_over(build_initramfs(vm_kernel, tmp_path), tmp_path)
    shutil.copy(initrd, boot_files / "test" / "initrd.gz")
    settings.BOOT_FILES_DIR = boot_files

    guest = Guest(tmp_path)
    server = Server.objects.create(
        hostname="pxe01.test.example", tenant=acme, uuid=guest.uuid, serial=guest.serial
    )
    Interface.objects.create(server=server, name="eth0", mac=guest.mac, boot=True)
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
    services.nodeset(user=admin_user, servers=[server], next_boot="install", profile=profile)
    token = tokens.token_for(ServerDeploy.objects.get(server=server).token_nonce)

    started = time.monotonic()
    console = guest.boot(portal_port, "install", until=FINISHED, timeout=INSTALL_TIMEOUT)
    elapsed = time.monotonic() - started
    tail = "\n".join(console.splitlines()[-60:])

    assert FINISHED.search(console) and FINISHED.search(console)[1] == "finished", tail
    # iPXE fetched the generic script, then its own by MAC, then kernel and initrd.
    hyphenated = guest.mac.replace(":", "-")
    order = [
        f"{portal}/boot/ipxe",
        f"{portal}/boot/ipxe/{hyphenated}",
        f"{portal}/boot/files/test/vmlinuz",
        f"{portal}/boot/files/test/initrd.gz",
    ]
    positions = [console.find(url) for url in order]
    assert -1 not in positions and positions == sorted(positions), (positions, tail)
    assert f"dmi uuid={guest.uuid} serial={guest.serial}" in console
    assert "dcportal-install: template: # kickstart for pxe01.test.example" in console
    assert "Registered pxe01.test.example (updated)." in console

    row = ServerDeploy.objects.get(server=server)
    assert (row.state, row.next_boot, row.stage, row.progress) == (
        "deployed",
        "localboot",
        "done",
        100,
    )
    assert row.message == "installed by qemu"
    assert (row.token_nonce, row.token_hash) == ("", "")
    assert row.booted and row.template_fetched and row.last_report
    server.refresh_from_db()
    assert server.status == "deployed"
    assert server.last_inventory is not None  # the agent reported from the installer
    with pytest.raises(tokens.InvalidToken):
        tokens.authenticate(token)
    assert token not in console.replace(f"/boot/build/{token}/", "")  # only in its URLs

    # The second boot gets the local-disk script: iPXE leaves, nothing is installed again.
    console = guest.boot(
        portal_port, "localboot", until=r"from the local disk", timeout=LOCALBOOT_TIMEOUT
    )
    assert "Booting pxe01.test.example from the local disk" in console
    assert "/boot/files/test/vmlinuz" not in console
    print(f"guest installed in {elapsed:.1f} s")

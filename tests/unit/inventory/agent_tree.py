"""Helpers for running the inventory agent: a busybox-only PATH, a made-up /sys and /proc, and
the values a test expects from this machine's real /sys and /proc."""

import os
import re
import shutil
from pathlib import Path

import pytest

from inventory.enrolment_views import AGENT_SOURCE
from inventory.models import normalise_uuid

BUSYBOX = shutil.which("busybox") or "/usr/bin/busybox"
# Every program the agent may run, as busybox applets; nothing else is on the PATH.
APPLETS = (
    "sh",
    "cat",
    "sed",
    "tr",
    "grep",
    "head",
    "tail",
    "sort",
    "wc",
    "mktemp",
    "rm",
    "wget",
    "readlink",
    "uname",
    "sleep",
    "timeout",
)
SKIPPED_DISKS = re.compile(r"^(loop|ram|zram|dm-|md|nbd|fd|sr)")

needs_busybox = pytest.mark.skipif(
    not Path(BUSYBOX).exists(), reason="busybox is not installed (Debian: busybox-static)"
)


def busybox_bin(directory):
    """A directory of busybox applet links: the whole toolbox of a minimal initramfs."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for applet in APPLETS:
        (directory / applet).symlink_to(BUSYBOX)
    return directory


def busybox_command(bindir, *args):
    """argv running `busybox sh args...` with an empty environment but for PATH=bindir."""
    return ["env", "-i", f"PATH={bindir}", BUSYBOX, "sh", *args]


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


def fake_machine(
    root,
    *,
    uuid="4C4C4544-0042-3510-8052-B7C04F333232",
    serial="SRV-0042",
    vendor="Dell Inc.",
    model="PowerEdge R640",
    bootif="01-AA-BB-CC-00-00-01",
    extra_dmi=None,
    hostname=None,
):
    """A /sys and /proc of a two-NIC, two-disk server; returns (sysfs, procfs)."""
    sysfs, procfs = Path(root) / "sys", Path(root) / "proc"
    dmi = sysfs / "class/dmi/id"
    values = {
        "product_uuid": uuid,
        "product_serial": serial,
        "sys_vendor": vendor,
        "product_name": model,
        "bios_version": "2.17.1",
        "board_name": "0H28RR",
        **(extra_dmi or {}),
    }
    for name, value in values.items():
        if value is not None:
            _write(dmi / name, value if isinstance(value, bytes) else f"{value}\n")
    devices = sysfs / "devices/pci0000:00"
    for index, (name, mac) in enumerate(
        [("eno1", "AA:BB:CC:00:00:01"), ("eno2", "aa:bb:cc:00:00:02")], start=1
    ):
        net = sysfs / "class/net" / name
        _write(net / "address", f"{mac}\n")
        _write(net / "operstate", "up\n" if index == 1 else "down\n")
        _write(net / "speed", "10000\n" if index == 1 else "-1\n")
        _write(net / "mtu", "1500\n")
        device = devices / f"0000:01:00.{index}"
        _write(device / "vendor", "0x14e4\n")
        (net / "device").symlink_to(device)
    # A bond that borrowed eno1's MAC, loopback, and an interface without a usable MAC.
    _write(sysfs / "class/net/bond0/address", "aa:bb:cc:00:00:01\n")
    _write(sysfs / "class/net/lo/address", "00:00:00:00:00:00\n")
    _write(sysfs / "class/net/dummy0/address", "00:00:00:00:00:00\n")
    for name, sectors, rotational, model_name in [
        ("sda", 937703088, "1", "PERC H730P Mini"),
        ("nvme0n1", 1875385008, "0", "Dell Ent NVMe 1.6TB"),
    ]:
        block = sysfs / "block" / name
        _write(block / "size", f"{sectors}\n")
        _write(block / "removable", "0\n")
        _write(block / "queue/rotational", f"{rotational}\n")
        _write(block / "device/model", f"{model_name}  \n")
    _write(sysfs / "block/loop0/size", "0\n")
    _write(sysfs / "block/sr0/size", "2097151\n")
    cpu = "".join(
        f"processor\t: {n}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6130"
        f" CPU @ 2.10GHz\nphysical id\t: {n // 4}\ncore id\t\t: {n % 4}\ncpu cores\t: 4\n\n"
        for n in range(8)
    )
    _write(procfs / "cpuinfo", cpu)
    _write(procfs / "meminfo", "MemTotal:       196608000 kB\nMemFree:        1000 kB\n")
    cmdline = "BOOT_IMAGE=/vmlinuz quiet"
    if bootif:
        cmdline += f" BOOTIF={bootif}"
    if hostname:
        cmdline += f" dcportal.hostname={hostname}"
    _write(procfs / "cmdline", cmdline + " *\n")
    return sysfs, procfs


# This machine ----------------------------------------------------------------------------------


def _read(path):
    try:
        return Path(path).read_bytes().decode(errors="replace").strip()
    except OSError:
        return ""


def real_machine():
    """What the agent should find on this machine, read independently of it."""
    dmi = Path("/sys/class/dmi/id")
    facts = {
        "uuid": _read(dmi / "product_uuid"),
        "serial": _read(dmi / "product_serial"),
        "vendor": _read(dmi / "sys_vendor"),
        "model": _read(dmi / "product_name"),
    }
    cpuinfo = _read("/proc/cpuinfo")
    facts["cpu_count"] = len(re.findall(r"^processor\s*:", cpuinfo, re.M))
    mem = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.M)
    facts["memory_bytes"] = int(mem.group(1)) * 1024 if mem else None
    facts["disks"] = {}
    for block in sorted(Path("/sys/block").iterdir()):
        size = _read(block / "size")
        if SKIPPED_DISKS.match(block.name) or not size.isdigit() or int(size) == 0:
            continue
        facts["disks"][block.name] = int(size) * 512
    macs = {}
    for net in sorted(Path("/sys/class/net").iterdir()):
        mac = _read(net / "address").lower()
        if net.name == "lo" or not re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", mac):
            continue
        if mac != "00:00:00:00:00:00":
            macs.setdefault(mac, net.name)
    facts["macs"] = macs
    try:
        facts["normalised_uuid"] = normalise_uuid(facts["uuid"]) if facts["uuid"] else None
    except Exception:  # noqa: BLE001 (firmware may write anything there)
        facts["normalised_uuid"] = None
    return facts


def agent_path():
    return str(AGENT_SOURCE)


def environment(**extra):
    """A small, explicit environment for the agent under the real /bin/sh."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"}
    env.update(extra)
    return env

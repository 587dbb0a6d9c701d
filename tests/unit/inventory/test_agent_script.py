"""The inventory agent without a portal: what it reads and the JSON it builds, under busybox alone
(`--dry-run`), and how it refuses bad usage. The live runs are in
tests/integration/inventory/test_agent_live.py."""

import json
import subprocess
from pathlib import Path

import pytest

from tests.unit.inventory.agent_tree import (
    agent_path,
    busybox_bin,
    busybox_command,
    environment,
    fake_machine,
    needs_busybox,
)

pytestmark = [pytest.mark.slow, needs_busybox]


@pytest.fixture
def bindir(tmp_path):
    return busybox_bin(tmp_path / "bin")


def dry_run(bindir, *args):
    result = subprocess.run(
        busybox_command(bindir, agent_path(), "--dry-run", *args),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout.decode("utf-8", errors="replace"))


def test_busybox_alone_reads_a_whole_server(bindir, tmp_path):
    sysfs, procfs = fake_machine(tmp_path / "m")
    report = dry_run(bindir, "--sysfs", str(sysfs), "--procfs", str(procfs))
    assert report["uuid"] == "4C4C4544-0042-3510-8052-B7C04F333232"
    assert report["serial"] == "SRV-0042"
    assert report["vendor"] == "Dell Inc."
    assert report["model"] == "PowerEdge R640"
    assert report["dmi"] == {"bios_version": "2.17.1", "board_name": "0H28RR"}
    assert report["cpu"] == {
        "count": 8,
        "model": "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz",
        "sockets": 2,
        "cores": 8,
    }
    assert report["memory"] == {"total_bytes": 196608000 * 1024}
    # loop0 (empty) and sr0 (optical) are no disks; the model loses its padding.
    assert report["disks"] == [
        {
            "name": "nvme0n1",
            "size_bytes": 1875385008 * 512,
            "removable": False,
            "rotational": False,
            "model": "Dell Ent NVMe 1.6TB",
        },
        {
            "name": "sda",
            "size_bytes": 937703088 * 512,
            "removable": False,
            "rotational": True,
            "model": "PERC H730P Mini",
        },
    ]
    # Physical NICs first: the bond's borrowed MAC stays with eno1; lo and zero MACs are out.
    assert [(i["name"], i["mac"]) for i in report["interfaces"]] == [
        ("eno1", "aa:bb:cc:00:00:01"),
        ("eno2", "aa:bb:cc:00:00:02"),
    ]
    eno1, eno2 = report["interfaces"]
    assert eno1["boot"] is True and "boot" not in eno2  # BOOTIF=01-AA-BB-CC-00-00-01
    assert eno1["operstate"] == "up" and eno1["speed_mbps"] == 10000 and eno1["mtu"] == 1500
    assert eno2["speed_mbps"] is None  # the kernel says -1 for a link that is down
    assert eno1["virtual"] is False
    assert report["kernel"]["release"]  # from busybox uname
    assert "hostname" not in report and "tenant" not in report


def test_strings_are_escaped_into_valid_json(bindir, tmp_path):
    nasty = 'Quote " back\\slash\ttab\x01bell'
    sysfs, procfs = fake_machine(
        tmp_path / "m",
        model=nasty,
        vendor="Société Générale",
        extra_dmi={"board_vendor": "line one\nline two", "bios_vendor": b"Latin-1 \xe9\n"},
    )
    report = dry_run(bindir, "--sysfs", str(sysfs), "--procfs", str(procfs))
    assert report["model"] == 'Quote " back\\slash\ttabbell'  # control characters dropped
    assert report["vendor"] == "Société Générale"  # UTF-8 passes through untouched
    assert report["dmi"]["board_vendor"] == "line one\nline two"
    assert report["dmi"]["bios_vendor"] == "Latin-1 \ufffd"  # a stray byte: the portal copes


def test_a_machine_without_dmi_or_disks_still_reports(bindir, tmp_path):
    sysfs, procfs = fake_machine(tmp_path / "m", bootif=None)
    for path in sorted((sysfs / "class/dmi/id").iterdir()):
        path.unlink()
    report = dry_run(bindir, "--sysfs", str(sysfs), "--procfs", str(procfs))
    assert report["uuid"] is None
    assert report["serial"] == "" and report["vendor"] == "" and report["dmi"] == {}
    assert not any("boot" in i for i in report["interfaces"])


def test_kernel_command_line_and_arguments_name_the_host(bindir, tmp_path):
    sysfs, procfs = fake_machine(tmp_path / "m", hostname="rack1-node07")
    report = dry_run(bindir, "--sysfs", str(sysfs), "--procfs", str(procfs))
    assert report["hostname"] == "rack1-node07"
    report = dry_run(
        bindir, "--sysfs", str(sysfs), "--procfs", str(procfs), "--hostname=web01", "--tenant", "x"
    )
    assert report["hostname"] == "web01" and report["tenant"] == "x"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--token"], "--token needs a value"),
        (["--bogus"], "unknown argument: --bogus"),
        (["--token", "dce_a_b"], "no portal URL"),
        (["--url", "ftp://x", "--token", "dce_a_b"], "must start with http"),
        (["--url", "http://127.0.0.1:9/"], "no token"),
        (["--url", "http://127.0.0.1:9/", "--token", "dce_a b;rm"], "token is malformed"),
        (["--retries", "0"], "--retries needs a positive number"),
        (["--url", "http://127.0.0.1:9/", "--token", "k", "--client", "lynx"], "wget or curl"),
    ],
)
def test_bad_usage_exits_2_with_a_message(bindir, tmp_path, args, message):
    sysfs, procfs = fake_machine(tmp_path / "m")
    result = subprocess.run(
        busybox_command(
            bindir, agent_path(), "--sysfs", str(sysfs), "--procfs", str(procfs), *args
        ),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr.decode()
    assert result.stdout == b""


def test_help_works_when_piped_into_sh(bindir):
    script = Path(agent_path()).read_bytes()
    result = subprocess.run(
        busybox_command(bindir, "-s", "--", "--help"),
        input=script,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert b"--token KEY" in result.stdout


def test_the_script_is_posix_sh(tmp_path):
    # dash is the strict POSIX shell of Debian; busybox ash is checked by the tests above.
    for shell in ("/bin/sh", "/usr/bin/dash"):
        result = subprocess.run(
            [shell, "-n", agent_path()], capture_output=True, timeout=30, check=False
        )
        assert result.returncode == 0, (shell, result.stderr)
    sysfs, procfs = fake_machine(tmp_path / "m")
    result = subprocess.run(
        [
            "/usr/bin/dash",
            agent_path(),
            "--dry-run",
            "--sysfs",
            str(sysfs),
            "--procfs",
            str(procfs),
        ],
        capture_output=True,
        timeout=60,
        env=environment(),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["serial"] == "SRV-0042"

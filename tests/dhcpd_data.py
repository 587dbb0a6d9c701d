"""dhcpd.conf test data (tests/data/dhcpd/), Debian's example file, and the real ISC checker."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data" / "dhcpd"
DEBIAN_EXAMPLE = Path("/usr/share/doc/isc-dhcp-server/examples/dhcpd.conf.example")
# The files meant to be valid, and whether dhcpd must check them in DHCPv6 mode.
VALID = {"cobbler.conf": False, "foreman.conf": False, "handwritten.conf": False, "ipv6.conf": True}
BROKEN = ("missing_semicolon.conf", "unbalanced_brace.conf", "bad_mac.conf", "bad_ip.conf")


def path(name):
    return DATA / name


def text(name):
    return path(name).read_text()


def debian_example():
    if not DEBIAN_EXAMPLE.exists():
        pytest.skip(f"{DEBIAN_EXAMPLE} is absent: install isc-dhcp-server (.ci/run does)")
    return DEBIAN_EXAMPLE.read_text()


def uncomment(example):
    """Debian's example with its commented-out configuration switched on. Its config lines are
    commented as '#subnet', '#}' or '#  range' (two spaces), its prose as '# The ...'."""
    return "".join(
        line[1:] if re.match(r"^#(\S|  )", line) else line for line in example.splitlines(True)
    )


def dhcpd():
    binary = shutil.which("dhcpd") or (
        "/usr/sbin/dhcpd" if os.access("/usr/sbin/dhcpd", os.X_OK) else None
    )
    if binary is None:
        pytest.skip("dhcpd is absent: install isc-dhcp-server (.ci/run does)")
    return binary


def dhcpd_check(file, *, ipv6=False):
    """Run ISC's own syntax check (`dhcpd -t -cf FILE`); returns (exit status, stderr).
    Not -q: it would also hide the duplicate checks."""
    args = [dhcpd(), *(["-6"] if ipv6 else []), "-t", "-cf", str(file)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    return done.returncode, done.stderr

"""Ask the real daemon whether it would load a configuration (`makedhcp --check`).

    result = check("kea", text)   # CheckResult(ok, command, output); CheckerMissing if absent

Each daemon reads the text from a private temporary file in its own test mode: `dhcpd -t -cf`
(never -q, which hides the duplicate warnings), `kea-dhcp4 -t`, `dnsmasq --test -C`. Argument
lists only; a checker that hangs is stopped after `timeout` seconds.
"""

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

# format: (program, arguments before the file, Debian package that provides it)
CHECKERS = {
    "isc": ("dhcpd", ["-t", "-cf"], "isc-dhcp-server"),
    "kea": ("kea-dhcp4", ["-t"], "kea-dhcp4-server"),
    "dnsmasq": ("dnsmasq", ["--test", "-C"], "dnsmasq-base"),
}
FILE_NAMES = {"isc": "dhcpd.conf", "kea": "kea-dhcp4.conf", "dnsmasq": "dnsmasq.conf"}
# The daemons live in sbin, which an unprivileged user's PATH often lacks.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])


class CheckerMissing(Exception):
    """The daemon that checks this format is not installed."""


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    command: list
    output: str  # stdout and stderr together, as the daemon wrote them

    @property
    def program(self):
        return Path(self.command[0]).name


def program(fmt):
    """The checker's path, or raise CheckerMissing naming the package to install."""
    name, _, package = CHECKERS[fmt]
    path = shutil.which(name, path=SEARCH_PATH)
    if path is None:
        raise CheckerMissing(f"{name} is not installed (Debian package {package})")
    return path


def check(fmt, text, *, timeout=60):
    path = program(fmt)
    _, arguments, _ = CHECKERS[fmt]
    with tempfile.TemporaryDirectory(prefix="dcportal-dhcp-check-") as directory:
        config = Path(directory) / FILE_NAMES[fmt]
        config.write_text(text, encoding="utf-8")
        command = [path, *arguments, str(config)]
        # Kea writes its PID and logger lock files under these, not under /run.
        env = {**os.environ, "KEA_PIDFILE_DIR": directory, "KEA_LOCKFILE_DIR": directory}
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout,
                env=env,
                cwd=directory,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return CheckResult(False, command, f"{Path(path).name} did not answer in {timeout} s")
    output = (done.stdout + done.stderr).strip()
    return CheckResult(done.returncode == 0, command, output)

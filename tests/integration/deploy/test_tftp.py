"""`manage.py tftpd`'s server against a real TFTP client (atftp): per-MAC PXELinux and GRUB
configs rendered from the database, a bootloader from the boot files directory, missing and
forbidden names, refused uploads; nothing written to disk."""

import os
import shutil
import socket
import subprocess
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connections

from deploy import services
from deploy.boot.tftp import BootTftpServer
from deploy.management.commands.tftpd import database_configs
from tests.peers import sims

from .build_helpers import make_profile, make_servers, token_of

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BASE = "http://10.0.0.1:8000"
PXELINUX = Path("/usr/lib/PXELINUX/pxelinux.0")
TIMEOUT = 30


def atftp():
    program = shutil.which("atftp")
    if not program:
        message = "atftp is not installed (Debian atftp; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and {message}", pytrace=False)
        pytest.skip(message)
    return program


@pytest.fixture
def boot_dir(tmp_path):
    root = tmp_path / "tftpboot"
    root.mkdir()
    if PXELINUX.is_file():
        shutil.copy(PXELINUX, root / "pxelinux.0")
    else:
        (root / "pxelinux.0").write_bytes(os.urandom(40000))
    (tmp_path / "secret").write_text("outside the root")
    (root / "escape").symlink_to(tmp_path / "secret")
    return root


@pytest.fixture
def tftp(boot_dir):
    server = BootTftpServer(
        files_dir=boot_dir,
        configs=database_configs(BASE),
        thread_done=connections.close_all,
    )
    port = server.start(listen="127.0.0.1", port=0, timeout=1)
    yield port
    server.stop()


def get(port, name, out):
    return subprocess.run(
        [atftp(), "-g", "-r", name, "-l", str(out), "127.0.0.1", str(port)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def test_configs_from_the_database_and_files_from_the_directory(
    tftp, boot_dir, tmp_path, tenants, admin_user
):
    (server,) = make_servers(tenants[0], 1)
    services.nodeset(user=admin_user, servers=[server], next_boot="install", profile=make_profile())
    mac = server.interfaces.get().mac.replace(":", "-")
    before = sorted(p.name for p in boot_dir.iterdir())

    out = tmp_path / "config"
    result = get(tftp, f"pxelinux.cfg/01-{mac}", out)
    assert result.returncode == 0, result.stderr
    config = out.read_text()
    assert f"KERNEL {BASE}/boot/files/rocky9/vmlinuz" in config
    assert f"inst.ks={BASE}/boot/build/{token_of(server)}/install" in config

    for name in (f"grub/grub.cfg-01-{mac}", f"grub.cfg-01-{mac}"):
        result = get(tftp, name, out)
        assert result.returncode == 0, result.stderr
        assert "linux (http,10.0.0.1,8000)/boot/files/rocky9/vmlinuz" in out.read_text()

    result = get(tftp, "pxelinux.cfg/default", out)
    assert result.returncode == 0 and "LOCALBOOT 0" in out.read_text()
    result = get(tftp, "pxelinux.cfg/01-02-00-00-00-00-01", out)
    assert result.returncode == 0 and "DEFAULT discovery" in out.read_text()

    loader = tmp_path / "pxelinux.0"
    result = get(tftp, "pxelinux.0", loader)
    assert result.returncode == 0, result.stderr
    assert loader.read_bytes() == (boot_dir / "pxelinux.0").read_bytes()

    # Nothing was written beside the boot files.
    assert sorted(p.name for p in boot_dir.iterdir()) == before


@pytest.mark.parametrize(
    "name",
    ["missing.0", "escape", "../secret", "pxelinux.cfg/C0A80001", "/etc/passwd"],
)
def test_missing_and_forbidden_names(tftp, tmp_path, name, db):
    out = tmp_path / "out"
    result = get(tftp, name, out)
    assert result.returncode != 0
    assert not out.exists() or "outside the root" not in out.read_text(errors="replace")


def test_uploads_are_refused(tftp, boot_dir, tmp_path):
    local = tmp_path / "upload"
    local.write_text("not welcome")
    result = subprocess.run(
        [atftp(), "-p", "-l", str(local), "-r", "pxelinux.0", "127.0.0.1", str(tftp)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode != 0
    if PXELINUX.is_file():
        assert (boot_dir / "pxelinux.0").read_bytes() == PXELINUX.read_bytes()


def test_the_command_serves_until_interrupted(monkeypatch, boot_dir, tmp_path, db):
    port = sims.free_port(socket.SOCK_DGRAM)
    out = tmp_path / "default"
    seen = {}

    def operator_presses_ctrl_c(server):
        seen["result"] = get(port, "pxelinux.cfg/default", out)
        raise KeyboardInterrupt

    monkeypatch.setattr(BootTftpServer, "wait", operator_presses_ctrl_c)
    printed = StringIO()
    call_command(
        "tftpd", "--port", str(port), "--root", str(boot_dir), "--base-url", BASE, stdout=printed
    )
    assert seen["result"].returncode == 0, seen["result"].stderr
    assert "LOCALBOOT 0" in out.read_text()
    assert printed.getvalue().splitlines() == [
        f"TFTP on 127.0.0.1:{port}: files from {boot_dir}, configs for {BASE} (Ctrl-C stops)",
        "stopping",
    ]

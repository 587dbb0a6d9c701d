"""The inventory agent for real: served by a live portal, run by a real shell, posting over HTTP.

(a) /bin/sh with this machine's own /sys and /proc and the system's curl or wget: the portal
    must end up with this machine's real values (read here, independently of the agent);
(b) busybox alone (`env -i`, PATH = a directory of busybox applet links): fetch the script with
    busybox wget, pipe it into busybox sh, post with busybox wget; and its failures: portal
    unreachable, token refused, report refused.

A machine without SMBIOS tables (many VMs and sandboxes have no /sys/class/dmi) has no identity:
the portal then holds the report as a "placeholder" conflict instead of creating a server, and
the tests check the same facts on that conflict's report.
"""

# ruff: noqa: F401, F811 (the shared fixtures are imported by name, which pytest needs)

import os
import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

from inventory import registration
from inventory.models import Conflict, Interface, Server, is_placeholder_serial
from tests.integration.inventory.registration_helpers import acme, enrolment, globex
from tests.unit.inventory.agent_tree import (
    busybox_bin,
    busybox_command,
    environment,
    fake_machine,
    needs_busybox,
    real_machine,
)

# pytest-django's live server binds to this address (the fixture reads it when first used).
os.environ.setdefault("DJANGO_LIVE_TEST_SERVER_ADDRESS", "127.0.0.1")

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
RUN_TIMEOUT = 120


@pytest.fixture
def portal(live_server):
    """Base URL of the live portal, always on 127.0.0.1."""
    return f"http://127.0.0.1:{live_server.thread.port}"


@pytest.fixture
def agent_file(portal, tmp_path):
    """The agent as the portal serves it (its register URL baked in)."""
    with urllib.request.urlopen(f"{portal}/inventory/agent.sh", timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/x-shellscript")
        script = response.read()
    assert f"{portal}/api/inventory/register/".encode() in script
    path = tmp_path / "agent.sh"
    path.write_bytes(script)
    return path


@pytest.fixture
def bindir(tmp_path):
    return busybox_bin(tmp_path / "bin")


def run(argv, env=None):
    return subprocess.run(
        argv,
        capture_output=True,
        timeout=RUN_TIMEOUT,
        env=env,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_reported_this_machine(result, tenant):
    """The portal holds this machine's real facts: on a server, or on a no-identity conflict."""
    stdout, stderr = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 0, stderr
    machine = real_machine()
    dmi_present = Path("/sys/class/dmi/id").is_dir()
    if not dmi_present and shutil.which("dmidecode"):
        pytest.skip("no /sys/class/dmi here, but dmidecode is: the agent's identity is its own")
    identified = machine["normalised_uuid"] is not None or not is_placeholder_serial(
        machine["serial"]
    )
    if identified:
        server = Server.objects.get(tenant=tenant)
        assert f"Registered {server.hostname} (created)." in stdout
        assert (str(server.uuid) if server.uuid else None) == machine["normalised_uuid"]
        assert server.serial == machine["serial"]
        assert server.vendor == machine["vendor"] and server.model == machine["model"]
        assert server.last_inventory is not None
        assert set(server.interfaces.values_list("mac", flat=True)) == set(machine["macs"])
        facts = server.attributes
    else:
        # Honestly so: this machine has no SMBIOS identity, so nothing may be created.
        assert "Held for review" in stderr and "no identity" in stderr
        assert not Server.objects.exists()
        conflict = Conflict.objects.get(tenant=tenant, kind=Conflict.Kind.PLACEHOLDER)
        facts = conflict.report
        assert facts["uuid"] in (None, machine["uuid"]) and facts["serial"] == machine["serial"]
    assert facts["cpu"]["count"] == machine["cpu_count"] > 0
    assert facts["memory"]["total_bytes"] == machine["memory_bytes"]
    assert {d["name"]: d["size_bytes"] for d in facts["disks"]} == machine["disks"]
    assert {i["mac"]: i["name"] for i in facts["interfaces"]} == machine["macs"]
    assert facts["kernel"]["release"] == os.uname().release
    return facts


# (a) This machine, the system's shell and HTTP clients --------------------------------------


@pytest.mark.parametrize("client", ["curl", "wget"])
def test_agent_reports_this_machine_with_the_system_shell(agent_file, enrolment, acme, client):
    if not shutil.which(client):
        pytest.skip(f"{client} is not installed")
    _, key = enrolment
    result = run(
        ["/bin/sh", str(agent_file), "--client", client, "--retries", "1"],
        env=environment(DCPORTAL_TOKEN=key),
    )
    assert key not in result.stdout.decode() + result.stderr.decode()
    assert_reported_this_machine(result, acme)
    # The same machine again: nothing new, nothing doubled.
    conflicts, interfaces = Conflict.objects.count(), Interface.objects.count()
    again = run(
        ["/bin/sh", str(agent_file), "--client", client, "--retries", "1"],
        env=environment(DCPORTAL_TOKEN=key),
    )
    assert again.returncode == 0, again.stderr
    assert Conflict.objects.count() == conflicts and Interface.objects.count() == interfaces
    assert Server.objects.count() <= 1


@pytest.mark.parametrize("client", ["curl", "wget"])
def test_system_clients_report_the_portals_refusal(agent_file, enrolment, admin_user, client):
    if not shutil.which(client):
        pytest.skip(f"{client} is not installed")
    token, key = enrolment
    registration.revoke_enrolment_token(user=admin_user, token=token)
    result = run(
        ["/bin/sh", str(agent_file), "--token", key, "--client", client, "--retries", "1"],
        env=environment(),
    )
    assert result.returncode == 1
    stderr = result.stderr.decode()
    assert "the portal refused the token (HTTP 401)" in stderr
    if client == "curl":  # curl keeps the body of an error answer; wget does not
        assert "Invalid, expired or revoked enrolment token." in stderr
    assert key not in stderr


# (b) busybox alone ------------------------------------------------------------------------------


@needs_busybox
def test_busybox_only_fetches_and_runs_the_agent_on_this_machine(portal, bindir, enrolment, acme):
    _, key = enrolment
    # No curl, no coreutils, no python: what is on PATH is busybox and nothing else.
    probe = run(busybox_command(bindir, "-c", "command -v curl python3 bash; ls /nonexistent"))
    assert probe.stdout == b""
    script = 'wget -qO- "$1" | sh -s -- --token "$2" --retries 1'
    result = run(busybox_command(bindir, "-c", script, "sh", f"{portal}/inventory/agent.sh", key))
    assert_reported_this_machine(result, acme)


@needs_busybox
def test_busybox_only_registers_a_server_and_again_changes_nothing(
    agent_file, bindir, enrolment, acme, tmp_path
):
    _, key = enrolment
    sysfs, procfs = fake_machine(tmp_path / "m", extra_dmi={"bios_vendor": b"Dell \xe9\n"})
    argv = busybox_command(
        bindir, str(agent_file), "--sysfs", str(sysfs), "--procfs", str(procfs), "--retries", "1"
    )
    result = run([*argv[:2], f"DCPORTAL_TOKEN={key}", *argv[2:]])
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == "Registered node-aabbcc000001 (created).\n"
    server = Server.objects.get()
    assert server.tenant == acme
    assert str(server.uuid) == "4c4c4544-0042-3510-8052-b7c04f333232"
    assert (server.serial, server.vendor, server.model) == (
        "SRV-0042",
        "Dell Inc.",
        "PowerEdge R640",
    )
    assert sorted(server.interfaces.values_list("name", "mac", "boot")) == [
        ("eno1", "aa:bb:cc:00:00:01", True),
        ("eno2", "aa:bb:cc:00:00:02", False),
    ]
    assert server.attributes["cpu"] == {
        "count": 8,
        "model": "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz",
        "sockets": 2,
        "cores": 8,
    }
    assert [d["name"] for d in server.attributes["disks"]] == ["nvme0n1", "sda"]
    assert server.attributes["dmi"]["bios_vendor"] == "Dell \ufffd"  # a Latin-1 byte survives
    updated = server.updated

    again = run([*argv[:2], f"DCPORTAL_TOKEN={key}", *argv[2:]])
    assert again.returncode == 0, again.stderr
    assert again.stdout.decode() == "Registered node-aabbcc000001 (unchanged).\n"
    server.refresh_from_db()
    assert server.updated == updated and Server.objects.count() == 1
    assert not Conflict.objects.exists()


@needs_busybox
def test_busybox_only_a_machine_without_identity_is_held(agent_file, bindir, enrolment, tmp_path):
    _, key = enrolment
    sysfs, procfs = fake_machine(tmp_path / "m", uuid=None, serial="To Be Filled By O.E.M.")
    result = run(
        busybox_command(
            bindir, str(agent_file), "--token", key, "--sysfs", str(sysfs), "--procfs", str(procfs)
        )
    )
    assert result.returncode == 0, result.stderr
    assert "Held for review, nothing was applied: no identity" in result.stderr.decode()
    assert not Server.objects.exists()
    assert Conflict.objects.get().kind == Conflict.Kind.PLACEHOLDER


@needs_busybox
def test_busybox_only_fails_clearly_when_the_portal_is_unreachable(agent_file, bindir, enrolment):
    _, key = enrolment
    url = f"http://127.0.0.1:{closed_port()}/"
    result = run(
        busybox_command(bindir, str(agent_file), "--url", url, "--token", key, "--retries", "1")
    )
    assert result.returncode == 1
    stderr = result.stderr.decode()
    assert f"cannot reach the portal at {url}api/inventory/register/" in stderr
    assert key not in stderr and not Server.objects.exists() and not Conflict.objects.exists()


@needs_busybox
@pytest.mark.parametrize("token", ["forged", "revoked", "api-token-of-nobody"])
def test_busybox_only_fails_clearly_when_the_token_is_wrong(
    agent_file, bindir, enrolment, admin_user, tmp_path, token
):
    real, key = enrolment
    if token == "forged":
        key = f"dce_{real.prefix}_{'A' * 43}"
    elif token == "revoked":
        registration.revoke_enrolment_token(user=admin_user, token=real)
    else:
        key = "dcp_000000000000_nothing"
    sysfs, procfs = fake_machine(tmp_path / "m")
    result = run(
        busybox_command(
            bindir, str(agent_file), "--token", key, "--sysfs", str(sysfs), "--procfs", str(procfs)
        )
    )
    assert result.returncode == 1
    assert "the portal refused the token (HTTP 401)" in result.stderr.decode()
    assert not Server.objects.exists()


@needs_busybox
def test_busybox_only_fails_clearly_when_the_report_is_refused(
    agent_file, bindir, enrolment, tmp_path
):
    _, key = enrolment
    sysfs, procfs = fake_machine(tmp_path / "m")
    result = run(
        busybox_command(
            bindir,
            str(agent_file),
            "--token",
            key,
            "--hostname",
            "not_a_hostname",
            "--sysfs",
            str(sysfs),
            "--procfs",
            str(procfs),
        )
    )
    assert result.returncode == 1
    assert "the portal refused the report (HTTP 400)" in result.stderr.decode()
    assert not Server.objects.exists()

"""Each format, generated from a realistic inventory, is accepted by the real daemon's checker:
`dhcpd -t -cf`, `kea-dhcp4 -t`, `dnsmasq --test -C`. Each checker is also shown to refuse a
broken file, so a passing check means something. `makedhcp --check` runs the same checkers."""

import json
import os
import stat
import subprocess
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from deploy import dhcp_services
from deploy.dhcp import isc, isc_parser
from tests.integration.deploy.dhcp_helpers import (
    BOOT_URL,
    NEXT_SERVER,
    SCRIPT_URL,
    SECOND_INTERFACES,
    SERVERS,
    daemon,
    make_fleet,
)
from tests.unit.deploy.dhcp_data import hostile_config

pytestmark = pytest.mark.django_db
RESERVATIONS = SERVERS + SECOND_INTERFACES
DAEMONS = {
    "isc": ("dhcpd", "isc-dhcp-server"),
    "kea": ("kea-dhcp4", "kea-dhcp4-server"),
    "dnsmasq": ("dnsmasq", "dnsmasq-base"),
}


@pytest.fixture
def fleet(tenants):
    return make_fleet(tenants[0])


def generate(user, fmt, **boot):
    return dhcp_services.generate(user=user, fmt=fmt, boot_url=BOOT_URL, **boot).text


def run(command, tmp_path):
    env = {**os.environ, "KEA_PIDFILE_DIR": str(tmp_path), "KEA_LOCKFILE_DIR": str(tmp_path)}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path, check=False
    )
    return done.returncode, done.stdout + done.stderr


def dhcpd(tmp_path, text):
    path = tmp_path / "dhcpd.conf"
    path.write_text(text)
    # Never -q: it hides the warnings about duplicates.
    return run([daemon("dhcpd", "isc-dhcp-server"), "-t", "-cf", str(path)], tmp_path)


def kea(tmp_path, text):
    path = tmp_path / "kea-dhcp4.conf"
    path.write_text(text)
    return run([daemon("kea-dhcp4", "kea-dhcp4-server"), "-t", str(path)], tmp_path)


def dnsmasq(tmp_path, text):
    path = tmp_path / "dnsmasq.conf"
    path.write_text(text)
    return run([daemon("dnsmasq", "dnsmasq-base"), "--test", "-C", str(path)], tmp_path)


# ISC dhcpd --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["ipxe", "pxelinux", "grub"])
def test_dhcpd_accepts_the_generated_config(tmp_path, fleet, admin_user, mode):
    text = generate(admin_user, "isc", boot_mode=mode)
    status, output = dhcpd(tmp_path, text)
    assert status == 0, output
    assert "WARNING" not in output and "error" not in output.lower(), output
    parsed = isc_parser.parse(text)
    assert len(parsed.hosts) == RESERVATIONS
    assert {str(s.network) for s in parsed.subnets} == {"10.20.0.0/24", "10.20.1.0/24"}
    assert (SCRIPT_URL in text) == (mode == "ipxe")


def test_dhcpd_accepts_escaped_hostile_names(tmp_path):
    status, output = dhcpd(tmp_path, isc.render(hostile_config()))
    assert status == 0, output


def test_dhcpd_refuses_a_broken_file(tmp_path, fleet, admin_user):
    text = generate(admin_user, "isc")
    broken = text.replace("  fixed-address 10.20.0.11;\n", "  fixed-address 10.20.0.11\n", 1)
    status, output = dhcpd(tmp_path, broken)
    assert status != 0
    assert "Configuration file errors encountered" in output
    line = broken.splitlines().index("  fixed-address 10.20.0.11") + 1
    assert f"line {line + 1}" in output or f"line {line}" in output, output


def test_dhcpd_refuses_a_hostname_pasted_without_escaping(tmp_path, fleet, admin_user):
    text = generate(admin_user, "isc")
    pasted = text.replace('"node01.lab.example.com"', '"node01"; } host x { "', 1)
    status, output = dhcpd(tmp_path, pasted)
    assert status != 0, output


# Kea --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["ipxe", "pxelinux"])
def test_kea_accepts_the_generated_config(tmp_path, fleet, admin_user, mode):
    text = generate(admin_user, "kea", boot_mode=mode)
    status, output = kea(tmp_path, text)
    assert status == 0, output
    dhcp4 = json.loads(text)["Dhcp4"]
    assert sum(len(s["reservations"]) for s in dhcp4["subnet4"]) == RESERVATIONS
    assert dhcp4["next-server"] == NEXT_SERVER


def test_kea_refuses_a_duplicate_reservation(tmp_path, fleet, admin_user):
    config = json.loads(generate(admin_user, "kea"))
    reservations = config["Dhcp4"]["subnet4"][0]["reservations"]
    reservations.append({**reservations[0], "hw-address": "52:54:00:ff:ff:ff", "hostname": "x"})
    status, output = kea(tmp_path, json.dumps(config))
    assert status != 0
    assert reservations[0]["ip-address"] in output, output


def test_kea_refuses_truncated_json(tmp_path, fleet, admin_user):
    text = generate(admin_user, "kea")
    status, output = kea(tmp_path, text[: len(text) // 2])
    assert status != 0, output


# dnsmasq ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["ipxe", "grub"])
def test_dnsmasq_accepts_the_generated_config(tmp_path, fleet, admin_user, mode):
    text = generate(admin_user, "dnsmasq", boot_mode=mode)
    status, output = dnsmasq(tmp_path, text)
    assert status == 0, output
    assert "syntax check OK" in output
    assert text.count("\ndhcp-host=") == RESERVATIONS


def test_dnsmasq_refuses_a_broken_file(tmp_path, fleet, admin_user):
    text = generate(admin_user, "dnsmasq") + "dhcp-range=set:x,10.20.0.300,10.20.0.310\n"
    status, output = dnsmasq(tmp_path, text)
    assert status != 0
    assert f"line {text.count(chr(10))}" in output, output


def test_dnsmasq_refuses_a_hostname_it_cannot_carry(tmp_path, fleet, admin_user):
    text = generate(admin_user, "dnsmasq").replace(
        ",node01.lab.example.com\n", ",node 01.lab.example.com\n", 1
    )
    status, output = dnsmasq(tmp_path, text)
    assert status != 0
    assert "bad DHCP host name" in output, output


# makedhcp --check -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["isc", "kea", "dnsmasq"])
def test_makedhcp_check_then_write(tmp_path, fleet, admin_user, fmt):
    target = tmp_path / f"out.{fmt}"
    daemon(*DAEMONS[fmt])
    stdout, stderr = _call("--format", fmt, "--check", "-o", str(target), "--boot-url", BOOT_URL)
    assert f"{DAEMONS[fmt][0]}: configuration accepted" in stderr
    assert f"2 subnets, 3 pools, {RESERVATIONS} reservations" in stdout
    assert target.read_text() == generate(admin_user, fmt)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_makedhcp_check_refusal_writes_nothing(tmp_path, fleet, admin_user, monkeypatch):
    daemon("dhcpd", "isc-dhcp-server")
    target = tmp_path / "dhcpd.conf"
    target.write_text("# the running configuration\n")
    real = dhcp_services.RENDERERS["isc"]
    monkeypatch.setitem(dhcp_services.RENDERERS, "isc", lambda config: real(config) + "}\n")
    with pytest.raises(CommandError, match="dhcpd refuses the configuration; nothing was written"):
        _call("--check", "-o", str(target), "--boot-url", BOOT_URL)
    assert target.read_text() == "# the running configuration\n"
    assert [p.name for p in tmp_path.iterdir()] == ["dhcpd.conf"]


def test_makedhcp_check_without_the_daemon(tmp_path, fleet, admin_user, monkeypatch):
    monkeypatch.setattr("deploy.dhcp.check.SEARCH_PATH", str(tmp_path))
    with pytest.raises(CommandError, match=r"cannot --check: dnsmasq is not installed"):
        _call("--format", "dnsmasq", "--check", "--boot-url", BOOT_URL)


def _call(*args):
    out, err = StringIO(), StringIO()
    call_command("makedhcp", *args, "--user", "root", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()

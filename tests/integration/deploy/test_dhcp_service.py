"""deploy.dhcp_services from a real database: what goes into a configuration, names, tenant
scope, permissions, boot options and their settings, a constant number of queries; and the
same through makedhcp, the API and the portal page."""

import json
import os
from io import StringIO

import pytest
import yaml
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from deploy import dhcp_services
from deploy.dhcp.model import IPXE
from inventory.models import Interface, IPAddress, IPRange, Server, Subnet
from tests.integration.deploy.dhcp_helpers import BOOT_URL, NEXT_SERVER, SCRIPT_URL, make_fleet
from tests.integration.inventory.ipam_helpers import assert_api_error, field_errors

pytestmark = pytest.mark.django_db
URL = "/api/deploy/dhcp/{}/"


@pytest.fixture
def subnets(tenants):
    return make_fleet(tenants[0])


def build(user, **boot):
    boot.setdefault("boot_url", BOOT_URL)
    return dhcp_services.build_config(user=user, boot=dhcp_services.boot_options(**boot))


def hosts_by_name(config):
    return {host.name: host for host in config.hosts}


def add_server(tenant, subnet, n, address, *, boot=True, name="eno1"):
    server = Server.objects.create(hostname=f"extra{n}.lab.example.com", tenant=tenant)
    nic = Interface.objects.create(
        server=server, name=name, mac=f"02:00:00:00:{n:02x}:01", boot=boot
    )
    IPAddress.objects.create(address=address, subnet=subnet, interface=nic)
    return server


# What goes in -----------------------------------------------------------------------------------


def test_subnets_pools_and_reservations(subnets, admin_user):
    config = build(admin_user)
    assert [str(s.network) for s in config.subnets] == ["10.20.0.0/24", "10.20.1.0/24"]
    provisioning, storage = config.subnets
    assert provisioning.id == subnets["provisioning"].pk
    assert [str(p) for p in provisioning.pools] == [
        "10.20.0.200-10.20.0.229",
        "10.20.0.230-10.20.0.249",
    ]
    assert [str(p) for p in storage.pools] == ["10.20.1.100-10.20.1.149"]  # not the static range
    assert [str(a) for a in provisioning.dns] == ["10.20.0.53", "10.20.0.54"]
    assert (str(provisioning.gateway), provisioning.domain) == ("10.20.0.1", "lab.example.com")
    assert len(provisioning.hosts) == 30 and len(storage.hosts) == 20
    addresses = [str(h.address) for h in provisioning.hosts]
    assert addresses == sorted(addresses, key=lambda a: tuple(map(int, a.split("."))))


def test_host_names_of_boot_and_other_interfaces(subnets, admin_user, tenants):
    hosts = hosts_by_name(build(admin_user))
    boot = hosts["node05.lab.example.com:eno1"]
    assert (boot.mac, str(boot.address), boot.hostname) == (
        "52:54:00:00:00:05",
        "10.20.0.15",
        "node05.lab.example.com",
    )
    assert hosts["node05.lab.example.com:ens2f0"].hostname == "node05-ens2f0.lab.example.com"


def test_a_lone_interface_keeps_the_plain_name(subnets, admin_user, tenants):
    # Not flagged as the boot interface, but the only one reserved: no suffix needed.
    add_server(tenants[0], subnets["storage"], 1, "10.20.1.77", boot=False, name="eth 0/1")
    # Two reserved interfaces, neither the boot one: both say which they are.
    server = add_server(tenants[0], subnets["storage"], 2, "10.20.1.78", boot=False, name="Eth0:1")
    second = Interface.objects.create(server=server, name="eth1", mac="02:00:00:00:02:02")
    IPAddress.objects.create(address="10.20.1.79", subnet=subnets["storage"], interface=second)
    hosts = hosts_by_name(build(admin_user))
    assert hosts["extra1.lab.example.com:eth 0/1"].hostname == "extra1.lab.example.com"
    assert hosts["extra2.lab.example.com:Eth0:1"].hostname == "extra2-eth0-1.lab.example.com"
    assert hosts["extra2.lab.example.com:eth1"].hostname == "extra2-eth1.lab.example.com"


def test_subnets_without_dhcp_are_left_out(subnets, admin_user, tenants):
    idle = Subnet.objects.create(network="10.30.0.0/24", tenant=tenants[0])
    IPRange.objects.create(subnet=idle, start="10.30.0.10", end="10.30.0.20", kind="static")
    IPAddress.objects.create(address="10.30.0.5", subnet=idle)  # on no interface
    v6 = Subnet.objects.create(network="2001:db8::/64", tenant=tenants[0])
    IPRange.objects.create(subnet=v6, start="2001:db8::10", end="2001:db8::20", kind="dhcp")
    assert [str(s.network) for s in build(admin_user).subnets] == ["10.20.0.0/24", "10.20.1.0/24"]
    only_pool = Subnet.objects.create(network="10.31.0.0/24", tenant=tenants[0])
    IPRange.objects.create(subnet=only_pool, start="10.31.0.10", end="10.31.0.20", kind="dhcp")
    assert "10.31.0.0/24" in [str(s.network) for s in build(admin_user).subnets]


def test_queries_do_not_grow_with_the_fleet(subnets, admin_user, tenants):
    build(admin_user)  # role and permission caches are not what is measured
    with CaptureQueriesContext(connection) as few:
        build(admin_user)
    for n in range(40):
        add_server(tenants[0], subnets["provisioning"], n, f"10.20.0.{100 + n}")
    with CaptureQueriesContext(connection) as many:
        config = build(admin_user)
    assert len(config.hosts) == 90
    assert len(many) == len(few) <= 4


# Scope and permissions --------------------------------------------------------------------------


def test_tenant_scope(subnets, tenants, operator, admin_user):
    acme, globex = tenants
    theirs = Subnet.objects.create(network="10.40.0.0/24", tenant=globex)
    add_server(globex, theirs, 1, "10.40.0.10")
    # A globex interface on an acme address (written around the model's checks): its MAC and
    # host name are globex's and stay out of acme's file.
    foreign = add_server(globex, theirs, 2, "10.40.0.11")
    IPAddress.objects.create(
        address="10.20.0.99", subnet=subnets["provisioning"], interface=foreign.interfaces.get()
    )
    mine = build(operator)
    assert [str(s.network) for s in mine.subnets] == ["10.20.0.0/24", "10.20.1.0/24"]
    assert not [h for h in mine.hosts if h.hostname.startswith("extra")]
    everything = build(admin_user)
    assert "10.40.0.0/24" in [str(s.network) for s in everything.subnets]
    assert "extra2.lab.example.com" in [h.hostname for h in everything.hosts]


def test_permission_needed(subnets, make_user, tenants):
    nobody = make_user("nobody", tenants=[tenants[0]])
    with pytest.raises(PermissionDenied, match="inventory.view_subnet"):
        dhcp_services.generate(user=nobody, fmt="isc", boot_url=BOOT_URL)


# Boot options and settings ----------------------------------------------------------------------


def test_boot_options_from_the_boot_url(settings):
    settings.BOOT_URL = ""
    settings.DHCP_NEXT_SERVER = ""
    boot = dhcp_services.boot_options(boot_url="http://10.20.0.2:8000/")
    assert (str(boot.next_server), boot.mode, boot.ipxe_script_url) == (
        NEXT_SERVER,
        IPXE,
        SCRIPT_URL,
    )
    assert (boot.bios_file, boot.uefi_file) == ("undionly.kpxe", "ipxe.efi")


def test_boot_options_from_settings(settings):
    settings.BOOT_URL = "http://portal.example.com"
    settings.DHCP_NEXT_SERVER = "10.9.9.9"
    settings.DHCP_BOOT_MODE = "ipxe"
    settings.DHCP_BIOS_FILE = "ipxe/undionly.kpxe"
    settings.DHCP_UEFI_FILE = ""
    boot = dhcp_services.boot_options()
    assert str(boot.next_server) == "10.9.9.9"
    assert boot.ipxe_script_url == "http://portal.example.com/boot/ipxe"
    assert (boot.bios_file, boot.uefi_file) == ("ipxe/undionly.kpxe", "ipxe.efi")
    override = dhcp_services.boot_options(
        next_server="10.1.1.1", boot_mode="grub", uefi_file="g.efi"
    )
    assert (str(override.next_server), override.mode, override.ipxe_script_url) == (
        "10.1.1.1",
        "grub",
        "",
    )
    assert (override.bios_file, override.uefi_file) == ("ipxe/undionly.kpxe", "g.efi")


@pytest.mark.parametrize(
    ("given", "field", "words"),
    [
        ({"next_server": "10.0.0.2"}, "boot_url", "needs the portal's URL"),
        ({"boot_url": "http://portal.example.com"}, "next_server", "IPv4 address is needed"),
        ({"boot_url": BOOT_URL, "next_server": "tftp.example.com"}, "next_server", "not an IPv4"),
        ({"boot_url": "ftp://10.0.0.1", "next_server": "10.0.0.2"}, "boot_url", "not an http"),
        (
            {"boot_url": "http://10.0.0.1/" + "x" * 120, "next_server": "10.0.0.2"},
            "boot_url",
            "does not fit",
        ),
        ({"boot_url": BOOT_URL, "bios_file": "a,b"}, "bios_file", "cannot be a boot file"),
        ({"boot_url": BOOT_URL, "uefi_file": "a b"}, "uefi_file", "cannot be a boot file"),
        ({"boot_url": BOOT_URL, "boot_mode": "bootp"}, "boot_mode", "not a boot mode"),
    ],
)
def test_bad_boot_options(settings, given, field, words):
    settings.BOOT_URL = ""
    settings.DHCP_NEXT_SERVER = ""
    with pytest.raises(ValidationError) as caught:
        dhcp_services.boot_options(**given)
    errors = field_errors(caught.value)
    assert list(errors) == [field]
    assert words in errors[field][0]


def test_tftp_modes_need_no_boot_url(settings):
    settings.BOOT_URL = ""
    boot = dhcp_services.boot_options(next_server="10.0.0.2", boot_mode="pxelinux")
    assert (boot.bios_file, boot.uefi_file, boot.ipxe_script_url) == (
        "pxelinux.0",
        "grubx64.efi",
        "",
    )


def test_kea_interfaces_from_settings_and_override(subnets, admin_user, settings):
    settings.DHCP_INTERFACES = ["eth1"]
    output = dhcp_services.generate(user=admin_user, fmt="kea", boot_url=BOOT_URL)
    assert json.loads(output.text)["Dhcp4"]["interfaces-config"] == {"interfaces": ["eth1"]}
    output = dhcp_services.generate(
        user=admin_user, fmt="kea", boot_url=BOOT_URL, interfaces=["eth2", "eth3"]
    )
    assert json.loads(output.text)["Dhcp4"]["interfaces-config"] == {"interfaces": ["eth2", "eth3"]}


def test_unknown_format(admin_user):
    with pytest.raises(ValidationError) as caught:
        dhcp_services.generate(user=admin_user, fmt="bind", boot_url=BOOT_URL)
    assert list(field_errors(caught.value)) == ["format"]


# Writing ----------------------------------------------------------------------------------------


def test_write_file_replaces_atomically(tmp_path):
    target = tmp_path / "dhcpd.conf"
    target.write_text("old\n")
    os.chmod(target, 0o600)
    before = target.stat().st_ino
    dhcp_services.write_file(target, "new\n")
    assert target.read_text() == "new\n"
    assert target.stat().st_ino != before  # a new file renamed over the old one
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in tmp_path.iterdir()] == ["dhcpd.conf"]


def test_makedhcp_to_stdout(subnets, admin_user):
    out, err = StringIO(), StringIO()
    call_command(
        "makedhcp",
        "--format",
        "dnsmasq",
        "--boot-url",
        BOOT_URL,
        "--user",
        "root",
        stdout=out,
        stderr=err,
    )
    expected = dhcp_services.generate(user=admin_user, fmt="dnsmasq", boot_url=BOOT_URL).text
    assert out.getvalue() == expected
    assert err.getvalue() == ""


def test_makedhcp_reports_bad_options(subnets, admin_user, settings):
    settings.BOOT_URL = ""
    with pytest.raises(CommandError, match="boot_url: The ipxe boot mode needs"):
        call_command("makedhcp", "--user", "root", stdout=StringIO(), stderr=StringIO())


def test_makedhcp_cannot_write_into_a_missing_directory(subnets, admin_user, tmp_path):
    with pytest.raises(CommandError, match=r"cannot write .*missing/dhcpd.conf"):
        call_command(
            "makedhcp",
            "--boot-url",
            BOOT_URL,
            "-o",
            str(tmp_path / "missing" / "dhcpd.conf"),
            "--user",
            "root",
            stdout=StringIO(),
        )


# API --------------------------------------------------------------------------------------------


def test_api_isc_and_dnsmasq_as_text(subnets, admin_user, api):
    client = api.as_user(admin_user)
    for fmt in ("isc", "dnsmasq"):
        response = client.get(URL.format(fmt), {"boot_url": BOOT_URL})
        assert response.status_code == 200, response.content
        assert response["Content-Type"] == "text/plain; charset=utf-8"
        expected = dhcp_services.generate(user=admin_user, fmt=fmt, boot_url=BOOT_URL).text
        assert response.content.decode() == expected
    asked = client.get(URL.format("isc"), {"boot_url": BOOT_URL}, HTTP_ACCEPT="text/plain")
    assert asked.status_code == 200


def test_api_kea_as_json_with_overrides(subnets, admin_user, api):
    response = api.as_user(admin_user).get(
        URL.format("kea"),
        {
            "boot_url": BOOT_URL,
            "next_server": "10.20.0.3",
            "boot_mode": "pxelinux",
            "interface": ["eth1", "eth2"],
        },
    )
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    dhcp4 = response.json()["Dhcp4"]
    assert dhcp4["next-server"] == "10.20.0.3"
    assert dhcp4["interfaces-config"] == {"interfaces": ["eth1", "eth2"]}
    assert [c["boot-file-name"] for c in dhcp4["client-classes"]] == ["grubx64.efi", "pxelinux.0"]


def test_api_bad_parameters(subnets, admin_user, api):
    client = api.as_user(admin_user)
    assert_api_error(client.get(URL.format("isc"), {"nxt_server": "1"}), 400, "nxt_server")
    assert_api_error(
        client.get(URL.format("isc"), {"boot_url": BOOT_URL, "next_server": "x"}),
        400,
        "next_server",
    )
    assert_api_error(
        client.get(URL.format("isc"), {"boot_url": BOOT_URL, "bios_file": "a,b"}),
        400,
        "bios_file",
        "cannot be a boot file",
    )
    assert client.get("/api/deploy/dhcp/bind/").status_code == 404


def test_api_errors_are_json_even_when_text_is_asked_for(subnets, admin_user, api):
    client = api.as_user(admin_user)
    for asked in ({"format": "txt"}, {"HTTP_ACCEPT": "text/plain"}):
        query = {"nxt_server": "1", **{k: v for k, v in asked.items() if k == "format"}}
        headers = {k: v for k, v in asked.items() if k != "format"}
        response = client.get(URL.format("isc"), query, **headers)
        assert response["Content-Type"] == "application/json"
        assert_api_error(response, 400, "nxt_server")


def test_api_format_picks_the_renderer(subnets, admin_user, api):
    client = api.as_user(admin_user)
    text = client.get(URL.format("isc"), {"boot_url": BOOT_URL, "format": "txt"})
    assert text.status_code == 200, text.content
    assert text["Content-Type"] == "text/plain; charset=utf-8"
    kea = client.get(URL.format("kea"), {"boot_url": BOOT_URL, "format": "json"})
    assert kea.status_code == 200, kea.content
    assert "Dhcp4" in kea.json()


def test_api_permissions_and_scope(subnets, tenants, api, viewer, make_user, client):
    assert client.get(URL.format("isc")).status_code in (401, 403)
    nobody = make_user("nobody", tenants=[tenants[0]])
    assert api.as_user(nobody).get(URL.format("isc"), {"boot_url": BOOT_URL}).status_code == 403
    add_server(
        tenants[1],
        Subnet.objects.create(network="10.40.0.0/24", tenant=tenants[1]),
        1,
        "10.40.0.10",
    )
    response = api.as_user(viewer, write=False).get(URL.format("kea"), {"boot_url": BOOT_URL})
    assert response.status_code == 200
    networks = [s["subnet"] for s in response.json()["Dhcp4"]["subnet4"]]
    assert networks == ["10.20.0.0/24", "10.20.1.0/24"]


def test_api_schema_documents_the_endpoint(tmp_path):
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--file", str(out))
    operation = yaml.safe_load(out.read_text())["paths"]["/api/deploy/dhcp/{dhcp_format}/"]["get"]
    assert operation["operationId"] == "deploy_dhcp_config"
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert sorted(parameters["dhcp_format"]["schema"]["enum"]) == ["dnsmasq", "isc", "kea"]
    assert {"next_server", "boot_url", "boot_mode", "bios_file", "uefi_file", "interface"} <= set(
        parameters
    )
    assert set(operation["responses"]["200"]["content"]) == {"text/plain", "application/json"}


# Portal -----------------------------------------------------------------------------------------


def test_portal_preview_and_download(subnets, admin_user, client):
    client.force_login(admin_user)
    page = client.get("/deploy/dhcp/", {"format": "kea", "boot_url": BOOT_URL})
    assert page.status_code == 200
    html = page.content.decode()
    assert "2 subnets, 3 pools, 50 reservations" in html
    assert "&quot;subnet&quot;: &quot;10.20.0.0/24&quot;" in html
    download = client.get("/deploy/dhcp/download/", {"format": "kea", "boot_url": BOOT_URL})
    assert download.status_code == 200
    assert download["Content-Disposition"] == 'attachment; filename="kea-dhcp4.conf"'
    assert json.loads(download.content)["Dhcp4"]["next-server"] == NEXT_SERVER


def test_portal_shows_field_errors(subnets, admin_user, client, settings):
    settings.BOOT_URL = ""
    client.force_login(admin_user)
    html = client.get("/deploy/dhcp/").content.decode()
    assert "The ipxe boot mode needs the portal" in html
    assert "Download" not in html


def test_portal_long_files_are_cut_in_the_preview(subnets, admin_user, client, monkeypatch):
    monkeypatch.setattr("deploy.dhcp_views.PREVIEW_LINES", 20)
    client.force_login(admin_user)
    html = client.get("/deploy/dhcp/", {"boot_url": BOOT_URL}).content.decode()
    assert "The first 20 lines are shown; the download holds them all." in html
    assert "subnet 10.20.0.0 netmask 255.255.255.0" in html
    assert "node29" not in html


def test_portal_needs_the_permissions(subnets, make_user, tenants, client):
    client.force_login(make_user("nobody", tenants=[tenants[0]]))
    assert client.get("/deploy/dhcp/").status_code == 403
    assert client.get("/deploy/dhcp/download/").status_code == 403


def test_portal_queries_do_not_grow_with_the_fleet(subnets, admin_user, client, tenants):
    client.force_login(admin_user)
    url = "/deploy/dhcp/?boot_url=" + BOOT_URL
    client.get(url)
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    for n in range(30):
        add_server(tenants[0], subnets["provisioning"], n, f"10.20.0.{100 + n}")
    with CaptureQueriesContext(connection) as many:
        client.get(url)
    assert len(many) == len(few)

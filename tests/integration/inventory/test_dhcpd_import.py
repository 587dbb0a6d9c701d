"""inventory.dhcpd_import and `manage.py import_dhcpd`: real-world files into a real database,
idempotency, dry runs, all-or-nothing, line-numbered errors and tenant isolation."""

import ipaddress
from io import BytesIO, StringIO, TextIOWrapper

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command, execute_from_command_line
from django.core.management.base import CommandError

from dcportal import services
from dcportal.models import AuditEvent
from inventory import dhcpd_import
from inventory.models import Interface, IPAddress, IPRange, Server, Subnet
from tests import dhcpd_data

pytestmark = pytest.mark.django_db

MODELS = (Server, Interface, Subnet, IPRange, IPAddress, AuditEvent)


def counts():
    return {model.__name__: model.objects.count() for model in MODELS}


@pytest.fixture
def acme(tenants):
    return tenants[0]


@pytest.fixture
def globex(tenants):
    return tenants[1]


@pytest.fixture
def operator(make_user, acme):
    return make_user("op", roles=["operator"], tenants=[acme])


def run(text, user, tenant, **kwargs):
    return dhcpd_import.import_dhcpd(text, user=user, tenant=tenant, **kwargs)


def import_errors(text, user, tenant, **kwargs):
    with pytest.raises(dhcpd_import.DhcpdImportError) as caught:
        run(text, user, tenant, **kwargs)
    return [(p.line, p.message) for p in caught.value.problems]


def actions(result, kind=None):
    return {
        (c.kind, c.label.split(" ")[0], c.action)
        for c in result.changes
        if kind is None or c.kind == kind
    }


def ip(text):
    return ipaddress.ip_address(text)


def server(hostname):
    return Server.objects.get(hostname=hostname)


def make_server(user, tenant, hostname, *macs, **fields):
    created = services.create_object(Server, user=user, hostname=hostname, tenant=tenant, **fields)
    for number, mac in enumerate(macs):
        services.create_object(
            Interface, user=user, server=created, name=f"eth{number}", mac=mac, boot=number == 0
        )
    return created


# Real-world files ------------------------------------------------------------------------------


def test_cobbler_file_imports_servers_interfaces_addresses_and_the_subnet(admin_user, acme):
    result = run(dhcpd_data.text("cobbler.conf"), admin_user, acme, source="cobbler.conf")

    assert result.applied
    net = Subnet.objects.get()
    assert (net.network, net.tenant, net.gateway) == (
        ipaddress.ip_network("192.168.122.0/24"),
        acme,
        ip("192.168.122.1"),
    )
    assert net.dns_servers == [ip("192.168.122.1")]
    (pool,) = net.ranges.all()
    assert (pool.start, pool.end, pool.kind) == (
        ip("192.168.122.100"),
        ip("192.168.122.254"),
        IPRange.Kind.DHCP,
    )
    assert set(Server.objects.values_list("hostname", flat=True)) == {
        "web01.example.com",
        "web02.example.com",
        "db01.example.com",
        "nas01",
    }
    web01 = server("web01.example.com")
    assert web01.tenant == acme
    assert web01.attributes == {"dhcp": {"filename": "pxelinux.0", "next_server": "192.168.122.2"}}
    (eth0,) = web01.interfaces.all()
    assert (eth0.name, eth0.mac, eth0.boot) == ("eth0", "52:54:00:7c:01:01", True)
    (address,) = eth0.addresses.all()
    assert (address.address, address.subnet, address.dns_name) == (
        ip("192.168.122.11"),
        net,
        "web01.example.com",
    )
    # The gPXE filename is conditional: only next-server is known for web02.
    assert server("web02.example.com").attributes == {"dhcp": {"next_server": "192.168.122.2"}}
    # Two host blocks with one host name are one server with two interfaces.
    db01 = server("db01.example.com")
    assert db01.attributes["dhcp"] == {
        "filename": "grub/grubx64.efi",
        "next_server": "192.168.122.3",
    }
    assert list(db01.interfaces.values_list("name", "mac", "boot")) == [
        ("eth0", "52:54:00:7c:02:01", True),
        ("eth1", "52:54:00:7c:02:02", False),
    ]
    db01_addresses = IPAddress.objects.filter(interface__server=db01)
    assert sorted(str(a.address) for a in db01_addresses) == ["192.168.122.21", "192.168.122.22"]
    assert not server("nas01").interfaces.get().addresses.exists()
    # The InfiniBand host (no ethernet MAC) is skipped, with a warning at its line.
    assert (70, "host generic3: no MAC address; skipped (servers match by MAC)") in {
        (w.line, w.message) for w in result.warnings
    }
    assert result.summary() == {"create": 15, "update": 0, "unchanged": 0}


def test_second_run_changes_nothing_and_writes_no_audit_events(admin_user, acme):
    text = dhcpd_data.text("cobbler.conf")
    first = run(text, admin_user, acme)
    before = counts()

    second = run(text, admin_user, acme)

    assert counts() == before
    assert {c.action for c in second.changes} == {"unchanged"}
    assert len(second.changes) == len(first.changes)
    assert second.summary() == {"create": 0, "update": 0, "unchanged": 15}


def test_every_write_is_audited_as_the_importing_user(admin_user, acme):
    before = AuditEvent.objects.count()

    result = run(dhcpd_data.text("foreman.conf"), admin_user, acme)

    events = AuditEvent.objects.order_by("id")[before:]
    assert len(events) == result.summary()["create"]
    assert {e.actor_name for e in events} == {"root"}
    assert {e.tenant_id for e in events} == {acme.pk}


def test_foreman_omapi_file(admin_user, acme):
    result = run(dhcpd_data.text("foreman.conf"), admin_user, acme)

    assert set(Server.objects.values_list("hostname", flat=True)) == {
        "app01.example.com",
        "app02.example.com",
        "app03.example.com",
    }  # old01 was deleted through OMAPI
    assert server("app02.example.com").attributes["dhcp"] == {
        "filename": "grub2/grubx64.efi",
        "next_server": "10.20.0.5",
    }
    net = Subnet.objects.get()
    assert (str(net.network), str(net.gateway), net.domain) == (
        "10.20.0.0/22",
        "10.20.0.1",
        "example.com",
    )
    assert [str(a) for a in net.dns_servers] == ["10.20.0.10", "10.20.0.11"]
    assert list(net.ranges.values_list("start", "end")) == [(ip("10.20.1.0"), ip("10.20.1.254"))]
    warned = {w.line for w in result.warnings}
    assert {7, 32, 43, 45, 94} <= warned  # key, if, include, failover, deleted host


def test_hand_written_file(admin_user, acme):
    result = run(dhcpd_data.text("handwritten.conf"), admin_user, acme)

    floor0 = Subnet.objects.get(network="10.30.0.0/24")
    floor1 = Subnet.objects.get(network="10.30.1.0/24")
    assert (floor0.name, floor0.domain, str(floor0.gateway)) == (
        "floor2",
        "lab.example.net",
        "10.30.0.1",
    )
    assert floor1.domain == "floor2.lab.example.net"
    assert sorted((str(r.start), str(r.end)) for r in floor1.ranges.all()) == [
        ("10.30.1.100", "10.30.1.150"),
        ("10.30.1.50", "10.30.1.50"),
    ]
    # The router given by name is not an address: no gateway, and a warning says so.
    assert Subnet.objects.get(network="10.30.8.0/24").gateway is None
    messages = {(w.line, w.message) for w in result.warnings}
    assert any(line == 47 and "gateway not recorded" in m for line, m in messages)
    assert server("node01").attributes["dhcp"] == {
        "filename": "pxelinux.0",
        "next_server": "10.30.0.5",
        "server_name": 'boot "main" server; primary',
    }
    assert server("node01").interfaces.get().mac == "00:25:90:0a:0b:01"
    node03 = server("node03.hpc.lab.example.net")
    assert node03.attributes["dhcp"]["next_server"] == "10.30.0.6"
    assert sorted(str(a.address) for a in node03.interfaces.get().addresses.all()) == [
        "10.30.1.20",
        "10.30.1.21",
    ]
    # fixed-address by host name: names are not resolved, so the server has no address.
    assert not IPAddress.objects.filter(interface__server__hostname="fantasia").exists()
    assert any(line == 82 and "is a host name" in m for line, m in messages)
    assert server("printer").interfaces.get().addresses.get().address == ip("10.30.8.20")


def test_ipv6_file(admin_user, acme):
    result = run(dhcpd_data.text("ipv6.conf"), admin_user, acme)

    storage = Subnet.objects.get(network="2001:db8:40::/64")
    assert [str(a) for a in storage.dns_servers] == ["2001:db8:40::53", "2001:db8:40::54"]
    assert storage.gateway is None
    assert list(storage.ranges.values_list("start", "end")) == [
        (ip("2001:db8:40::1000"), ip("2001:db8:40::1fff"))
    ]
    address = IPAddress.objects.get()
    assert (str(address.address), address.subnet, address.interface.server.hostname) == (
        "2001:db8:40::11",
        storage,
        "stor01",
    )
    # stor02 is known only by its DUID: no MAC, not imported.
    assert not Server.objects.filter(hostname="stor02").exists()
    assert any(w.line == 27 for w in result.warnings)


def test_ipv4_and_ipv6_files_side_by_side(admin_user, acme):
    run(dhcpd_data.text("handwritten.conf"), admin_user, acme)
    run(dhcpd_data.text("ipv6.conf"), admin_user, acme)

    assert run(dhcpd_data.text("handwritten.conf"), admin_user, acme).summary()["create"] == 0
    assert run(dhcpd_data.text("ipv6.conf"), admin_user, acme).summary()["create"] == 0
    assert Subnet.objects.count() == 5


def test_debian_example_as_shipped_imports_cleanly(admin_user, acme):
    result = run(dhcpd_data.debian_example(), admin_user, acme)

    assert result.changes == []
    assert result.warnings == []


def test_debian_example_with_its_configuration_switched_on(admin_user, acme):
    result = run(dhcpd_data.uncomment(dhcpd_data.debian_example()), admin_user, acme)

    assert Subnet.objects.count() == 6
    assert IPRange.objects.count() == 5
    internal = Subnet.objects.get(network="10.5.5.0/27")
    assert (str(internal.gateway), internal.domain) == ("10.5.5.1", "internal.example.org")
    assert server("passacaglia").attributes == {
        "dhcp": {"filename": "vmunix.passacaglia", "server_name": "toccata.example.com"}
    }
    assert server("fantasia").interfaces.get().mac == "08:00:07:26:c0:a5"
    # Routers and name servers given by name are reported, not guessed.
    assert any("name servers given by name" in w.message for w in result.warnings)
    assert run(dhcpd_data.uncomment(dhcpd_data.debian_example()), admin_user, acme).summary()[
        "unchanged"
    ] == len(result.changes)


# Updates ---------------------------------------------------------------------------------------


def test_existing_objects_are_matched_and_updated(admin_user, acme):
    Subnet.objects.create(network="192.168.122.0/24", tenant=acme, gateway="192.168.122.254")
    renamed = make_server(admin_user, acme, "old-name", "52:54:00:7c:01:01")
    by_name = make_server(admin_user, acme, "web02.example.com", attributes={"rack": "r1"})
    IPAddress.objects.create(
        address="192.168.122.12", subnet=Subnet.objects.get(), dns_name="stale"
    )

    result = run(dhcpd_data.text("cobbler.conf"), admin_user, acme, dry_run=True)

    changes = {(c.kind, c.label.split(" ")[0]): c for c in result.changes}
    assert changes[("subnet", "192.168.122.0/24")].action == "update"
    assert changes[("subnet", "192.168.122.0/24")].changes["gateway"] == [
        ip("192.168.122.254"),
        ip("192.168.122.1"),
    ]
    # Matched by MAC first: renamed.
    web01 = changes[("server", "web01.example.com")]
    assert (web01.action, web01.changes["hostname"]) == (
        "update",
        ["old-name", "web01.example.com"],
    )
    assert changes[("interface", "52:54:00:7c:01:01")].action == "unchanged"
    # Matched by name: gets the interface, keeps its other attributes.
    assert changes[("server", "web02.example.com")].changes["attributes.dhcp"] == [
        None,
        {"next_server": "192.168.122.2"},
    ]
    assert changes[("interface", "52:54:00:7c:01:02")].action == "create"
    # A known, unassigned address is attached and renamed.
    address = changes[("address", "192.168.122.12")]
    assert (address.action, address.changes["dns_name"]) == (
        "update",
        ["stale", "web02.example.com"],
    )

    run(dhcpd_data.text("cobbler.conf"), admin_user, acme)

    renamed.refresh_from_db()
    by_name.refresh_from_db()
    assert renamed.hostname == "web01.example.com"
    assert by_name.attributes == {"rack": "r1", "dhcp": {"next_server": "192.168.122.2"}}
    assert by_name.interfaces.get().boot  # its first interface, so the boot one
    assert str(Subnet.objects.get().gateway) == "192.168.122.1"
    assert IPAddress.objects.get(address="192.168.122.12").interface.server == by_name


def test_addresses_go_into_subnets_known_only_to_the_database(admin_user, acme):
    known = Subnet.objects.create(network="10.70.0.0/24", tenant=acme)
    text = "host a {\n hardware ethernet 52:54:00:70:00:01;\n fixed-address 10.70.0.11;\n}\n"

    result = run(text, admin_user, acme)

    assert IPAddress.objects.get(address="10.70.0.11").subnet == known
    assert actions(result, "address") == {("address", "10.70.0.11", "create")}
    assert actions(result, "subnet") == set()


def test_diff_is_readable(admin_user, acme):
    make_server(admin_user, acme, "old-name", "52:54:00:7c:01:01")

    lines = run(dhcpd_data.text("cobbler.conf"), admin_user, acme, dry_run=True).diff_lines()

    assert "+ subnet 192.168.122.0/24  (dhcpd.conf:21)" in lines
    assert "      gateway: 192.168.122.1" in lines
    assert "~ server web01.example.com  (dhcpd.conf:48)" in lines
    assert "      hostname: old-name -> web01.example.com" in lines
    assert lines[-1] == "13 to create, 1 to update, 1 unchanged (dry run: nothing was written)"


# Dry run and all-or-nothing ----------------------------------------------------------------------


def test_dry_run_changes_nothing_and_plans_what_the_real_run_does(admin_user, acme):
    before = counts()

    dry = run(dhcpd_data.text("handwritten.conf"), admin_user, acme, dry_run=True)

    assert counts() == before
    assert not dry.applied
    real = run(dhcpd_data.text("handwritten.conf"), admin_user, acme)
    assert [c.as_dict() for c in dry.changes] == [c.as_dict() for c in real.changes]


MID_FILE_ERROR = """\
subnet 10.50.0.0 netmask 255.255.255.0 {
  option routers 10.50.0.1;
}
host a { hardware ethernet 52:54:00:50:00:01; fixed-address 10.50.0.11; }
host b { hardware ethernet 52:54:00:50:00:02; fixed-address 10.50.0.12; }
host lost {
  hardware ethernet 52:54:00:50:00:03;
  fixed-address 10.99.0.13;
}
host c { hardware ethernet 52:54:00:50:00:04; fixed-address 10.50.0.14; }
"""


def test_an_error_in_the_middle_of_the_file_imports_nothing(admin_user, acme):
    before = counts()

    assert import_errors(MID_FILE_ERROR, admin_user, acme) == [
        (
            8,
            "host lost: fixed-address 10.99.0.13 is outside every subnet (declare the subnet "
            "in the file or create it first)",
        )
    ]
    assert counts() == before


def test_a_failure_while_writing_rolls_back_everything_written_before(
    admin_user, acme, monkeypatch
):
    real_create = services.create_object

    def failing_create(model, **kwargs):
        if model is IPAddress and str(kwargs["address"]) == "10.50.0.12":
            raise ValidationError({"address": "the database said no"})
        return real_create(model, **kwargs)

    monkeypatch.setattr(services, "create_object", failing_create)
    before = counts()

    assert import_errors(MID_FILE_ERROR.replace("10.99.0.13", "10.50.0.13"), admin_user, acme) == [
        (5, "address 10.50.0.12 on b: address: the database said no")
    ]
    assert counts() == before


def test_syntax_errors_import_nothing(admin_user, acme):
    before = counts()

    found = import_errors(dhcpd_data.text("bad_mac.conf"), admin_user, acme)

    assert [line for line, _ in found] == [9, 13]
    assert counts() == before


# Errors with line numbers -----------------------------------------------------------------------


def test_duplicate_mac_within_the_file(admin_user, acme):
    text = (
        "host a {\n  hardware ethernet 52:54:00:00:00:01;\n}\n"
        "host b {\n  hardware ethernet 52:54:00:00:00:01;\n}\n"
    )

    assert import_errors(text, admin_user, acme) == [
        (5, "host b: MAC 52:54:00:00:00:01 is also the MAC of host a on line 1")
    ]


def test_duplicate_fixed_address_within_the_file(admin_user, acme):
    text = (
        "subnet 10.0.0.0 netmask 255.255.255.0 { }\n"
        "host a { hardware ethernet 52:54:00:00:00:01; fixed-address 10.0.0.5; }\n"
        "host b { hardware ethernet 52:54:00:00:00:02; fixed-address 10.0.0.5; }\n"
    )

    assert import_errors(text, admin_user, acme) == [
        (3, "host b: fixed-address 10.0.0.5 is also given to host a on line 2")
    ]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (
            "a;\nhost a_b { hardware ethernet 52:54:00:00:00:01; }\n",
            2,
            "'a_b' is not a valid host name",
        ),
        (
            "subnet 10.0.0.0 netmask 255.255.255.0 { }\n"
            "host a {\n hardware ethernet 52:54:00:00:00:01;\n fixed-address 10.0.0.255;\n}\n",
            4,
            "network or broadcast address",
        ),
        (
            "subnet 10.0.0.0 netmask 255.255.255.0 {\n range 10.0.0.10 10.0.0.20;\n"
            " range 10.0.0.15 10.0.0.30;\n}\n",
            3,
            "overlaps the range on line 2",
        ),
    ],
)
def test_values_the_inventory_refuses(admin_user, acme, text, line, fragment):
    (found,) = import_errors(text, admin_user, acme)

    assert found[0] == line
    assert fragment in found[1]


def test_an_address_already_on_another_server(admin_user, acme):
    net = Subnet.objects.create(network="10.0.0.0/24", tenant=acme)
    other = make_server(admin_user, acme, "other", "52:54:00:00:00:99")
    IPAddress.objects.create(address="10.0.0.5", subnet=net, interface=other.interfaces.get())
    text = "host a {\n hardware ethernet 52:54:00:00:00:01;\n fixed-address 10.0.0.5;\n}\n"

    assert import_errors(text, admin_user, acme) == [
        (3, "host a: 10.0.0.5 is already assigned to other (52:54:00:00:00:99)")
    ]


def test_an_existing_overlapping_subnet(admin_user, acme):
    Subnet.objects.create(network="10.0.0.0/16", tenant=acme)

    assert import_errors("a;\nsubnet 10.0.5.0 netmask 255.255.255.0 { }\n", admin_user, acme) == [
        (2, "subnet 10.0.5.0/24 overlaps the existing subnet 10.0.0.0/16")
    ]


def test_hostname_conflict_when_renaming_by_mac(admin_user, acme):
    make_server(admin_user, acme, "old-name", "52:54:00:00:00:01")
    make_server(admin_user, acme, "taken")
    text = 'host a {\n hardware ethernet 52:54:00:00:00:01;\n option host-name "taken";\n}\n'

    (found,) = import_errors(text, admin_user, acme)

    assert found[0] == 1
    assert "the host name taken is taken by server taken" in found[1]


# Tenants and permissions ----------------------------------------------------------------------


def test_a_mac_of_another_tenants_server_is_an_error_and_reveals_nothing(admin_user, acme, globex):
    make_server(admin_user, globex, "secret-box.globex.example", "52:54:00:7c:01:01")

    found = import_errors(dhcpd_data.text("cobbler.conf"), admin_user, acme)

    assert found == [
        (49, "host generic1: MAC 52:54:00:7c:01:01 belongs to a server of another tenant")
    ]
    assert "secret-box" not in str(found)


def test_host_name_and_subnets_of_another_tenant(admin_user, acme, globex):
    make_server(admin_user, globex, "web02.example.com")
    Subnet.objects.create(network="192.168.122.0/24", tenant=globex)

    found = import_errors(dhcpd_data.text("cobbler.conf"), admin_user, acme)

    assert (21, "subnet 192.168.122.0/24 belongs to another tenant") in found
    assert (
        57,
        "host generic2: host name web02.example.com belongs to a server of another tenant",
    ) in found
    assert (
        50,
        "host generic1: fixed-address 192.168.122.11 is in a subnet of another tenant",
    ) in found


def test_same_file_into_two_tenants_keeps_them_apart(admin_user, acme, globex):
    text = (
        "subnet 10.60.0.0 netmask 255.255.255.0 { }\n"
        "host a { hardware ethernet 52:54:00:60:00:01; fixed-address 10.60.0.11; }\n"
    )
    run(text, admin_user, acme)

    found = import_errors(text, admin_user, globex)

    assert {line for line, _ in found} == {1, 2}
    assert Server.objects.get().tenant == acme


def test_operator_imports_into_own_tenant_only(operator, acme, globex):
    result = run(dhcpd_data.text("foreman.conf"), operator, acme)
    assert result.summary()["create"] > 0
    assert set(Server.objects.values_list("tenant", flat=True)) == {acme.pk}

    with pytest.raises(PermissionDenied):
        run(dhcpd_data.text("foreman.conf"), operator, globex)


def test_read_only_user_may_not_import_even_as_a_dry_run(make_user, acme):
    viewer = make_user("viewer", roles=["read-only"], tenants=[acme])

    with pytest.raises(PermissionDenied):
        run(dhcpd_data.text("cobbler.conf"), viewer, acme, dry_run=True)


def test_tenant_resolution(operator, admin_user, acme, globex):
    assert dhcpd_import.resolve_tenant(operator, None) == acme
    assert dhcpd_import.resolve_tenant(operator, "acme") == acme
    with pytest.raises(ValidationError, match="No tenant 'globex'"):
        dhcpd_import.resolve_tenant(operator, "globex")
    with pytest.raises(ValidationError, match="Name the tenant"):
        dhcpd_import.resolve_tenant(admin_user, None)
    assert dhcpd_import.resolve_tenant(admin_user, "globex") == globex


# The command ------------------------------------------------------------------------------------


def command(*args, user="root"):
    out, err = StringIO(), StringIO()
    call_command("import_dhcpd", *args, "--user", user, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_command_dry_run_prints_the_plan_and_warnings_with_lines(admin_user, acme):
    path = str(dhcpd_data.path("cobbler.conf"))

    out, err = command(path, "--tenant", "acme", "--dry-run")

    assert f"+ server web01.example.com  ({path}:48)" in out
    assert "15 to create, 0 to update, 0 unchanged (dry run: nothing was written)" in out
    assert f"{path}:29: warning: class declarations are not imported" in err
    assert f"{path}:70: warning: host generic3: no MAC address" in err
    assert Server.objects.count() == 0


def test_command_imports_then_reports_unchanged(admin_user, acme):
    path = str(dhcpd_data.path("foreman.conf"))

    out, _ = command(path, "--tenant", "acme")
    assert "created" in out.splitlines()[-1]

    out, _ = command(path, "--tenant", "acme")
    assert out.splitlines() == ["0 created, 0 updated, 11 unchanged"]

    out, _ = command(path, "--tenant", "acme", "-v", "2")
    assert "= server app01.example.com" in out


def test_command_events_are_recorded_as_cli(admin_user, acme):
    command(str(dhcpd_data.path("ipv6.conf")), "--tenant", "acme")

    assert set(AuditEvent.objects.filter(actor=admin_user).values_list("via", flat=True)) == {"cli"}


@pytest.mark.parametrize(
    ("name", "lines"),
    [
        ("missing_semicolon.conf", [7]),
        ("unbalanced_brace.conf", [7]),
        ("bad_mac.conf", [9, 13]),
        ("bad_ip.conf", [3, 11]),
    ],
)
def test_command_errors_are_file_line_message(admin_user, acme, name, lines):
    path = str(dhcpd_data.path(name))
    out, err = StringIO(), StringIO()

    with pytest.raises(CommandError, match="nothing was imported"):
        call_command(
            "import_dhcpd", path, "--tenant", "acme", "--user", "root", stdout=out, stderr=err
        )

    printed = err.getvalue().splitlines()
    assert [line.split(":")[1] for line in printed] == [str(n) for n in lines]
    assert all(line.startswith(f"{path}:") for line in printed)
    assert Server.objects.count() == 0


def test_command_exit_status_is_non_zero_on_errors(admin_user, acme, capsys):
    path = str(dhcpd_data.path("bad_ip.conf"))

    with pytest.raises(SystemExit) as exited:
        execute_from_command_line(
            ["manage.py", "import_dhcpd", path, "--tenant", "acme", "--user", "root"]
        )

    assert exited.value.code != 0
    err = capsys.readouterr().err
    assert f"{path}:11: '10.42.0.300' is not an IPv4 address" in err


def test_command_refuses_other_tenants_and_missing_files(operator, acme, globex, tmp_path):
    path = str(dhcpd_data.path("cobbler.conf"))

    with pytest.raises(CommandError, match="tenant: No tenant 'globex'"):
        command(path, "--tenant", "globex", user="op")
    with pytest.raises(CommandError, match="cannot read"):
        command(str(tmp_path / "absent.conf"), user="op")

    out, _ = command(path, user="op")  # an operator's only tenant is the default
    assert Server.objects.filter(tenant=acme).count() == 4


def test_command_reads_standard_input(admin_user, acme, monkeypatch):
    data = dhcpd_data.path("ipv6.conf").read_bytes()
    monkeypatch.setattr("sys.stdin", TextIOWrapper(BytesIO(data)))

    out, err = command("-", "--tenant", "acme")

    assert "+ server stor01  (<stdin>:22)" in out
    assert "<stdin>:27: warning: host stor02: no MAC address" in err

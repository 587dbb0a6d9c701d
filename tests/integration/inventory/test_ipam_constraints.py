"""Overlaps and duplicates are refused by PostgreSQL itself, and the services turn every refusal,
the database's included, into a clear field error that names the other object."""

import ipaddress

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction

from inventory import ipam
from inventory.models import IPAddress, IPRange, Subnet
from tests.integration.inventory.ipam_helpers import field_errors

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme(tenants):
    return tenants[0]


def refused_by_database(create):
    """Run a write that skips every Python check; return the SQLSTATE PostgreSQL refused it with."""
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        create()
    return caught.value.__cause__.pgcode


# The database itself ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("existing", "clashing"),
    [
        ("10.0.0.0/16", "10.0.5.0/24"),  # inside
        ("10.0.5.0/24", "10.0.0.0/8"),  # around
        ("10.0.5.0/24", "10.0.5.0/24"),  # the same
        ("2001:db8::/48", "2001:db8:0:1::/64"),
        ("2001:db8:0:1::/64", "2001::/16"),
    ],
)
def test_database_refuses_overlapping_subnets(acme, existing, clashing):
    Subnet.objects.create(network=existing, tenant=acme)
    code = refused_by_database(lambda: Subnet.objects.create(network=clashing, tenant=acme))
    assert code == ipam.EXCLUSION_VIOLATION
    assert Subnet.objects.count() == 1


def test_database_refuses_overlap_from_raw_sql(acme):
    Subnet.objects.create(network="192.0.2.0/24", tenant=acme)

    def insert():
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO inventory_subnet (network, name, tenant_id, dns_servers, domain, "
                "description) VALUES ('192.0.2.128/25', '', %s, '{}', '', '')",
                [acme.pk],
            )

    assert refused_by_database(insert) == ipam.EXCLUSION_VIOLATION


def test_database_accepts_neighbours_and_both_families(acme):
    for network in ("10.0.0.0/24", "10.0.1.0/24", "128.0.0.0/2", "2001:db8::/64", "8000::/1"):
        Subnet.objects.create(network=network, tenant=acme)
    assert Subnet.objects.count() == 5


@pytest.mark.parametrize(
    ("network", "existing", "clashing"),
    [
        ("10.0.0.0/24", ("10.0.0.10", "10.0.0.20"), ("10.0.0.20", "10.0.0.30")),  # one shared end
        ("10.0.0.0/24", ("10.0.0.10", "10.0.0.20"), ("10.0.0.12", "10.0.0.13")),
        ("2001:db8::/64", ("2001:db8::10", "2001:db8::ff"), ("2001:db8::1", "2001:db8::10")),
    ],
)
def test_database_refuses_overlapping_ranges(acme, network, existing, clashing):
    subnet = Subnet.objects.create(network=network, tenant=acme)
    IPRange.objects.create(subnet=subnet, start=existing[0], end=existing[1])
    code = refused_by_database(
        lambda: IPRange.objects.create(subnet=subnet, start=clashing[0], end=clashing[1])
    )
    assert code == ipam.EXCLUSION_VIOLATION


def test_database_refuses_a_duplicate_address(acme):
    subnet = Subnet.objects.create(network="10.0.0.0/24", tenant=acme)
    IPAddress.objects.create(subnet=subnet, address="10.0.0.5")
    code = refused_by_database(lambda: IPAddress.objects.create(subnet=subnet, address="10.0.0.5"))
    assert code == ipam.UNIQUE_VIOLATION


# Through the services ---------------------------------------------------------------------------


def test_overlapping_subnet_is_refused_on_the_network_field_naming_the_other(admin_user, acme):
    ipam.create_subnet(user=admin_user, network="10.1.0.0/16", tenant=acme, name="office")
    with pytest.raises(ValidationError) as caught:
        ipam.create_subnet(user=admin_user, network="10.1.2.0/24", tenant=acme)
    assert field_errors(caught.value) == {
        "network": ["10.1.2.0/24 overlaps the subnet 10.1.0.0/16 (office)."]
    }


def test_another_tenants_subnet_is_refused_but_not_described(make_user, tenants, admin_user):
    acme, globex = tenants
    ipam.create_subnet(user=admin_user, network="10.9.0.0/16", tenant=globex, name="secret")
    operator = make_user("op", roles=["operator"], tenants=[acme])
    with pytest.raises(ValidationError) as caught:
        ipam.create_subnet(user=operator, network="10.9.1.0/24", tenant=acme)
    message = field_errors(caught.value)["network"][0]
    assert "another tenant" in message
    assert "10.9.0.0/16" not in message and "secret" not in message


def test_a_race_only_the_database_catches_is_still_a_field_error(admin_user, acme, monkeypatch):
    """As if another request committed its subnet after our checks ran: only the exclusion
    constraint sees the clash, and the answer is the same field error, not a 500."""
    ipam.create_subnet(user=admin_user, network="172.16.0.0/12", tenant=acme, name="lab")
    real_check = ipam._refuse_subnet_overlap
    calls = []

    def check_after_the_fact(user, network, exclude_pk=None, *, raced=False):
        calls.append(raced)
        if raced:  # the mapping of the database's refusal runs the real query
            real_check(user, network, exclude_pk, raced=raced)

    monkeypatch.setattr(ipam, "_refuse_subnet_overlap", check_after_the_fact)
    monkeypatch.setattr(Subnet, "clean", lambda self: None)
    with pytest.raises(ValidationError) as caught:
        ipam.create_subnet(user=admin_user, network="172.16.4.0/24", tenant=acme)
    assert calls == [False, True]
    assert field_errors(caught.value) == {
        "network": ["172.16.4.0/24 overlaps the subnet 172.16.0.0/12 (lab)."]
    }
    assert Subnet.objects.count() == 1


def test_a_range_race_only_the_database_catches_is_a_field_error(admin_user, acme, monkeypatch):
    subnet = ipam.create_subnet(user=admin_user, network="10.0.0.0/24", tenant=acme)
    ipam.create_range(user=admin_user, subnet=subnet, start="10.0.0.100", end="10.0.0.199")
    real_check = ipam._refuse_range_overlap

    def check_after_the_fact(start, end, exclude_pk=None, *, raced=False):
        if raced:
            real_check(start, end, exclude_pk, raced=raced)

    monkeypatch.setattr(ipam, "_refuse_range_overlap", check_after_the_fact)
    # Django validates the model's ExclusionConstraint in full_clean too: skip that as well.
    monkeypatch.setattr(IPRange, "validate_constraints", lambda self, exclude=None: None)
    with pytest.raises(ValidationError) as caught:
        ipam.create_range(user=admin_user, subnet=subnet, start="10.0.0.150", end="10.0.0.250")
    assert field_errors(caught.value) == {
        "start": [
            "10.0.0.150-10.0.0.250 overlaps the range 10.0.0.100-10.0.0.199 (Static assignments) "
            "in 10.0.0.0/24."
        ]
    }


def test_a_duplicate_address_race_is_a_field_error(admin_user, acme, monkeypatch):
    subnet = ipam.create_subnet(user=admin_user, network="10.0.0.0/24", tenant=acme)
    ipam.create_address(user=admin_user, address="10.0.0.7")
    calls = []
    real_check = ipam._refuse_duplicate

    def check_after_the_fact(address, exclude_pk=None):
        calls.append(address)
        if len(calls) > 1:
            real_check(address, exclude_pk)

    monkeypatch.setattr(ipam, "_refuse_duplicate", check_after_the_fact)
    monkeypatch.setattr(IPAddress, "validate_unique", lambda self, exclude=None: None)
    with pytest.raises(ValidationError) as caught:
        ipam.create_address(user=admin_user, subnet=subnet, address="10.0.0.7")
    assert field_errors(caught.value) == {"address": ["10.0.0.7 is already in use."]}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("10.0.0.10", "10.0.0.20"), ("10.0.0.20", "10.0.0.30")),
        (("10.0.0.10", "10.0.0.20"), ("10.0.0.1", "10.0.0.254")),
    ],
)
def test_overlapping_range_is_refused_naming_the_other(admin_user, acme, first, second):
    subnet = ipam.create_subnet(user=admin_user, network="10.0.0.0/24", tenant=acme)
    ipam.create_range(user=admin_user, subnet=subnet, start=first[0], end=first[1], kind="dhcp")
    with pytest.raises(ValidationError) as caught:
        ipam.create_range(user=admin_user, subnet=subnet, start=second[0], end=second[1])
    (message,) = field_errors(caught.value)["start"]
    assert f"overlaps the range {first[0]}-{first[1]} (DHCP pool)" in message


def test_range_must_lie_in_its_subnet_in_order(admin_user, acme):
    subnet = ipam.create_subnet(user=admin_user, network="10.0.0.0/24", tenant=acme)
    with pytest.raises(ValidationError) as caught:
        ipam.create_range(user=admin_user, subnet=subnet, start="10.0.0.10", end="10.0.1.5")
    assert set(field_errors(caught.value)) == {"end"}
    with pytest.raises(ValidationError) as caught:
        ipam.create_range(user=admin_user, subnet=subnet, start="10.0.0.50", end="10.0.0.40")
    assert field_errors(caught.value) == {"end": ["The end comes before the start."]}


def test_a_range_may_be_resized_over_its_own_addresses(admin_user, acme):
    subnet = ipam.create_subnet(user=admin_user, network="10.0.0.0/24", tenant=acme)
    iprange = ipam.create_range(user=admin_user, subnet=subnet, start="10.0.0.10", end="10.0.0.20")
    ipam.update_range(iprange, user=admin_user, end="10.0.0.40")
    iprange.refresh_from_db()
    assert iprange.end == ipaddress.ip_address("10.0.0.40")


def test_address_outside_its_subnet_or_twice_is_refused(admin_user, acme):
    subnet = ipam.create_subnet(user=admin_user, network="10.0.0.0/24", tenant=acme)
    with pytest.raises(ValidationError) as caught:
        ipam.create_address(user=admin_user, subnet=subnet, address="10.0.1.1")
    assert field_errors(caught.value) == {"address": ["10.0.1.1 is not in 10.0.0.0/24."]}
    ipam.create_address(user=admin_user, subnet=subnet, address="10.0.0.9")
    with pytest.raises(ValidationError) as caught:
        ipam.create_address(user=admin_user, subnet=subnet, address="10.0.0.9")
    assert field_errors(caught.value) == {"address": ["10.0.0.9 is already in use."]}
    with pytest.raises(ValidationError) as caught:
        ipam.create_address(user=admin_user, subnet=subnet, address="10.0.0.255")
    assert "broadcast" in field_errors(caught.value)["address"][0]
    assert IPAddress.objects.count() == 1


def test_an_address_alone_finds_its_subnet_among_the_users(make_user, tenants, admin_user):
    acme, globex = tenants
    mine = ipam.create_subnet(user=admin_user, network="10.0.0.0/24", tenant=acme)
    ipam.create_subnet(user=admin_user, network="10.0.1.0/24", tenant=globex)
    ipam.create_subnet(user=admin_user, network="2001:db8::/64", tenant=acme)
    operator = make_user("op", roles=["operator"], tenants=[acme])
    assert ipam.create_address(user=operator, address="10.0.0.20").subnet == mine
    v6 = ipam.create_address(user=operator, address="2001:DB8::a")
    assert (str(v6.address), str(v6.subnet.network)) == ("2001:db8::a", "2001:db8::/64")
    with pytest.raises(ValidationError) as caught:
        ipam.create_address(user=operator, address="10.0.1.20")  # globex's subnet
    assert "None of your subnets contains 10.0.1.20" in field_errors(caught.value)["address"][0]
    with pytest.raises(ValidationError) as caught:
        ipam.create_address(user=operator, address="not-an-ip")
    assert set(field_errors(caught.value)) == {"address"}


def test_changing_an_address_moves_it_to_the_subnet_holding_it(admin_user, acme):
    ipam.create_subnet(user=admin_user, network="10.0.0.0/24", tenant=acme)
    other = ipam.create_subnet(user=admin_user, network="10.0.1.0/24", tenant=acme)
    ip = ipam.create_address(user=admin_user, address="10.0.0.20")
    ipam.update_address(ip, user=admin_user, address="10.0.1.20")
    ip.refresh_from_db()
    assert ip.subnet == other


def test_a_subnet_cannot_shrink_away_from_its_addresses(admin_user, acme):
    subnet = ipam.create_subnet(user=admin_user, network="10.0.0.0/23", tenant=acme)
    ipam.create_address(user=admin_user, address="10.0.1.9")
    with pytest.raises(ValidationError) as caught:
        ipam.update_subnet(subnet, user=admin_user, network="10.0.0.0/24")
    assert "lie outside 10.0.0.0/24" in field_errors(caught.value)["network"][0]
    ipam.update_subnet(subnet, user=admin_user, network="10.0.0.0/22")
    subnet.refresh_from_db()
    assert str(subnet.network) == "10.0.0.0/22"


def test_subnet_with_addresses_is_not_deleted_its_ranges_go_with_it(admin_user, acme):
    subnet = ipam.create_subnet(user=admin_user, network="10.0.0.0/24", tenant=acme)
    ipam.create_range(user=admin_user, subnet=subnet, start="10.0.0.100", end="10.0.0.199")
    ip = ipam.create_address(user=admin_user, address="10.0.0.9")
    with pytest.raises(ValidationError, match="still has 1 address"):
        ipam.delete_subnet(subnet, user=admin_user)
    ipam.delete_address(ip, user=admin_user)
    ipam.delete_subnet(subnet, user=admin_user)
    assert not Subnet.objects.exists() and not IPRange.objects.exists()


def test_invalid_values_are_field_errors(admin_user, acme):
    for network, field in (("10.0.0.1/24", "network"), ("nonsense", "network")):
        with pytest.raises(ValidationError) as caught:
            ipam.create_subnet(user=admin_user, network=network, tenant=acme)
        assert set(field_errors(caught.value)) == {field}
    with pytest.raises(ValidationError) as caught:
        ipam.create_subnet(user=admin_user, network="10.0.0.0/24", tenant=acme, gateway="10.1.0.1")
    assert field_errors(caught.value) == {"gateway": ["10.1.0.1 is not in 10.0.0.0/24."]}


def test_services_check_permission_and_tenant_first(make_user, tenants, admin_user):
    acme, globex = tenants
    ipam.create_subnet(user=admin_user, network="10.0.0.0/24", tenant=acme)
    viewer = make_user("viewer", roles=["read-only"], tenants=[acme])
    operator = make_user("op", roles=["operator"], tenants=[acme])
    # No conflict is explained to someone who may not write at all.
    with pytest.raises(PermissionDenied):
        ipam.create_subnet(user=viewer, network="10.0.0.0/25", tenant=acme)
    with pytest.raises(PermissionDenied):
        ipam.create_subnet(user=operator, network="10.5.0.0/24", tenant=globex)
    assert Subnet.objects.count() == 1


def test_writes_are_audited(admin_user, acme):
    from dcportal.models import AuditEvent

    subnet = ipam.create_subnet(user=admin_user, network="10.0.0.0/24", tenant=acme)
    ip = ipam.allocate_address(user=admin_user, subnet=subnet, dns_name="a.example.com")
    events = AuditEvent.objects.filter(content_type__model="ipaddress", object_id=str(ip.pk))
    assert events.get().changes["address"] == [None, "10.0.0.1"]

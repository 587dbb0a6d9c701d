"""inventory.registration.register(): create, update, merge, idempotence, and every conflict."""

# ruff: noqa: F401, F811 (the shared fixtures are imported by name, which pytest needs)

import json
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from dcportal import requestcontext
from dcportal.models import AuditEvent
from inventory import registration
from inventory.models import Conflict, EnrolmentToken, Interface, Server
from tests.integration.inventory.registration_helpers import (  # noqa: F401 (fixtures)
    UUID_A,
    UUID_B,
    acme,
    enrolment,
    globex,
    make_report,
    operator,
    register_as_agent,
)

pytestmark = pytest.mark.django_db


def server_state(server):
    server.refresh_from_db()
    interfaces = sorted(server.interfaces.values_list("name", "mac", "boot"))
    return (
        server.hostname,
        str(server.uuid),
        server.serial,
        server.vendor,
        server.model,
        server.attributes,
        interfaces,
        server.updated,
    )


# Creating and updating ------------------------------------------------------------------------


def test_a_new_machine_becomes_a_server(enrolment, acme):
    before = timezone.now()
    with requestcontext.bound(source="192.0.2.10", via="api", request_id="r1"):
        result = register_as_agent(enrolment, make_report())
    assert result.status == "created" and result.http_status == 201 and not result.conflicts
    server = Server.objects.get()
    assert server.tenant == acme
    assert str(server.uuid) == UUID_A
    assert (server.serial, server.vendor, server.model) == (
        "SRV-0042",
        "Dell Inc.",
        "PowerEdge R640",
    )
    assert server.hostname == "node-aabbcc000001"  # from the boot MAC
    assert server.attributes["cpu"] == {"count": 8, "model": "Xeon Gold 6130"}
    assert server.attributes["interfaces"][0]["speed_mbps"] == 10000
    assert "uuid" not in server.attributes and "serial" not in server.attributes
    assert server.last_inventory >= before
    assert list(server.interfaces.values_list("name", "mac", "boot")) == [
        ("eno1", "aa:bb:cc:00:00:01", True),
        ("eno2", "aa:bb:cc:00:00:02", False),
    ]
    # Audited, with the enrolment token visible as the actor's source.
    events = AuditEvent.objects.filter(request_id="r1")
    assert {(e.content_type.model, e.action) for e in events} == {
        ("server", "create"),
        ("interface", "create"),
    }
    for event in events:
        assert event.actor is None and event.via == "agent"
        assert event.source.startswith("192.0.2.10 ")
        assert "enrolment token rack-1" in event.source
        assert enrolment[0].prefix in event.source
        assert enrolment[1] not in json.dumps(event.changes) + event.source


def test_a_user_registers_with_the_user_as_actor(operator, acme):
    result = registration.register(report=make_report(), tenant=acme, actor_user=operator)
    assert result.status == "created"
    event = AuditEvent.objects.get(content_type__model="server")
    assert event.actor == operator and event.via != "agent"


def test_a_later_report_updates_and_merges_facts(enrolment):
    register_as_agent(enrolment, make_report())
    server = Server.objects.get()
    server.attributes = {**server.attributes, "owner": "team-a", "cpu": {"count": 8, "flags": "x"}}
    server.save()
    report = make_report(
        serial="SRV-0042B",
        cpu={"count": 16},
        interfaces=[
            {"name": "eno1", "mac": "aa:bb:cc:00:00:01", "boot": True},
            {"name": "eno2", "mac": "aa:bb:cc:00:00:02"},
            {"name": "ens1f0", "mac": "aa:bb:cc:00:00:03"},
        ],
    )
    result = register_as_agent(enrolment, report)
    assert result.status == "updated" and result.server == server
    server.refresh_from_db()
    assert server.serial == "SRV-0042B"
    # Reported keys replace, others stay: nested objects merge key by key.
    assert server.attributes["owner"] == "team-a"
    assert server.attributes["cpu"] == {"count": 16, "flags": "x"}
    assert server.interfaces.count() == 3
    update = AuditEvent.objects.get(content_type__model="server", action="update")
    assert update.changes["serial"] == ["SRV-0042", "SRV-0042B"]


def test_a_repeated_identical_report_changes_nothing(enrolment):
    report = make_report(hostname="web01")
    register_as_agent(enrolment, report)
    server = Server.objects.get()
    state, events, first_seen = (
        server_state(server),
        AuditEvent.objects.count(),
        server.last_inventory,
    )
    result = register_as_agent(enrolment, report)
    assert result.status == "unchanged" and result.http_status == 200
    assert server_state(server) == state
    assert AuditEvent.objects.count() == events
    assert Server.objects.count() == 1 and Interface.objects.count() == 2
    assert server.last_inventory > first_seen  # only when it was seen moves


def test_placeholder_serial_never_replaces_a_real_one(enrolment):
    register_as_agent(enrolment, make_report())
    register_as_agent(enrolment, make_report(serial="To Be Filled By O.E.M.", sys_vendor=""))
    server = Server.objects.get()
    assert (server.serial, server.vendor) == ("SRV-0042", "Dell Inc.")


def test_serial_and_vendor_match_a_server_that_has_no_uuid_yet(enrolment, acme, admin_user):
    imported = Server.objects.create(
        tenant=acme, hostname="imported", serial="SRV-0042", vendor="DELL INC."
    )
    result = register_as_agent(enrolment, make_report())
    assert result.status == "updated" and result.server == imported
    imported.refresh_from_db()
    assert str(imported.uuid) == UUID_A
    assert imported.hostname == "imported"  # an existing name is kept when none is reported
    assert Server.objects.count() == 1


def test_a_placeholder_uuid_with_a_real_serial_is_matched_by_serial(enrolment):
    register_as_agent(enrolment, make_report())
    result = register_as_agent(enrolment, make_report(uuid="03000200-0400-0500-0006-000700080009"))
    assert result.status == "unchanged"
    assert Server.objects.count() == 1
    assert str(Server.objects.get().uuid) == UUID_A


def test_serial_matching_stays_inside_the_tenant(enrolment, globex):
    theirs = Server.objects.create(
        tenant=globex, hostname="theirs", serial="SRV-0042", vendor="Dell Inc.", uuid=UUID_B
    )
    result = register_as_agent(enrolment, make_report())
    assert result.status == "created" and result.server != theirs
    assert Server.objects.count() == 2
    assert not Conflict.objects.exists()


def test_interfaces_swap_names_and_a_replaced_nic_gives_up_its_name(enrolment):
    register_as_agent(enrolment, make_report())
    server = Server.objects.get()
    swapped = make_report(
        interfaces=[
            {"name": "eno2", "mac": "aa:bb:cc:00:00:01"},
            {"name": "eno1", "mac": "aa:bb:cc:00:00:02", "boot": True},
        ]
    )
    assert register_as_agent(enrolment, swapped).status == "updated"
    assert sorted(server.interfaces.values_list("mac", "name", "boot")) == [
        ("aa:bb:cc:00:00:01", "eno2", False),
        ("aa:bb:cc:00:00:02", "eno1", True),
    ]
    replaced = make_report(
        interfaces=[
            {"name": "eno2", "mac": "aa:bb:cc:00:00:01"},
            {"name": "eno1", "mac": "aa:bb:cc:00:00:99"},
        ]
    )
    register_as_agent(enrolment, replaced)
    # No boot interface reported: the flag stays where it was; the old NIC is kept, renamed.
    assert sorted(server.interfaces.values_list("mac", "name", "boot")) == [
        ("aa:bb:cc:00:00:01", "eno2", False),
        ("aa:bb:cc:00:00:02", "eno1~aabbcc000002", True),
        ("aa:bb:cc:00:00:99", "eno1", False),
    ]


# Conflicts ------------------------------------------------------------------------------------


def test_same_serial_other_uuid_is_held_not_merged(enrolment, acme):
    register_as_agent(enrolment, make_report())
    original = Server.objects.get()
    state = server_state(original)
    result = register_as_agent(enrolment, make_report(uuid=UUID_B, cpu={"count": 2}))
    assert result.status == "held" and result.http_status == 202 and result.server is None
    assert "another UUID" in result.message
    assert Server.objects.count() == 1 and server_state(original) == state
    conflict = Conflict.objects.get()
    assert conflict.kind == Conflict.Kind.SERIAL and conflict.server == original
    assert conflict.tenant == acme and conflict.report["uuid"] == UUID_B
    assert UUID_B in conflict.detail and UUID_A in conflict.detail
    # Again: the same conflict, not a second one.
    again = register_as_agent(enrolment, make_report(uuid=UUID_B, cpu={"count": 2}))
    assert again.conflicts == [conflict] and Conflict.objects.count() == 1


def test_a_mac_on_another_server_is_not_moved(enrolment, acme):
    other = Server.objects.create(tenant=acme, hostname="old-box")
    Interface.objects.create(server=other, name="eth0", mac="aa:bb:cc:00:00:02")
    result = register_as_agent(enrolment, make_report())
    assert result.status == "created"
    server = result.server
    assert list(server.interfaces.values_list("mac", flat=True)) == ["aa:bb:cc:00:00:01"]
    assert Interface.objects.get(mac="aa:bb:cc:00:00:02").server == other
    conflict = Conflict.objects.get()
    assert (conflict.kind, conflict.server, conflict.other_server) == ("mac", server, other)
    assert conflict.detail.startswith("MAC aa:bb:cc:00:00:02:") and "old-box" in conflict.detail
    assert result.conflicts == [conflict] and "1 conflict" in result.message
    events = AuditEvent.objects.count()
    assert register_as_agent(enrolment, make_report()).status == "unchanged"
    assert Conflict.objects.count() == 1 and AuditEvent.objects.count() == events


def test_a_mac_in_another_tenant_is_named_without_naming_the_server(enrolment, globex):
    other = Server.objects.create(tenant=globex, hostname="secret-host")
    Interface.objects.create(server=other, name="eth0", mac="aa:bb:cc:00:00:02")
    register_as_agent(enrolment, make_report())
    conflict = Conflict.objects.get()
    assert conflict.other_server is None
    assert "secret-host" not in conflict.detail and "another tenant" in conflict.detail
    other.refresh_from_db()
    assert other.interfaces.get().mac == "aa:bb:cc:00:00:02"


def test_a_taken_hostname_gets_a_generated_one_and_a_conflict(enrolment, acme):
    holder = Server.objects.create(tenant=acme, hostname="web01")
    result = register_as_agent(enrolment, make_report(hostname="web01"))
    server = result.server
    assert server.hostname == "node-aabbcc000001"
    conflict = Conflict.objects.get()
    assert (conflict.kind, conflict.server, conflict.other_server) == ("hostname", server, holder)
    assert register_as_agent(enrolment, make_report(hostname="web01")).status == "unchanged"
    assert Conflict.objects.count() == 1
    server.refresh_from_db()
    assert server.hostname == "node-aabbcc000001"


def test_a_generated_hostname_that_is_taken_gets_a_number(enrolment, acme):
    Server.objects.create(tenant=acme, hostname="node-aabbcc000001")
    result = register_as_agent(enrolment, make_report())
    assert result.server.hostname == "node-aabbcc000001-2"
    assert not Conflict.objects.exists()  # nothing reported was refused


def test_a_reported_hostname_renames_the_server_when_free(enrolment):
    register_as_agent(enrolment, make_report())
    result = register_as_agent(enrolment, make_report(hostname="db01.example.com"))
    assert result.status == "updated" and result.server.hostname == "db01.example.com"


def test_no_identity_creates_nothing(enrolment, acme):
    report = make_report(uuid="00000000-0000-0000-0000-000000000000", serial="Default string")
    result = register_as_agent(enrolment, report)
    assert result.status == "held" and result.http_status == 202 and result.server is None
    assert "no identity" in result.message
    assert not Server.objects.exists() and not Interface.objects.exists()
    conflict = Conflict.objects.get()
    assert conflict.kind == Conflict.Kind.PLACEHOLDER and conflict.server is None
    assert conflict.detail.startswith("No identity (MAC aa:bb:cc:00:00:01):")
    assert conflict.report["cpu"] == {"count": 8, "model": "Xeon Gold 6130"}
    register_as_agent(enrolment, report)
    assert Conflict.objects.count() == 1


def test_no_identity_but_a_known_mac_points_at_that_server(enrolment, acme):
    known = Server.objects.create(tenant=acme, hostname="known")
    Interface.objects.create(server=known, name="eth0", mac="aa:bb:cc:00:00:02")
    report = make_report(uuid=None, serial="")
    register_as_agent(enrolment, report)
    assert Conflict.objects.get().server == known
    assert Server.objects.count() == 1


def test_a_uuid_of_another_tenant_is_refused_and_untouched(enrolment, globex):
    theirs = Server.objects.create(tenant=globex, hostname="theirs", uuid=UUID_A, serial="S")
    state = server_state(theirs)
    with pytest.raises(registration.RegistrationRefused, match="another tenant"):
        register_as_agent(enrolment, make_report())
    assert server_state(theirs) == state
    assert not Interface.objects.exists() and not Conflict.objects.exists()
    assert not AuditEvent.objects.filter(content_type__model="server").exists()


def test_a_bad_report_writes_nothing(enrolment):
    bad = make_report(interfaces=[{"name": "eno1", "mac": "nonsense"}])
    with pytest.raises(ValidationError):
        register_as_agent(enrolment, bad)
    assert not Server.objects.exists()


# Who may register -----------------------------------------------------------------------------


def test_tokens_and_users_are_checked(enrolment, acme, globex, make_user, admin_user):
    token, _ = enrolment
    with pytest.raises(PermissionDenied, match="another tenant"):
        registration.register(report=make_report(), tenant=globex, token=token)
    registration.revoke_enrolment_token(user=admin_user, token=token)
    with pytest.raises(PermissionDenied, match="revoked"):
        registration.register(report=make_report(), tenant=acme, token=token)
    viewer = make_user("viewer", roles=["read-only"], tenants=[acme])
    with pytest.raises(PermissionDenied):
        registration.register(report=make_report(), tenant=acme, actor_user=viewer)
    outsider = make_user("outsider", roles=["operator"], tenants=[globex])
    with pytest.raises(PermissionDenied):
        registration.register(report=make_report(), tenant=acme, actor_user=outsider)
    with pytest.raises(PermissionDenied):
        registration.register(report=make_report(), tenant=acme)
    assert not Server.objects.exists()


# Resolving ------------------------------------------------------------------------------------


def test_merging_a_serial_conflict_replaces_the_uuid(enrolment, operator):
    register_as_agent(enrolment, make_report())
    register_as_agent(enrolment, make_report(uuid=UUID_B, cpu={"count": 2}))
    conflict = Conflict.objects.get()
    resolved = registration.resolve_conflict(
        user=operator, conflict=conflict, resolution="merge", note="board swapped"
    )
    server = Server.objects.get()
    assert str(server.uuid) == UUID_B and server.attributes["cpu"]["count"] == 2
    assert resolved.resolved is not None and resolved.resolved_by == operator
    assert resolved.resolution.startswith("merge: UUID of node-aabbcc000001")
    assert resolved.resolution.endswith("board swapped")
    update = AuditEvent.objects.filter(content_type__model="server", action="update").latest("id")
    assert update.actor == operator and update.changes["uuid"] == [UUID_A, UUID_B]
    assert AuditEvent.objects.filter(verb="resolve", object_id=str(conflict.pk)).exists()
    # The machine's next report now simply matches.
    assert register_as_agent(enrolment, make_report(uuid=UUID_B, cpu={"count": 2})).status in (
        "unchanged",
        "updated",
    )
    assert Conflict.objects.filter(resolved__isnull=True).count() == 0
    with pytest.raises(ValidationError, match="already resolved"):
        registration.resolve_conflict(user=operator, conflict=conflict, resolution="dismiss")


def test_creating_from_a_serial_conflict_makes_a_twin(enrolment, operator):
    register_as_agent(enrolment, make_report())
    twin_report = make_report(
        uuid=UUID_B, interfaces=[{"name": "eno1", "mac": "aa:bb:cc:00:00:77"}]
    )
    register_as_agent(enrolment, twin_report)
    registration.resolve_conflict(
        user=operator, conflict=Conflict.objects.get(), resolution="create"
    )
    assert Server.objects.count() == 2
    twin = Server.objects.get(uuid=UUID_B)
    assert twin.hostname == "node-aabbcc000077" and twin.serial == "SRV-0042"
    assert register_as_agent(enrolment, twin_report).status == "unchanged"


def test_merging_a_mac_conflict_moves_the_interface(enrolment, operator, acme):
    other = Server.objects.create(tenant=acme, hostname="old-box")
    Interface.objects.create(server=other, name="eno2", mac="aa:bb:cc:00:00:02")
    server = register_as_agent(enrolment, make_report()).server
    conflict = Conflict.objects.get()
    registration.resolve_conflict(user=operator, conflict=conflict, resolution="merge")
    moved = Interface.objects.get(mac="aa:bb:cc:00:00:02")
    assert moved.server == server and moved.name == "eno2"
    assert AuditEvent.objects.filter(verb="move", object_id=str(moved.pk)).exists()
    assert register_as_agent(enrolment, make_report()).status == "unchanged"


def test_merging_a_hostname_conflict_needs_the_name_free(enrolment, operator, acme):
    holder = Server.objects.create(tenant=acme, hostname="web01")
    server = register_as_agent(enrolment, make_report(hostname="web01")).server
    conflict = Conflict.objects.get()
    with pytest.raises(ValidationError, match="still taken"):
        registration.resolve_conflict(user=operator, conflict=conflict, resolution="merge")
    holder.hostname = "web01-old"
    holder.save()
    registration.resolve_conflict(user=operator, conflict=conflict, resolution="merge")
    server.refresh_from_db()
    assert server.hostname == "web01"


def test_placeholder_conflicts_merge_only_into_a_known_server(enrolment, operator, acme):
    register_as_agent(enrolment, make_report(uuid=None, serial=""))
    lone = Conflict.objects.get()
    assert registration.resolutions_for(lone) == ["dismiss"]
    with pytest.raises(ValidationError, match="Not for this conflict"):
        registration.resolve_conflict(user=operator, conflict=lone, resolution="merge")
    registration.resolve_conflict(user=operator, conflict=lone, resolution="dismiss")
    assert Conflict.objects.get().resolution == "dismiss"

    known = Server.objects.create(tenant=acme, hostname="known")
    Interface.objects.create(server=known, name="eno1", mac="aa:bb:cc:00:00:01")
    register_as_agent(enrolment, make_report(uuid=None, serial=""))
    conflict = Conflict.objects.get(resolved__isnull=True)
    registration.resolve_conflict(user=operator, conflict=conflict, resolution="merge")
    known.refresh_from_db()
    assert known.attributes["cpu"]["count"] == 8
    assert sorted(known.interfaces.values_list("mac", flat=True)) == [
        "aa:bb:cc:00:00:01",
        "aa:bb:cc:00:00:02",
    ]


def test_resolving_needs_the_permission_and_the_tenant(enrolment, make_user, acme, globex):
    register_as_agent(enrolment, make_report(uuid=None, serial=""))
    conflict = Conflict.objects.get()
    viewer = make_user("viewer", roles=["read-only"], tenants=[acme])
    outsider = make_user("outsider", roles=["operator"], tenants=[globex])
    for user in (viewer, outsider):
        with pytest.raises(PermissionDenied):
            registration.resolve_conflict(user=user, conflict=conflict, resolution="dismiss")
    conflict.refresh_from_db()
    assert conflict.resolved is None


# Enrolment tokens -----------------------------------------------------------------------------


def test_enrolment_tokens_are_hashed_and_checked(admin_user, acme):
    token, key = registration.create_enrolment_token(user=admin_user, tenant=acme, name="pxe")
    assert key.startswith("dce_") and token.prefix in key
    assert token.key_hash != key and key not in token.key_hash
    assert registration.authenticate_enrolment_token(key) == token
    assert registration.authenticate_enrolment_token(key[:-1] + "x") is None
    assert registration.authenticate_enrolment_token(f"dcp_{token.prefix}_x") is None
    event = AuditEvent.objects.get(content_type__model="enrolmenttoken", action="create")
    assert key not in json.dumps(event.changes) and token.key_hash not in json.dumps(event.changes)

    EnrolmentToken.objects.filter(pk=token.pk).update(expires=timezone.now() - timedelta(1))
    assert registration.authenticate_enrolment_token(key) is None
    EnrolmentToken.objects.filter(pk=token.pk).update(expires=None)
    registration.revoke_enrolment_token(user=admin_user, token=token)
    assert registration.authenticate_enrolment_token(key) is None
    assert AuditEvent.objects.filter(verb="revoke", object_id=str(token.pk)).count() == 1


def test_enrolment_token_rules(make_user, acme, globex, admin_user):
    op = make_user("op", roles=["operator"], tenants=[acme])
    registration.create_enrolment_token(user=op, tenant=acme, name="pxe")
    with pytest.raises(ValidationError, match="already"):
        registration.create_enrolment_token(user=op, tenant=acme, name="pxe")
    with pytest.raises(ValidationError, match="future"):
        registration.create_enrolment_token(
            user=op, tenant=acme, name="old", expires=timezone.now() - timedelta(1)
        )
    with pytest.raises(PermissionDenied):
        registration.create_enrolment_token(user=op, tenant=globex, name="theirs")
    viewer = make_user("viewer", roles=["read-only"], tenants=[acme])
    with pytest.raises(PermissionDenied):
        registration.create_enrolment_token(user=viewer, tenant=acme, name="mine")
    theirs, _ = registration.create_enrolment_token(user=admin_user, tenant=globex, name="pxe")
    with pytest.raises(PermissionDenied):
        registration.revoke_enrolment_token(user=op, token=theirs)

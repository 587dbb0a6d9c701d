"""nodeset: next boot, build tokens and server status for many servers in a few statements;
permission and tenant scope; the CLI; a server's own profile and parameters (set_deploy)."""

import hashlib
from io import StringIO

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dcportal.models import AuditEvent
from dcportal.secrets import REDACTED
from deploy import services, tokens
from deploy.models import ServerDeploy
from inventory.models import Server

from .build_helpers import deploy_row, make_profile, make_servers, token_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def profile():
    return make_profile()


def statuses(servers):
    return list(
        Server.objects.filter(pk__in=[s.pk for s in servers])
        .order_by("hostname")
        .values_list("status", flat=True)
    )


def test_install_gives_each_server_a_token_and_build_mode(admin_user, tenants, profile, settings):
    settings.BUILD_TOKEN_HOURS = 2
    servers = make_servers(tenants[0], 3)
    before = timezone.now()

    result = services.nodeset(
        user=admin_user, servers=servers, next_boot="install", profile=profile
    )

    assert (result.count, result.created, result.profile) == (3, 3, "rocky9")
    assert result.servers == ("node01", "node02", "node03")
    rows = list(ServerDeploy.objects.order_by("server__hostname"))
    assert [(r.next_boot, r.state, r.stage, r.profile_id) for r in rows] == [
        ("install", "building", "waiting", profile.pk)
    ] * 3
    hashes = {r.token_hash for r in rows}
    assert len(hashes) == 3 and "" not in hashes
    for row, server in zip(rows, servers, strict=True):
        token = tokens.token_for(row.token_nonce)
        # Only the SHA-256 of the token is stored; the token opens exactly its own row.
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert tokens.authenticate(token).server_id == server.pk
        hours = (row.token_expires - before).total_seconds() / 3600
        assert 1.99 < hours <= 2.01
        assert row.build_started >= before
    assert statuses(servers) == ["deploying"] * 3

    events = AuditEvent.objects.filter(verb="nodeset").order_by("object_repr")
    assert [e.object_repr for e in events] == ["node01", "node02", "node03"]
    event = events[0]
    assert event.changes["next_boot"] == [None, "install"]
    assert event.changes["server_status"] == ["new", "deploying"]
    assert event.changes["token_hash"] == event.changes["token_nonce"] == [None, REDACTED]
    text = str(list(AuditEvent.objects.values_list("changes", flat=True)))
    for row in rows:
        assert row.token_nonce not in text and row.token_hash not in text
    assert event.tenant_id == tenants[0].pk and event.actor == admin_user


def test_a_new_install_kills_the_old_token(admin_user, tenants, profile):
    (server,) = make_servers(tenants[0], 1)
    services.nodeset(user=admin_user, servers=[server], next_boot="install", profile=profile)
    old = token_of(server)
    result = services.nodeset(
        user=admin_user, servers=[server], next_boot="install", profile=profile
    )
    assert result.created == 0
    new = token_of(server)
    assert new != old
    with pytest.raises(tokens.InvalidToken):
        tokens.authenticate(old)
    assert tokens.authenticate(new).server_id == server.pk


def test_localboot_cancels_a_build_and_keeps_a_deployed_one(admin_user, tenants, profile):
    building, deployed, fresh = make_servers(tenants[0], 3)
    services.nodeset(
        user=admin_user, servers=[building, deployed], next_boot="install", profile=profile
    )
    services.report_done(token_of(deployed))
    token = token_of(building)

    result = services.nodeset(
        user=admin_user, servers=[building, deployed, fresh], next_boot="localboot"
    )

    assert result.created == 1
    cancelled, kept, new = (deploy_row(s) for s in (building, deployed, fresh))
    assert (cancelled.next_boot, cancelled.state, cancelled.stage) == ("localboot", "idle", "")
    assert cancelled.message == "Build cancelled: next boot set to localboot."
    assert (cancelled.token_nonce, cancelled.token_hash, cancelled.token_expires) == ("", "", None)
    assert cancelled.profile_id == profile.pk  # remembered for the next install
    assert (kept.next_boot, kept.state) == ("localboot", "deployed")
    assert (new.next_boot, new.state, new.profile_id) == ("localboot", "idle", None)
    with pytest.raises(tokens.InvalidToken):
        tokens.authenticate(token)
    # A cancelled build goes back to ready; a deployed server stays deployed.
    assert statuses([building, deployed, fresh]) == ["ready", "deployed", "new"]


@pytest.mark.parametrize("mode", ["rescue", "discovery"])
def test_other_modes(admin_user, tenants, mode):
    servers = make_servers(tenants[0], 2)
    services.nodeset(user=admin_user, servers=servers, next_boot=mode)
    assert set(ServerDeploy.objects.values_list("next_boot", "state")) == {(mode, "idle")}


def _nodeset_queries(user, servers, profile, mode="install"):
    with CaptureQueriesContext(connection) as captured:
        services.nodeset(user=user, servers=servers, next_boot=mode, profile=profile)
    return len(captured)


def test_query_count_does_not_grow_with_the_number_of_servers(operator, tenants, profile):
    few = make_servers(tenants[0], 5, prefix="few")
    many = make_servers(tenants[0], 500, prefix="many")
    # A first call fills the per-user permission caches: not a cost of nodeset.
    services.nodeset(user=operator, servers=few[:1], next_boot="localboot")

    created = (_nodeset_queries(operator, few, profile), _nodeset_queries(operator, many, profile))
    updated = (_nodeset_queries(operator, few, profile), _nodeset_queries(operator, many, profile))
    back = (
        _nodeset_queries(operator, few, None, "localboot"),
        _nodeset_queries(operator, many, None, "localboot"),
    )

    for small, large in (created, updated, back):
        assert small == large
        assert large <= 12, f"{large} statements for 500 servers"
    assert ServerDeploy.objects.filter(state="idle", next_boot="localboot").count() == 505
    assert AuditEvent.objects.filter(verb="nodeset").count() == 1 + 3 * 505


def test_a_queryset_of_servers(admin_user, tenants, profile):
    make_servers(tenants[0], 4)
    servers = Server.objects.filter(hostname__in=["node02", "node03"])
    result = services.nodeset(
        user=admin_user, servers=servers, next_boot="install", profile=profile
    )
    assert result.servers == ("node02", "node03")


def test_permission_and_scope(operator, viewer, tenants, profile):
    acme, globex = tenants
    (mine,) = make_servers(acme, 1, prefix="acme")
    (theirs,) = make_servers(globex, 1, prefix="globex")

    with pytest.raises(PermissionDenied):
        services.nodeset(user=viewer, servers=[mine], next_boot="install", profile=profile)
    with pytest.raises(PermissionDenied, match="globex01"):
        services.nodeset(
            user=operator, servers=[mine, theirs], next_boot="install", profile=profile
        )
    assert not ServerDeploy.objects.exists()
    assert statuses([mine, theirs]) == ["new", "new"]
    assert not AuditEvent.objects.filter(verb="nodeset").exists()


def test_profile_rules(operator, admin_user, tenants, profile):
    acme, globex = tenants
    (mine,) = make_servers(acme, 1)
    theirs = make_profile("globex-only", tenant=globex)
    with pytest.raises(ValidationError) as error:
        services.nodeset(user=operator, servers=[mine], next_boot="install", profile=theirs)
    assert "globex-only" in str(error.value.message_dict["profile"])  # invisible: "no such"
    # An admin sees it, but it still belongs to another tenant than the server's.
    with pytest.raises(ValidationError, match="another tenant"):
        services.nodeset(user=admin_user, servers=[mine], next_boot="install", profile=theirs)
    with pytest.raises(ValidationError, match="needs a profile"):
        services.nodeset(user=operator, servers=[mine], next_boot="install")
    with pytest.raises(ValidationError, match="No profile named 'nope'"):
        services.nodeset(user=operator, servers=[mine], next_boot="install", profile="nope")
    with pytest.raises(ValidationError, match="not a next boot"):
        services.nodeset(user=operator, servers=[mine], next_boot="reboot")
    with pytest.raises(ValidationError, match="at least one"):
        services.nodeset(user=operator, servers=[], next_boot="localboot")
    # By name, and a tenant's own profile for its servers.
    own = make_profile("acme-web", tenant=acme)
    result = services.nodeset(
        user=operator, servers=[mine], next_boot="install", profile="acme-web"
    )
    assert result.profile == "acme-web" and deploy_row(mine).profile == own
    assert not ServerDeploy.objects.exclude(server=mine).exists()


# The CLI --------------------------------------------------------------------------------------


def run(*args, user="root"):
    out = StringIO()
    call_command("nodeset", *args, "--user", user, stdout=out, stderr=StringIO())
    return out.getvalue().splitlines()


def test_cli(admin_user, tenants, profile):
    make_servers(tenants[0], 3)
    assert run("node[01-02]", "install=rocky9") == [
        "node01: install rocky9",
        "node02: install rocky9",
        "2 nodes: install rocky9",
    ]
    assert deploy_row(Server.objects.get(hostname="node02")).state == "building"
    assert run("node[01-03]", "localboot", "--quiet") == ["3 nodes: localboot"]
    assert set(ServerDeploy.objects.values_list("next_boot", flat=True)) == {"localboot"}
    assert AuditEvent.objects.filter(verb="nodeset", via="cli").count() == 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("node01", "install"), "install needs a profile"),
        (("node01", "install="), "install needs a profile"),
        (("node01", "reboot"), "unknown next boot 'reboot'"),
        (("node01", "localboot=x"), "unknown next boot"),
        (("node01", "install=nope"), "No profile named 'nope'"),
        (("node[01-05]", "localboot"), "No server or tag matches: node04, node05"),
    ],
)
def test_cli_errors(admin_user, tenants, profile, args, message):
    make_servers(tenants[0], 3)
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert not ServerDeploy.objects.exists()


def test_cli_without_the_permission(viewer, tenants, profile):
    make_servers(tenants[0], 1)
    with pytest.raises(CommandError, match="permission denied"):
        run("node01", "localboot", user="viewer")


# A server's own profile and parameters --------------------------------------------------------


def test_set_deploy(operator, tenants, profile):
    acme, globex = tenants
    (server,) = make_servers(acme, 1)
    row = services.set_deploy(server, user=operator, profile=profile, parameters={"tz": "UTC"})
    assert (row.profile, row.parameters, row.next_boot) == (profile, {"tz": "UTC"}, "localboot")
    services.set_deploy(server, user=operator, parameters={"tz": "Europe/Paris"})
    assert deploy_row(server).parameters == {"tz": "Europe/Paris"}
    verbs = list(
        AuditEvent.objects.filter(object_repr__startswith="node01").values_list("action", flat=True)
    )
    assert verbs == ["update", "create"]

    with pytest.raises(ValidationError):
        services.set_deploy(server, user=operator, parameters={"not a name": 1})
    with pytest.raises(ValidationError):
        services.set_deploy(server, user=operator, next_boot="install")
    with pytest.raises(ValidationError):
        services.set_deploy(server, user=operator, profile=make_profile("g", tenant=globex))
    (foreign,) = make_servers(globex, 1, prefix="g")
    with pytest.raises(PermissionDenied):
        services.set_deploy(foreign, user=operator, parameters={})
    assert deploy_row(server).parameters == {"tz": "Europe/Paris"}

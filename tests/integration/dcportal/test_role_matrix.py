"""What each role may do, written out by hand from the role descriptions in dcportal.rbac (not
computed from rbac, or the test could not fail): one user per role, all in acme, and the exact
HTTP status each gets for a representative action of every app.

    admin           everything, across all tenants: users, roles, tenants, secrets export
    operator        the fleet in its tenants; not users, roles or tenants, nor secrets export
    vm-power-admin  vm-admin plus migration (and placement) of VMs within a pool
    vm-admin        vm-operator plus creating, changing and destroying VMs
    vm-operator     read-only plus starting, stopping and rebooting VMs (and consoles)
    read-only       sees everything in its tenants, changes nothing
"""

import pytest
from django.urls import reverse

from dcportal import rbac
from dcportal.models import Job, Role
from tests.isolation import shared_world

pytestmark = pytest.mark.django_db

ROLES = ("admin", "operator", "vm-power-admin", "vm-admin", "vm-operator", "read-only")

# action: statuses in the order of ROLES. 403: the role lacks the action; 404: the object is
# another tenant's (for a role that holds the action; one that does not hears 403 first).
EXPECTED = {
    "list servers": (200, 200, 200, 200, 200, 200),
    "create server": (201, 201, 403, 403, 403, 403),
    "change server": (200, 200, 403, 403, 403, 403),
    "delete server": (204, 204, 403, 403, 403, 403),
    "power off server": (202, 202, 403, 403, 403, 403),
    "nodeset server": (200, 200, 403, 403, 403, 403),
    "create subnet": (201, 201, 403, 403, 403, 403),
    "allocate address": (201, 201, 403, 403, 403, 403),
    "create template": (201, 201, 403, 403, 403, 403),
    "create vm": (202, 202, 202, 202, 403, 403),
    "reboot vm": (202, 202, 202, 202, 202, 403),
    "migrate vm": (202, 202, 202, 403, 403, 403),
    "destroy vm": (202, 202, 202, 202, 403, 403),
    "create pool": (201, 201, 403, 403, 403, 403),
    "sync pool": (202, 202, 403, 403, 403, 403),
    "sign request": (200, 200, 403, 403, 403, 403),
    "revoke certificate": (200, 200, 403, 403, 403, 403),
    "create credential": (201, 201, 403, 403, 403, 403),
    "export certificate key": (200, 403, 403, 403, 403, 403),
    "create tenant": (201, 403, 403, 403, 403, 403),
    "assign role": (200, 403, 403, 403, 403, 403),
    "cancel another user's job": (200, 200, 403, 403, 403, 403),
    "view audit": (200, 200, 200, 200, 200, 200),
    "change globex server": (200, 404, 403, 403, 403, 403),
    "reboot globex vm": (202, 404, 404, 404, 404, 403),
    "view globex certificate": (200, 404, 404, 404, 404, 404),
}


@pytest.fixture(scope="module")
def shared(django_db_setup, django_db_blocker):
    members = {role: (role, ("acme",)) for role in ROLES}
    members["starter"] = ("operator", ("acme",))
    with shared_world(django_db_blocker, members) as (world, tenants, users):
        from virt.models import Host, Vm

        vm = world.get(Vm, tenants["acme"])
        Host.objects.create(pool=vm.pool, uuid="second-host", name="acme-host2")
        yield world, tenants, users


def _server(world, tenant):
    from inventory.models import Server

    return world.get(Server, tenant)


def _vm(world, tenant):
    from virt.models import Vm

    return world.get(Vm, tenant)


def _get(label, world, tenant):
    from django.apps import apps

    return world.get(apps.get_model(label), tenant)


def act(name, client, world, acme, globex, users):
    """The request of one action, as `client`."""
    vm = _vm(world, acme)
    if name == "list servers":
        return client.get("/api/inventory/servers/")
    if name == "create server":
        return client.post(
            "/api/inventory/servers/", {"hostname": "new01", "tenant": "acme"}, format="json"
        )
    if name == "change server":
        url = f"/api/inventory/servers/{_server(world, acme).pk}/"
        return client.patch(url, {"vendor": "Changed"}, format="json")
    if name == "delete server":
        from inventory.models import Server

        spare = Server.objects.create(hostname="spare01", tenant=acme)
        return client.delete(f"/api/inventory/servers/{spare.pk}/")
    if name == "power off server":
        url = f"/api/inventory/servers/{_server(world, acme).pk}/power/"
        return client.post(url, {"action": "off"}, format="json")
    if name == "nodeset server":
        body = {"servers": [_server(world, acme).pk], "next_boot": "localboot"}
        return client.post("/api/deploy/nodeset/", body, format="json")
    if name == "create subnet":
        body = {"network": "10.99.0.0/24", "tenant": "acme"}
        return client.post("/api/inventory/subnets/", body, format="json")
    if name == "allocate address":
        subnet = _get("inventory.Subnet", world, acme)
        return client.post(f"/api/inventory/subnets/{subnet.pk}/allocate/", {}, format="json")
    if name == "create template":
        body = {"name": "acme-new", "kind": "kickstart", "content": "text\n", "tenant": "acme"}
        return client.post("/api/deploy/templates/", body, format="json")
    if name == "create vm":
        body = {
            "name": "newvm01",
            "pool": vm.pool.name,
            "tenant": "acme",
            "template": vm.template.name,
            "vcpus": 1,
            "memory": "512M",
            "networks": [_get("virt.Network", world, acme).name],
            "start": False,
        }
        return client.post("/api/virt/vms/", body, format="json")
    if name == "reboot vm":
        return client.post(f"/api/virt/vms/{vm.pk}/power/", {"action": "reboot"}, format="json")
    if name == "migrate vm":
        url = f"/api/virt/vms/{vm.pk}/migrate/"
        return client.post(url, {"host": "acme-host2"}, format="json")
    if name == "destroy vm":
        url = f"/api/virt/vms/{vm.pk}/destroy/"
        return client.post(url, {"confirm": vm.server.hostname}, format="json")
    if name == "create pool":
        body = {"name": "acme-pool2", "url": "https://192.0.2.99/", "tenant": "acme"}
        return client.post("/api/virt/pools/", body, format="json")
    if name == "sync pool":
        return client.post(f"/api/virt/pools/{vm.pool.pk}/sync/", {}, format="json")
    if name == "sign request":
        pending = _get("ca.CertificateRequest", world, acme)
        url = f"/api/ca/requests/{pending.pk}/sign/"
        return client.post(url, {"approve_names": True}, format="json")
    if name == "revoke certificate":
        certificate = _get("ca.Certificate", world, acme)
        return client.post(f"/api/ca/certificates/{certificate.pk}/revoke/", {}, format="json")
    if name == "create credential":
        body = {"tenant": "acme", "name": "acme-new", "secret": "pw"}
        return client.post("/api/credentials/", body, format="json")
    if name == "create tenant":
        return client.post("/api/tenants/", {"name": "Initech", "slug": "initech"}, format="json")
    if name == "assign role":
        role = Role.objects.get(name="vm-operator")
        body = {"user": users["read-only"].username}
        return client.post(f"/api/roles/{role.pk}/assign/", body, format="json")
    if name == "cancel another user's job":
        job = Job.objects.create(
            kind="test.noop", queue="default", tenant=acme, user=users["starter"]
        )
        return client.post(f"/api/jobs/{job.pk}/cancel/", {}, format="json")
    if name == "view audit":
        return client.get("/api/audit/")
    if name == "change globex server":
        url = f"/api/inventory/servers/{_server(world, globex).pk}/"
        return client.patch(url, {"vendor": "Changed"}, format="json")
    if name == "reboot globex vm":
        url = f"/api/virt/vms/{_vm(world, globex).pk}/power/"
        return client.post(url, {"action": "reboot"}, format="json")
    if name == "view globex certificate":
        certificate = _get("ca.Certificate", world, globex)
        return client.get(f"/api/ca/certificates/{certificate.pk}/")
    raise AssertionError(f"no request for {name!r}")


PORTAL_ACTIONS = {"export certificate key"}


def portal_act(name, client, world, acme):
    if name == "export certificate key":
        certificate = _get("ca.Certificate", world, acme)
        return client.post(reverse("ca:certificate-key", args=[certificate.pk]))
    raise AssertionError(name)


CASES = [(action, role) for action in EXPECTED for role in ROLES]


def test_the_table_names_every_role_in_order():
    # The expected table is in XAPI's order; a role added to rbac must be added here too.
    assert ROLES == rbac.ROLE_NAMES
    assert all(len(statuses) == len(ROLES) for statuses in EXPECTED.values())


@pytest.mark.parametrize(("action", "role"), CASES, ids=[f"{a}-{r}" for a, r in CASES])
def test_role_gets_exactly_the_expected_status(action, role, shared, api, client):
    world, tenants, users = shared
    user = type(users[role]).objects.get(pk=users[role].pk)
    expected = EXPECTED[action][ROLES.index(role)]
    jobs = Job.objects.count()
    if action in PORTAL_ACTIONS:
        client.force_login(user)
        response = portal_act(action, client, world, tenants["acme"])
    else:
        response = act(action, api.as_user(user), world, tenants["acme"], tenants["globex"], users)
    body = getattr(response, "content", b"")[:400]
    assert response.status_code == expected, f"{role} {action}: {response.status_code} {body}"
    if expected in (403, 404):
        # A refusal starts nothing (cancel creates its own job row before asking).
        created = 1 if action == "cancel another user's job" else 0
        assert Job.objects.count() == jobs + created


# The portal: buttons only for those who may press them, and POSTs refused otherwise ----------

# page, the control's marker in the HTML, and which roles see it (in the order of ROLES).
BUTTONS = {
    "server delete": ("server", b'value="delete"', (1, 1, 0, 0, 0, 0)),
    "vm migrate": ("vm", b"/migrate/", (1, 1, 1, 0, 0, 0)),
    "vm destroy": ("vm", b"/destroy/", (1, 1, 1, 1, 0, 0)),
    "vm power": ("vm", b"/power/", (1, 1, 1, 1, 1, 0)),
}
BUTTON_CASES = [(button, role) for button in BUTTONS for role in ROLES]


def _page(kind, world, acme):
    if kind == "server":
        return reverse("inventory:servers")
    return reverse("virt:vm", args=[_vm(world, acme).pk])


@pytest.mark.parametrize(
    ("button", "role"), BUTTON_CASES, ids=[f"{b}-{r}" for b, r in BUTTON_CASES]
)
def test_portal_offers_a_button_only_to_its_holders(button, role, shared, client):
    world, tenants, users = shared
    page, marker, shown = BUTTONS[button]
    client.force_login(users[role])
    response = client.get(_page(page, world, tenants["acme"]))
    assert response.status_code == 200
    assert (marker in response.content) == bool(shown[ROLES.index(role)]), (button, role)


# POST of the portal form, and the status each role gets (302: done and sent back).
PORTAL_POSTS = {
    "delete server": (302, 302, 403, 403, 403, 403),
    "migrate vm": (302, 302, 302, 403, 403, 403),
    "cancel another user's job": (302, 302, 403, 403, 403, 403),
}
POST_CASES = [(action, role) for action in PORTAL_POSTS for role in ROLES]


@pytest.mark.parametrize(("action", "role"), POST_CASES, ids=[f"{a}-{r}" for a, r in POST_CASES])
def test_portal_posts_are_refused_to_those_without_the_action(action, role, shared, client):
    from inventory.models import Server

    world, tenants, users = shared
    acme = tenants["acme"]
    client.force_login(users[role])
    if action == "delete server":
        target = Server.objects.create(hostname="spare02", tenant=acme)
        response = client.post(reverse("inventory:server-delete", args=[target.pk]))
        gone = not Server.objects.filter(pk=target.pk).exists()
    elif action == "migrate vm":
        vm = _vm(world, acme)
        jobs = Job.objects.count()
        host = vm.pool.hosts.get(name="acme-host2")
        response = client.post(reverse("virt:vm-migrate", args=[vm.pk]), {"host": host.pk})
        gone = Job.objects.count() > jobs
    else:
        job = Job.objects.create(
            kind="test.noop", queue="default", tenant=acme, user=users["starter"]
        )
        response = client.post(reverse("job-cancel", args=[job.pk]))
        job.refresh_from_db()
        gone = job.cancel_requested
    expected = PORTAL_POSTS[action][ROLES.index(role)]
    assert response.status_code == expected, (action, role, response.status_code)
    assert gone == (expected == 302)

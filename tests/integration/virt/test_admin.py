"""Django admin of virtualization: admins only, a pool's password write-only and its changes
audited, what the sync reads read-only, VMs not created behind the services' back."""

import json

import pytest
from django.contrib.contenttypes.models import ContentType

from dcportal.models import AuditEvent
from virt import services
from virt.models import Host, Network, Pool, StorageRepository, Vif, Vm, VmTemplate

pytestmark = pytest.mark.django_db

PASSWORD = "admin-typed-secret"
GIB = 1024**3


def admin_fields(**overrides):
    values = {
        "name": "pool0",
        "driver": "xenapi",
        "url": "https://xen1.example.net/",
        "username": "root",
        "password": "",
        "verify_tls": "on",
        "ca_bundle": "",
        "tenant": "",
        "import_tenant": "",
        "max_sessions": "4",
        "sync_interval": "15",
        "vnc_port_min": "5900",
        "vnc_port_max": "6899",
        "options": "{}",
        "description": "",
    }
    return values | overrides


@pytest.fixture
def pool(admin_user, tenants):
    return services.create_pool(
        user=admin_user,
        name="pool0",
        url="https://xen1.example.net/",
        username="root",
        password=PASSWORD,
        tenant=tenants[0],
    )


@pytest.fixture
def synced(pool):
    """What a sync writes: a host, a template, a network, a storage repository."""
    return {
        "host": Host.objects.create(pool=pool, uuid="h1", name="xen1", cpu_count=8),
        "template": VmTemplate.objects.create(pool=pool, uuid="t1", name="Debian", vcpus=1),
        "network": Network.objects.create(pool=pool, uuid="n1", name="eth0", bridge="xenbr0"),
        "storage": StorageRepository.objects.create(
            pool=pool, uuid="s1", name="Local", size_bytes=100 * GIB
        ),
    }


@pytest.fixture
def vm(admin_user, pool, synced, tenants):
    return services.create_vm(
        user=admin_user,
        pool=pool,
        name="web01",
        tenant=tenants[0],
        template=synced["template"],
        vcpus=1,
        memory_bytes=GIB,
        networks=[synced["network"]],
        start=False,
    )


def pool_events(pool):
    return AuditEvent.objects.filter(
        content_type=ContentType.objects.get_for_model(Pool), object_id=str(pool.pk)
    ).order_by("pk")


def test_every_page_renders_for_an_admin_without_the_password(client, admin_user, vm, synced):
    client.force_login(admin_user)
    objects = [vm.pool, vm, vm.vifs.get(), *synced.values()]
    urls = [f"/admin/virt/{obj._meta.model_name}/" for obj in objects]
    urls += [f"/admin/virt/{obj._meta.model_name}/{obj.pk}/change/" for obj in objects]
    urls += [f"/admin/virt/pool/{vm.pool.pk}/history/", "/admin/virt/pool/add/"]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert PASSWORD not in response.content.decode(), url
    change = client.get(f"/admin/virt/pool/{vm.pool.pk}/change/").content.decode()
    assert 'type="password"' in change and "clear_password" in change


def test_non_admins_are_kept_out(client, operator, pool):
    client.force_login(operator)
    for url in ("/admin/virt/pool/", f"/admin/virt/pool/{pool.pk}/change/"):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_pool_added_in_admin_is_audited_without_its_password(client, admin_user):
    client.force_login(admin_user)
    response = client.post("/admin/virt/pool/add/", admin_fields(password=PASSWORD))
    assert response.status_code == 302, response.content.decode()
    pool = Pool.objects.get()
    assert pool.password.reveal() == PASSWORD
    (event,) = pool_events(pool)
    assert event.action == "create" and event.via == "admin"
    assert PASSWORD not in json.dumps(event.changes)


def test_password_box_keeps_replaces_and_clears(client, admin_user, pool):
    client.force_login(admin_user)
    url = f"/admin/virt/pool/{pool.pk}/change/"
    fields = admin_fields(tenant=str(pool.tenant_id))

    assert client.post(url, fields | {"description": "kept"}).status_code == 302
    pool.refresh_from_db()
    assert pool.password.reveal() == PASSWORD and pool.description == "kept"

    assert client.post(url, fields | {"description": "kept", "password": "new"}).status_code == 302
    pool.refresh_from_db()
    assert pool.password.reveal() == "new"

    assert (
        client.post(url, fields | {"description": "kept", "clear_password": "on"}).status_code
        == 302
    )
    pool.refresh_from_db()
    assert not pool.password

    updates = pool_events(pool).filter(action="update")
    assert updates.count() == 3
    text = json.dumps(list(updates.values_list("changes", flat=True)))
    assert PASSWORD not in text and '"new"' not in text


def test_synced_objects_are_read_only(client, admin_user, synced, vm):
    client.force_login(admin_user)
    host = synced["host"]
    response = client.post(f"/admin/virt/host/{host.pk}/change/", {"name": "renamed"})
    assert response.status_code == 403
    host.refresh_from_db()
    assert host.name == "xen1"
    for model in (Host, VmTemplate, Network, StorageRepository, Vif, Vm):
        assert client.get(f"/admin/virt/{model._meta.model_name}/add/").status_code == 403
    vif = vm.vifs.get()
    assert client.post(f"/admin/virt/vif/{vif.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Vif.objects.filter(pk=vif.pk).exists()


def test_a_vms_recorded_state_is_corrected_with_an_audit_event(client, admin_user, vm):
    client.force_login(admin_user)
    url = f"/admin/virt/vm/{vm.pk}/change/"
    form = {
        "state": "failed",
        "install_profile": "",
        "vifs-TOTAL_FORMS": "1",
        "vifs-INITIAL_FORMS": "1",
        "vifs-MIN_NUM_FORMS": "0",
        "vifs-MAX_NUM_FORMS": "1000",
        "vifs-0-id": str(vm.vifs.get().pk),
        "vifs-0-vm": str(vm.pk),
    }
    response = client.post(url, form)
    assert response.status_code == 302, response.content.decode()
    vm.refresh_from_db()
    assert vm.state == Vm.State.FAILED and vm.vcpus == 1
    event = AuditEvent.objects.filter(
        content_type=ContentType.objects.get_for_model(Vm), object_id=str(vm.pk), action="update"
    ).get()
    assert "state" in json.dumps(event.changes)


def test_a_new_url_needs_the_password_again(client, admin_user, pool):
    client.force_login(admin_user)
    url = f"/admin/virt/pool/{pool.pk}/change/"
    moved = admin_fields(tenant=str(pool.tenant_id), url="https://elsewhere.example.net/")
    response = client.post(url, moved)
    assert response.status_code == 200 and "Enter the password again" in response.content.decode()
    pool.refresh_from_db()
    assert pool.url == "https://xen1.example.net/"
    assert client.post(url, moved | {"password": "typed-again"}).status_code == 302
    pool.refresh_from_db()
    assert (pool.url, pool.password.reveal()) == ("https://elsewhere.example.net/", "typed-again")

"""Power in the portal: the BMC section and power buttons of a server's page (shown by
permission), the BMC form with its write-only password, bulk power actions from the server
list, and the page that follows the jobs they start."""

import re

import pytest
from django.urls import reverse

from dcportal import services as platform_services
from dcportal.models import Job
from inventory import power_services
from inventory.models import Bmc
from tests.integration.inventory.power_helpers import (  # noqa: F401 (fixtures)
    add_fake_bmc,
    fake_bmcs_fixture,
    make_servers,
    planted,
)
from tests.workers import run_burst_worker

pytestmark = pytest.mark.django_db


@pytest.fixture
def nodes(admin_user, tenants, fake_bmcs):
    servers = make_servers(admin_user, tenants[0], ["node01", "node02", "node03"])
    for server in servers:
        add_fake_bmc(server)
    return servers


def detail(client, server):
    response = client.get(reverse("inventory:server", args=[server.pk]))
    assert response.status_code == 200
    return response.content.decode()


def buttons(page):
    return re.findall(r'name="action" value="([^"]+)"', page)


def test_operator_sees_the_bmc_and_every_power_button(client, operator, nodes):
    client.force_login(operator)
    page = detail(client, nodes[0])

    assert 'id="power"' in page
    assert "bmc-node01" in page
    assert "never checked" in page
    assert buttons(page) == ["status", "on", "off", "softoff", "cycle", "reset", "bootdev-pxe"]
    assert "PXE boot once" in page
    assert reverse("inventory:server-bmc", args=[nodes[0].pk]) in page
    assert Bmc.objects.get(server=nodes[0]).password.reveal() not in page


def test_read_only_sees_the_state_but_only_the_status_button(client, viewer, nodes):
    client.force_login(viewer)
    page = detail(client, nodes[0])

    assert buttons(page) == ["status"]
    assert "Edit BMC" not in page and "Remove BMC" not in page
    response = client.post(reverse("inventory:server-power", args=[nodes[0].pk]), {"action": "on"})
    assert response.status_code == 403
    assert client.get(reverse("inventory:server-bmc", args=[nodes[0].pk])).status_code == 403
    assert not Job.objects.filter(params__action="on").exists()


def test_power_without_boot_device_hides_the_pxe_button(
    client, make_user, admin_user, tenants, nodes
):
    user = make_user("powerer", roles=["read-only"], tenants=[tenants[0]])
    platform_services.grant_action(user=admin_user, subject=user, action="inventory.power_server")
    client.force_login(user)

    assert buttons(detail(client, nodes[0])) == ["status", "on", "off", "softoff", "cycle", "reset"]
    pxe = client.post(
        reverse("inventory:server-power", args=[nodes[0].pk]), {"action": "bootdev-pxe"}
    )
    assert pxe.status_code == 403


def test_power_button_queues_a_job_and_the_page_lists_it(client, operator, nodes):
    client.force_login(operator)
    url = reverse("inventory:server-power", args=[nodes[0].pk])

    response = client.post(url, {"action": "bootdev-pxe"})

    assert response.status_code == 302
    assert response["Location"].endswith(f"/inventory/servers/{nodes[0].pk}/#power")
    job = Job.objects.get()
    assert (job.kind, job.queue, job.params["action"]) == (
        "inventory.power",
        "power",
        "bootdev-pxe",
    )
    page = client.get(response["Location"]).content.decode()
    assert f"job #{job.pk} queued" in page
    assert f'href="/jobs/{job.pk}/"' in page
    assert "data-live-jobs" in page


def test_server_without_bmc_offers_to_add_one(client, operator, admin_user, tenants):
    (server,) = make_servers(admin_user, tenants[0], ["bare01"])
    client.force_login(operator)
    page = detail(client, server)

    assert "No BMC" in page
    assert buttons(page) == []
    assert "Add a BMC" in page


def test_another_tenants_power_pages_are_404(client, operator, admin_user, tenants, fake_bmcs):
    (theirs,) = make_servers(admin_user, tenants[1], ["gx01"])
    add_fake_bmc(theirs)
    client.force_login(operator)
    for name in ("inventory:server-power", "inventory:server-bmc-delete"):
        assert client.post(reverse(name, args=[theirs.pk]), {"action": "on"}).status_code == 404
    assert client.get(reverse("inventory:server-bmc", args=[theirs.pk])).status_code == 404


# The BMC form ---------------------------------------------------------------------------------


def test_bmc_form_adds_and_edits_with_a_write_only_password(client, operator, admin_user, tenants):
    (server,) = make_servers(admin_user, tenants[0], ["web01"])
    client.force_login(operator)
    url = reverse("inventory:server-bmc", args=[server.pk])
    secret = planted()

    added = client.post(
        url,
        {
            "driver": "redfish",
            "address": "10.0.0.8",
            "username": "root",
            "password": secret,
            "options": '{"system_id": "/redfish/v1/Systems/1"}',
        },
    )

    assert added.status_code == 302
    bmc = Bmc.objects.get(server=server)
    assert (bmc.driver, bmc.password.reveal()) == ("redfish", secret)
    assert bmc.options == {"system_id": "/redfish/v1/Systems/1"}
    form = client.get(url).content.decode()
    assert secret not in form
    assert "A password is stored; leave empty to keep it." in form
    assert 'value="10.0.0.8"' in form

    kept = client.post(url, {"driver": "redfish", "address": "10.0.0.9", "password": ""})
    assert kept.status_code == 302
    bmc.refresh_from_db()
    assert (bmc.address, bmc.password.reveal()) == ("10.0.0.9", secret)
    assert secret not in detail(client, server)


def test_bmc_form_shows_errors_on_their_fields(client, operator, admin_user, tenants):
    (server,) = make_servers(admin_user, tenants[0], ["web02"])
    client.force_login(operator)
    url = reverse("inventory:server-bmc", args=[server.pk])

    response = client.post(url, {"driver": "ipmi", "address": "", "options": "[1, 2]"})

    assert response.status_code == 200
    page = response.content.decode()
    assert "Options must be a JSON object" in page
    response = client.post(url, {"driver": "ipmi", "address": ""})
    assert "An IPMI or Redfish BMC needs an address." in response.content.decode()
    assert not Bmc.objects.filter(server=server).exists()


def test_bmc_can_be_removed(client, operator, nodes):
    client.force_login(operator)
    response = client.post(reverse("inventory:server-bmc-delete", args=[nodes[0].pk]))
    assert response.status_code == 302
    assert not Bmc.objects.filter(server=nodes[0]).exists()


# Bulk power from the list ---------------------------------------------------------------------


def test_list_offers_power_actions_by_permission(client, operator, viewer, nodes):
    client.force_login(operator)
    page = client.get(reverse("inventory:index")).content.decode()
    assert 'value="power:off"' in page and 'value="power:bootdev-pxe"' in page

    client.force_login(viewer)
    page = client.get(reverse("inventory:index")).content.decode()
    assert "power:" not in page


def test_bulk_power_confirms_then_starts_one_job_per_server(client, operator, nodes):
    client.force_login(operator)
    bulk = reverse("inventory:server-bulk")
    body = {"action": "power:off", "ids": [nodes[0].pk, nodes[1].pk], "next": "/inventory/"}

    asked = client.post(bulk, body)
    assert asked.status_code == 200
    assert "Power off: 2 servers?" in asked.content.decode()
    assert not Job.objects.exists()

    done = client.post(bulk, {**body, "confirm": "1"})

    assert done.status_code == 302
    jobs = Job.objects.order_by("pk")
    assert [(job.object_repr, job.params["action"]) for job in jobs] == [
        ("node01", "off"),
        ("node02", "off"),
    ]
    assert done["Location"] == reverse("inventory:power-jobs") + f"?ids={jobs[0].pk},{jobs[1].pk}"
    page = client.get(done["Location"]).content.decode()
    assert re.findall(r'href="/jobs/(\d+)/"', page) == [str(jobs[0].pk), str(jobs[1].pk)]
    assert "data-live-jobs" in page


def test_bulk_power_skips_servers_out_of_scope_and_reports_missing_bmcs(
    client, operator, admin_user, tenants, nodes
):
    (bare,) = make_servers(admin_user, tenants[0], ["bare01"])
    (theirs,) = make_servers(admin_user, tenants[1], ["gx01"])
    client.force_login(operator)
    body = {
        "action": "power:on",
        "ids": [nodes[0].pk, bare.pk, theirs.pk],
        "next": "/inventory/",
        "confirm": "1",
    }

    response = client.post(reverse("inventory:server-bulk"), body)

    page = response.content.decode()
    assert response.status_code == 200
    assert "No BMC configured for bare01." in page
    assert "gx01" not in page
    assert not Job.objects.exists()


def test_power_jobs_page_shows_only_jobs_the_user_may_see(
    client, operator, make_user, admin_user, tenants, nodes
):
    mine = power_services.enqueue_power(user=operator, servers=nodes[:1], action="status")
    other = make_user("other", roles=["operator"], tenants=[tenants[1]])
    client.force_login(other)
    url = reverse("inventory:power-jobs") + f"?ids={mine[0].pk}"
    assert "No such power jobs" in client.get(url).content.decode()


@pytest.mark.django_db(transaction=True)
def test_detail_page_shows_the_state_after_the_job_ran(client, operator, nodes):
    client.force_login(operator)
    client.post(reverse("inventory:server-power", args=[nodes[0].pk]), {"action": "on"})

    run_burst_worker("power")

    page = detail(client, nodes[0])
    assert re.search(r"data-power-state>on<", page)
    assert "as of" in page
    assert "badge-succeeded" in page

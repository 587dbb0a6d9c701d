"""Power in the API: BMCs with write-only passwords, power actions on one server or many (ids or
a node range) answered 202 with tracked jobs on the "power" queue, run by a real in-process RQ
worker; permissions, tenant scope, and the schema."""

import django_rq
import pytest
import yaml
from django.core.management import call_command

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

BMCS = "/api/inventory/bmcs/"
BULK = "/api/inventory/power/"


def power_url(server):
    return f"/api/inventory/servers/{server.pk}/power/"


@pytest.fixture
def nodes(admin_user, tenants, fake_bmcs):
    servers = make_servers(admin_user, tenants[0], [f"node{i:02d}" for i in range(1, 4)])
    for server in servers:
        add_fake_bmc(server)
    return servers


@pytest.fixture
def foreign(admin_user, tenants, fake_bmcs):
    (server,) = make_servers(admin_user, tenants[1], ["gx01"])
    add_fake_bmc(server)
    return server


# BMCs -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_bmc_crud_with_a_write_only_password(api, operator, admin_user, tenants):
    (server,) = make_servers(admin_user, tenants[0], ["web01"])
    client = api.as_user(operator)
    secret = planted()
    body = {
        "server": server.pk,
        "driver": "ipmi",
        "address": "10.1.0.1",
        "username": "ADMIN",
        "password": secret,
        "options": {"cipher_suite": 17},
    }

    created = client.post(BMCS, body, format="json")

    assert created.status_code == 201, created.content
    data = created.json()
    assert "password" not in data
    assert data["has_password"] is True
    assert (data["hostname"], data["power_state"], data["power_state_checked"]) == (
        "web01",
        "unknown",
        None,
    )
    url = f"{BMCS}{data['id']}/"
    kept = client.patch(url, {"password": "", "port": 6230}, format="json")
    assert kept.status_code == 200, kept.content
    assert Bmc.objects.get(pk=data["id"]).password.reveal() == secret
    listed = client.get(BMCS, {"server": server.pk})
    assert [row["id"] for row in listed.json()["results"]] == [data["id"]]
    for response in (created, kept, listed, client.get(url)):
        assert secret not in response.content.decode()
    assert client.delete(url).status_code == 204
    assert not Bmc.objects.filter(server=server).exists()


@pytest.mark.django_db
def test_bmc_validation_errors_are_400s(api, operator, admin_user, tenants, foreign):
    (server,) = make_servers(admin_user, tenants[0], ["web02"])
    client = api.as_user(operator)

    no_address = client.post(BMCS, {"server": server.pk, "driver": "redfish"}, format="json")
    assert no_address.status_code == 400
    assert "address" in no_address.json()["error"]["fields"]
    theirs = client.post(BMCS, {"server": foreign.pk, "driver": "manual"}, format="json")
    assert theirs.status_code == 400
    assert "server" in theirs.json()["error"]["fields"]
    bad_options = client.post(
        BMCS, {"server": server.pk, "driver": "manual", "options": [1]}, format="json"
    )
    assert bad_options.status_code == 400


@pytest.mark.django_db
def test_bmcs_are_scoped_and_read_only_cannot_write(api, viewer, nodes, foreign):
    client = api.as_user(viewer)
    listed = client.get(BMCS).json()["results"]
    assert sorted(row["hostname"] for row in listed) == ["node01", "node02", "node03"]
    assert client.get(f"{BMCS}{foreign.bmc.pk}/").status_code == 404
    mine = nodes[0].bmc
    assert client.patch(f"{BMCS}{mine.pk}/", {"port": 1}, format="json").status_code == 403


# Power actions --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_power_action_answers_202_with_a_job_on_the_power_queue(api, operator, nodes):
    response = api.as_user(operator).post(power_url(nodes[0]), {"action": "on"}, format="json")

    assert response.status_code == 202, response.content
    job = Job.objects.get()
    assert response.json() == {
        "job": job.pk,
        "server": nodes[0].pk,
        "hostname": "node01",
        "action": "on",
        "status": "queued",
    }
    assert (job.kind, job.queue, job.user) == ("inventory.power", "power", operator)
    assert job.params == {"server_id": nodes[0].pk, "action": "on", "persistent": False}


@pytest.mark.django_db
def test_power_permissions(api, viewer, make_user, admin_user, tenants, nodes):
    client = api.as_user(viewer)
    assert client.post(power_url(nodes[0]), {"action": "status"}, format="json").status_code == 202
    for action in ("on", "off", "cycle", "reset", "softoff", "bootdev-pxe"):
        response = client.post(power_url(nodes[0]), {"action": action}, format="json")
        assert response.status_code == 403, action

    powerer = make_user("powerer", tenants=[tenants[0]])
    for code in ("inventory.view_server", "inventory.power_server"):
        platform_services.grant_action(user=admin_user, subject=powerer, action=code)
    client = api.as_user(powerer)
    assert client.post(power_url(nodes[0]), {"action": "off"}, format="json").status_code == 202
    denied = client.post(power_url(nodes[0]), {"action": "bootdev-pxe"}, format="json")
    assert denied.status_code == 403
    assert "set_boot_device" in denied.json()["error"]["message"]


@pytest.mark.django_db
def test_read_only_token_cannot_power(api, operator, nodes):
    client = api.as_user(operator, write=False)
    assert client.post(power_url(nodes[0]), {"action": "on"}, format="json").status_code == 403


@pytest.mark.django_db
def test_another_tenants_server_is_404(api, operator, foreign):
    response = api.as_user(operator).post(power_url(foreign), {"action": "on"}, format="json")
    assert response.status_code == 404
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_bad_requests_are_400(api, operator, admin_user, tenants, nodes):
    client = api.as_user(operator)
    unknown = client.post(power_url(nodes[0]), {"action": "explode"}, format="json")
    assert unknown.status_code == 400
    assert "action" in unknown.json()["error"]["fields"]
    (bare,) = make_servers(admin_user, tenants[0], ["bare01"])
    no_bmc = client.post(power_url(bare), {"action": "on"}, format="json")
    assert no_bmc.status_code == 400
    assert "No BMC configured for bare01" in str(no_bmc.json())


@pytest.mark.django_db
def test_bulk_by_ids_and_by_noderange(api, operator, nodes):
    client = api.as_user(operator)

    by_ids = client.post(
        BULK, {"servers": [nodes[0].pk, nodes[2].pk], "action": "bootdev-pxe"}, format="json"
    )
    assert by_ids.status_code == 202, by_ids.content
    assert [job["hostname"] for job in by_ids.json()["jobs"]] == ["node01", "node03"]

    by_range = client.post(BULK, {"noderange": "node[01-03]", "action": "off"}, format="json")
    assert by_range.status_code == 202
    jobs = by_range.json()["jobs"]
    assert [job["hostname"] for job in jobs] == ["node01", "node02", "node03"]
    assert set(Job.objects.filter(pk__in=[j["job"] for j in jobs]).values_list("queue")) == {
        ("power",)
    }


@pytest.mark.django_db
def test_bulk_errors(api, operator, nodes, foreign):
    client = api.as_user(operator)

    def post(body):
        return client.post(BULK, body, format="json")

    theirs = post({"servers": [nodes[0].pk, foreign.pk], "action": "on"})
    assert theirs.status_code == 400
    assert f"No server with id {foreign.pk}" in str(theirs.json())
    missing = post({"noderange": "node[01-09]", "action": "on"})
    assert missing.status_code == 400
    assert "noderange" in missing.json()["error"]["fields"]
    assert post({"noderange": "gx01", "action": "on"}).status_code == 400
    assert post({"action": "on"}).status_code == 400
    both = post({"servers": [nodes[0].pk], "noderange": "node01", "action": "on"})
    assert both.status_code == 400
    assert not Job.objects.exists()


# The worker -----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_worker_runs_the_jobs_and_records_results_and_failures(api, operator, nodes, fake_bmcs):
    fake_bmcs.passwords["bmc-node02"] = "something-else"
    client = api.as_user(operator)

    response = client.post(BULK, {"noderange": "node[01-03]", "action": "on"}, format="json")
    assert response.status_code == 202
    ids = {job["hostname"]: job["job"] for job in response.json()["jobs"]}
    assert django_rq.get_queue("power").count == 3

    run_burst_worker("power")

    good = Job.objects.get(pk=ids["node01"])
    assert good.status == "succeeded", good.error
    assert good.result["state"] == "on"
    assert good.progress == 100
    log = list(good.log.values_list("message", flat=True))
    assert log[0] == "node01: on through the tests-fake BMC bmc-node01"
    assert log[-1] == "node01: on"
    bad = Job.objects.get(pk=ids["node02"])
    assert bad.status == "failed"
    assert bad.error == (
        "PowerActionFailed: node02: node02 (BMC bmc-node02): BMC refused the credentials"
    )
    assert bad.log.filter(level="error").exists()
    assert Bmc.objects.get(server=nodes[2]).power_state == "on"
    # The job is readable in the API, with its log.
    detail = client.get(f"/api/jobs/{good.pk}/").json()
    assert detail["status"] == "succeeded"
    assert len(client.get(f"/api/jobs/{good.pk}/log/").json()) == len(log)


@pytest.mark.django_db(transaction=True)
def test_manual_bmc_job_asks_a_person(api, operator, admin_user, tenants):
    (server,) = make_servers(admin_user, tenants[0], ["old01"])
    power_services.create_bmc(user=admin_user, server=server, driver="manual")

    response = api.as_user(operator).post(power_url(server), {"action": "on"}, format="json")
    run_burst_worker("power")

    job = Job.objects.get(pk=response.json()["job"])
    assert job.status == "succeeded"
    assert job.result["status"] == "requested"
    assert "Manual driver: please switch old01 on" in job.log.values_list("message", flat=True)


@pytest.mark.django_db(transaction=True)
def test_a_job_rechecks_the_permission_when_it_runs(api, make_user, admin_user, tenants, nodes):
    user = make_user("temp", roles=["operator"], tenants=[tenants[0]])
    response = api.as_user(user).post(power_url(nodes[0]), {"action": "off"}, format="json")
    tenants[0].members.remove(user)  # out of the tenant before the worker gets to it

    run_burst_worker("power")

    job = Job.objects.get(pk=response.json()["job"])
    assert job.status == "failed"
    assert "PermissionDenied" in job.error


# Schema ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_schema_documents_power_and_hides_the_password(tmp_path):
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    paths = schema["paths"]
    assert "202" in paths["/api/inventory/servers/{id}/power/"]["post"]["responses"]
    assert "202" in paths["/api/inventory/power/"]["post"]["responses"]
    assert "/api/inventory/bmcs/{id}/" in paths
    components = schema["components"]["schemas"]
    assert "password" in components["BmcRequest"]["properties"]
    assert "password" not in components["Bmc"]["properties"]
    assert "has_password" in components["Bmc"]["properties"]
    assert components["PowerActionEnum"]["enum"] == list(power_services.ACTIONS)

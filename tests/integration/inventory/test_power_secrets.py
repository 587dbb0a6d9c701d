"""BMC passwords never leave the server: plant one on every BMC, drive power actions through the
API and the worker (successes, a refused password, an unreachable BMC), the CLI and the portal,
then look for the planted text in every response, command output, job row and log line, audit
event, Redis value and database row."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from dcportal import services as platform_services
from dcportal.models import AuditEvent, Job, JobLog
from inventory import power_services
from inventory.models import Bmc
from tests.integration.dcportal.test_secrets import database_text, redis_text
from tests.integration.inventory.power_helpers import (  # noqa: F401 (fixtures)
    add_fake_bmc,
    fake_bmcs_fixture,
    fast_retries_fixture,
    make_servers,
    planted,
)
from tests.workers import run_burst_worker


@pytest.mark.django_db(transaction=True)
def test_planted_bmc_passwords_appear_nowhere(
    api, client, operator, admin_user, tenants, fake_bmcs, fast_retries, caplog
):
    caplog.set_level("DEBUG")
    secrets = []
    servers = make_servers(admin_user, tenants[0], ["node01", "node02", "node03", "node04"])
    for server in servers[:3]:
        secrets.append(planted())
        add_fake_bmc(server, password=secrets[-1])
    # node02's BMC wants another password; node03's does not answer.
    fake_bmcs.passwords["bmc-node02"] = "the-right-one"
    Bmc.objects.filter(server=servers[2]).update(address="down-node03")
    # node04 logs in through a credential.
    secrets.append(planted())
    credential = platform_services.create_credential(
        user=admin_user, tenant=tenants[0], name="bmc-login", username="root", secret=secrets[-1]
    )
    power_services.create_bmc(
        user=admin_user,
        server=servers[3],
        driver="ipmi",
        address="127.0.0.1",
        credential=credential,
    )
    # A BMC changed through the API and the portal gets a new planted password each time.
    secrets.append(planted())
    api_client = api.as_user(operator)
    bmc4 = Bmc.objects.get(server=servers[3])
    patched = api_client.patch(
        f"/api/inventory/bmcs/{bmc4.pk}/", {"password": secrets[-1]}, format="json"
    )
    assert patched.status_code == 200
    Bmc.objects.filter(pk=bmc4.pk).update(driver="tests-fake", address="bmc-node04")

    outputs = [patched.content.decode()]
    for action in ("on", "bootdev-pxe", "sensors", "status"):
        response = api_client.post(
            "/api/inventory/power/", {"noderange": "node[01-04]", "action": action}, format="json"
        )
        assert response.status_code == 202
        outputs.append(response.content.decode())
        run_burst_worker("power")
    jobs = Job.objects.all()
    assert jobs.filter(status="succeeded").count() == 8
    assert jobs.filter(status="failed").count() == 8
    for job in jobs:
        outputs.append(api_client.get(f"/api/jobs/{job.pk}/").content.decode())
        outputs.append(api_client.get(f"/api/jobs/{job.pk}/log/").content.decode())
    outputs.append(api_client.get("/api/inventory/bmcs/").content.decode())
    outputs.append(api_client.get("/api/audit/").content.decode())

    out = StringIO()
    with pytest.raises(CommandError):
        call_command("rpower", "node[01-04]", "cycle", "--user", "op", stdout=out, stderr=out)
    outputs.append(out.getvalue())

    client.force_login(operator)
    outputs.append(client.get(reverse("inventory:server", args=[servers[3].pk])).content.decode())
    outputs.append(
        client.get(reverse("inventory:server-bmc", args=[servers[3].pk])).content.decode()
    )
    secrets.append(planted())
    edited = client.post(
        reverse("inventory:server-bmc", args=[servers[0].pk]),
        {"driver": "ipmi", "address": "10.9.9.9", "username": "admin", "password": secrets[-1]},
    )
    assert edited.status_code == 302
    outputs.append(client.get(reverse("audit")).content.decode())

    everything = "\n".join(
        [
            *outputs,
            *JobLog.objects.values_list("message", flat=True),
            *(str(job.params) + str(job.result) + job.error + job.message for job in jobs),
            *(str(event.changes) for event in AuditEvent.objects.all()),
            caplog.text,
            redis_text(),
            database_text(),
        ]
    )
    for secret in secrets:
        assert secret not in everything
    # The planted passwords were really used (node04's: the one set through the API) ...
    assert {secrets[0], secrets[1], secrets[4]} <= fake_bmcs.passwords_seen
    # ... and the scan saw what it should: failures, their messages and the audit of the changes.
    assert "BMC refused the credentials" in everything
    assert "connection refused" in everything
    assert AuditEvent.objects.filter(verb="power-on").count() == 4

"""rinstall: nodeset install, one-time network boot and power cycle through a real IPMI BMC
(OpenIPMI's ipmi_sim), and a real RQ worker following the build while the test plays the
installer against the boot endpoints; a build that never reports times out; the service's
rules, the API and the CLI.

transaction=True where a worker, a command thread or the installer thread has its own
database connection."""

import re
import threading
import time
from io import StringIO

import django_rq
import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.test import Client

from dcportal import jobs
from dcportal.models import AuditEvent, Job, JobLog
from deploy import services
from deploy.models import ServerDeploy
from inventory import power_services
from inventory.models import Server
from tests.peers import sims
from tests.workers import BurstWorker, run_burst_worker

from .build_helpers import deploy_row, mac_of, make_profile, make_servers

WAIT_SECONDS = 60


def add_bmc(user, server, target):
    return power_services.create_bmc(
        user=user,
        server=server,
        driver="ipmi",
        address=target.address,
        port=target.port,
        username=target.username,
        password=target.password,
        options=dict(target.options),
    )


def wait_for(predicate, what):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def job_progress(job_id):
    return Job.objects.filter(pk=job_id).values_list("progress", flat=True).first()


class Beside(threading.Thread):
    """Runs `target` beside the worker (which needs the main thread for its signals)."""

    def __init__(self, target):
        super().__init__(daemon=True)
        self.target, self.result, self.error = target, None, None

    def run(self):
        try:
            self.result = self.target()
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc
        finally:
            connections.close_all()  # this thread's own database connection


class Installer:
    """What the installed machine does once the BMC switched it on: fetch its iPXE script,
    its kickstart, report progress and done; after each step it waits until the rinstall
    job shows that stage, and records the progress it saw."""

    def __init__(self, sim, server, job_id, printed):
        self.sim, self.mac, self.job_id = sim, mac_of(server), job_id
        self.printed = printed  # what `rinstall --wait` printed so far
        self.seen = []

    def step(self, percent, what):
        wait_for(lambda: job_progress(self.job_id) == percent, f"the job at {percent}% ({what})")
        # The operator's terminal shows each stage before the machine moves on.
        wait_for(lambda: f"[{percent:3}%]" in self.printed(), f"rinstall --wait to show {what}")
        self.seen.append(percent)

    def __call__(self):
        client = Client()
        wait_for(lambda: self.sim.power == "on", "the BMC to switch the machine on")
        self.step(10, "waiting for boot")
        script = client.get("/boot/ipxe").content.decode()
        assert "/boot/ipxe/${net0/mac:hexhyp}" in script
        script = client.get(f"/boot/ipxe/{self.mac.replace(':', '-')}").content.decode()
        token = re.search(r"inst\.ks=http://testserver/boot/build/(\S+)/install", script)[1]
        self.step(20, "booted")
        assert client.get(f"/boot/build/{token}/install").status_code == 200
        self.step(40, "template fetched")
        response = client.post(f"/boot/build/{token}/progress", {"percent": 50, "message": "rpm"})
        assert response.status_code == 200
        self.step(67, "installing")
        assert client.post(f"/boot/build/{token}/done").status_code == 200
        return token


def rinstall_command(*args, user="root", out=None):
    out = StringIO() if out is None else out
    call_command("rinstall", *args, "--user", user, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_rinstall_with_a_real_bmc_and_worker(ipmi_bmcs, admin_user, tenants, settings):
    settings.RINSTALL_POLL_SECONDS = 0.1
    bmcs = ipmi_bmcs(1)
    sim = bmcs.peer
    (server,) = make_servers(tenants[0], 1)
    add_bmc(admin_user, server, bmcs[0])
    make_profile()
    assert sim.power == "off"

    queue = django_rq.get_queue("deploy")
    # A registered worker lets `rinstall --wait` go ahead; the burst worker below does the work.
    listener = BurstWorker([queue], connection=queue.connection)
    listener.register_birth()
    printed = StringIO()
    try:
        command = Beside(
            lambda: rinstall_command(
                "node01",
                "--profile",
                "rocky9",
                "--timeout",
                "120",
                "--wait",
                "--interval",
                "0.1",
                out=printed,
            )
        )
        command.start()
        wait_for(lambda: queue.count == 1, "the rinstall job to be queued")
        job = Job.objects.get(kind=services.RINSTALL_JOB_KIND)
        installer = Installer(sim, server, job.pk, printed.getvalue)
        machine = Beside(installer)
        machine.start()
        run_burst_worker("deploy")
        machine.join(WAIT_SECONDS)
        command.join(WAIT_SECONDS)
    finally:
        listener.register_death()

    assert machine.error is None, machine.error
    assert command.error is None, command.error
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert (job.progress, job.user, job.object_repr) == (100, admin_user, "node01")
    assert installer.seen == [10, 20, 40, 67]

    # The BMC was told: boot from the network once, then switched on (it was off).
    assert sim.power == "on" and sim.boot_device == "pxe"
    log = list(JobLog.objects.filter(job=job).order_by("pk").values_list("message", flat=True))
    assert any("bootdev-pxe through the ipmi BMC" in line for line in log)
    assert any(line.startswith("node01: on through the ipmi BMC") for line in log)
    for said in (
        "node01: booted, ipxe script fetched",
        "node01: template install fetched",
        "node01: installing 50%: rpm",
        "node01: installed; next boot localboot",
    ):
        assert said in log
    row = deploy_row(server)
    assert (row.state, row.next_boot, row.token_hash, row.job_id) == (
        "deployed",
        "localboot",
        "",
        job.pk,
    )
    assert Server.objects.get(pk=server.pk).status == "deployed"
    # The next boot of the machine is its local disk.
    assert "\nexit" in Client().get(f"/boot/ipxe/{mac_of(server)}").content.decode()

    output = command.result.splitlines()
    assert output[0] == f"node01: job {job.pk} queued"
    for percent, shown in ((10, "waiting for boot"), (67, "installing 50%: rpm")):
        line = rf"node01: \[ *{percent}%\] running +(node01: )?{shown}"
        assert any(re.fullmatch(line, x) for x in output), output
    assert any(x.startswith("node01: [100%] succeeded") for x in output), output
    assert output[-1] == "1 node: 1 installed, 0 failed"
    assert sims.IPMI_PASSWORD not in "\n".join([*output, *log, job.error])


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_build_that_never_reports_times_out(ipmi_bmcs, admin_user, tenants, settings):
    settings.RINSTALL_POLL_SECONDS = 0.1
    bmcs = ipmi_bmcs(1)
    sim = bmcs.peer
    sim.power = "on"
    (server,) = make_servers(tenants[0], 1)
    add_bmc(admin_user, server, bmcs[0])
    make_profile()
    before = sim.chassis_log()

    (job,) = services.rinstall(user=admin_user, servers=[server], profile="rocky9", timeout=1.5)
    token_hash = deploy_row(server).token_hash
    run_burst_worker("deploy")

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "node01: No install report within 1.5 s of the start of the reinstall" in job.error
    assert "(last stage: waiting for boot)" in job.error
    # It was on: power-cycled, not just switched on.
    assert len(sim.chassis_log()) > len(before) and sim.boot_device == "pxe"
    row = deploy_row(server)
    assert (row.state, row.stage, row.next_boot, row.token_hash) == (
        "failed",
        "failed",
        "localboot",
        "",
    )
    assert token_hash and row.error.startswith("No install report within 1.5 s")
    assert Server.objects.get(pk=server.pk).status == "failed"
    assert AuditEvent.objects.filter(verb="build-timeout", object_repr="node01").count() == 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_newer_nodeset_replaces_the_build(ipmi_bmcs, admin_user, tenants, settings):
    settings.RINSTALL_POLL_SECONDS = 0.1
    bmcs = ipmi_bmcs(1)
    (server,) = make_servers(tenants[0], 1)
    add_bmc(admin_user, server, bmcs[0])
    make_profile()
    (job,) = services.rinstall(user=admin_user, servers=[server], profile="rocky9", timeout=60)

    def operator_changes_their_mind():
        wait_for(lambda: job_progress(job.pk) == 10, "the job to wait for the boot")
        services.nodeset(user=admin_user, servers=[server], next_boot="localboot")

    other = Beside(operator_changes_their_mind)
    other.start()
    run_burst_worker("deploy")
    other.join(WAIT_SECONDS)
    assert other.error is None, other.error
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "replaced this build" in job.error
    assert deploy_row(server).state == "idle"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_cancelling_the_job_stops_following_not_the_build(ipmi_bmcs, admin_user, tenants, settings):
    settings.RINSTALL_POLL_SECONDS = 0.1
    bmcs = ipmi_bmcs(1)
    (server,) = make_servers(tenants[0], 1)
    add_bmc(admin_user, server, bmcs[0])
    make_profile()
    (job,) = services.rinstall(user=admin_user, servers=[server], profile="rocky9", timeout=60)

    def operator_cancels():
        wait_for(lambda: job_progress(job.pk) == 10, "the job to wait for the boot")
        jobs.cancel(Job.objects.get(pk=job.pk), user=admin_user)

    other = Beside(operator_cancels)
    other.start()
    run_burst_worker("deploy")
    other.join(WAIT_SECONDS)
    assert other.error is None, other.error
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    row = deploy_row(server)
    assert (row.state, row.next_boot) == ("building", "install") and row.token_hash


# The service's rules, the API and the CLI (no worker) -----------------------------------------


@pytest.fixture
def fleet(admin_user, tenants):
    servers = make_servers(tenants[0], 3)
    for n, server in enumerate(servers[:2]):
        power_services.create_bmc(
            user=admin_user, server=server, driver="ipmi", address=f"10.0.9.{n + 1}"
        )
    return servers


@pytest.mark.django_db
def test_rinstall_queues_one_job_per_server(fleet, operator, settings):
    settings.RINSTALL_TIMEOUT = 900
    make_profile()
    started = services.rinstall(user=operator, servers=fleet[:2], profile="rocky9")
    assert [job.object_repr for job in started] == ["node01", "node02"]
    for job, server in zip(started, fleet, strict=False):
        assert (job.kind, job.queue, job.status, job.user) == (
            "deploy.rinstall",
            "deploy",
            "queued",
            operator,
        )
        assert job.params == {"server_id": server.pk, "timeout": 900.0}
        assert job.message == f"Reinstall {server.hostname} with rocky9"
        row = deploy_row(server)
        assert (row.job_id, row.state, row.next_boot) == (job.pk, "building", "install")


@pytest.mark.django_db
def test_rinstall_rules(fleet, operator, viewer, make_user, tenants, settings):
    profile = make_profile()
    with pytest.raises(ValidationError, match="No BMC configured for node03"):
        services.rinstall(user=operator, servers=fleet, profile=profile)
    assert not ServerDeploy.objects.exists() and not Job.objects.exists()
    with pytest.raises(ValidationError, match="Name a profile: node01"):
        services.rinstall(user=operator, servers=fleet[:1], profile=None)
    for bad in (0, -5, 10**6, "soon"):
        with pytest.raises(ValidationError, match="timeout"):
            services.rinstall(user=operator, servers=fleet[:1], profile=profile, timeout=bad)
    deployer = make_user("deployer", tenants=[tenants[0]])
    deployer.user_permissions.add(
        *Permission.objects.filter(codename__in=["nodeset_server", "view_server"])
    )
    with pytest.raises(PermissionDenied, match="inventory.power_server"):
        services.rinstall(user=deployer, servers=fleet[:1], profile=profile)
    with pytest.raises(PermissionDenied):
        services.rinstall(user=viewer, servers=fleet[:1], profile=profile)
    assert not Job.objects.exists()

    # Without a profile, each server is reinstalled with its own.
    services.set_deploy(fleet[0], user=operator, profile=profile)
    other = make_profile("alma9")
    services.set_deploy(fleet[1], user=operator, profile=other)
    started = services.rinstall(user=operator, servers=fleet[:2], profile=None)
    assert [job.message for job in started] == [
        "Reinstall node01 with rocky9",
        "Reinstall node02 with alma9",
    ]
    assert deploy_row(fleet[1]).profile == other


@pytest.mark.django_db
def test_rinstall_api(fleet, operator, api, tenants):
    make_profile()
    client = api.as_user(operator)
    response = client.post(
        "/api/deploy/rinstall/", {"noderange": "node[01-02]", "profile": "rocky9"}, format="json"
    )
    assert response.status_code == 202, response.content
    jobs = response.json()["jobs"]
    assert [(j["hostname"], j["status"]) for j in jobs] == [
        ("node01", "queued"),
        ("node02", "queued"),
    ]
    assert jobs[0]["server"] == fleet[0].pk
    response = client.post(
        "/api/deploy/rinstall/", {"servers": [fleet[2].pk], "profile": "rocky9"}, format="json"
    )
    assert response.status_code == 400
    assert "No BMC configured" in str(response.json())


@pytest.mark.django_db
def test_rinstall_cli_without_wait(fleet, admin_user):
    make_profile()
    output = rinstall_command("node[01-02]", "--profile", "rocky9", "--timeout", "300")
    jobs = list(Job.objects.order_by("object_repr"))
    assert output.splitlines() == [f"{job.object_repr}: job {job.pk} queued" for job in jobs]
    assert [job.params["timeout"] for job in jobs] == [300.0, 300.0]
    with pytest.raises(CommandError, match="No BMC configured for node03"):
        rinstall_command("node03", "--profile", "rocky9")
    with pytest.raises(CommandError, match="no worker is listening on queue 'deploy'"):
        rinstall_command("node01", "--profile", "rocky9", "--wait")

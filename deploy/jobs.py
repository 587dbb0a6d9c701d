"""RQ entry points of deployment (autodiscovered by dcportal.apps)."""

import time

from django.conf import settings
from django.core.exceptions import PermissionDenied

from dcportal.jobs import job_kind
from deploy import services
from deploy.models import ServerDeploy
from inventory import power_services
from inventory.models import Server

State = ServerDeploy.State


class RinstallFailed(Exception):
    """The reinstall did not end in "deployed"; the message says why (safe to show)."""


def _power(ctx, server, action):
    result = power_services.run_power_action(
        user=ctx.user, server=server, action=action, log=ctx.log
    )
    if not result["ok"]:
        raise RinstallFailed(f"{server.hostname}: {action}: {result['message']}")
    return result


def _boot_from_network(ctx, server):
    """One-time network boot, then a power cycle (switched on instead when it is off)."""
    ctx.progress(2, "setting a one-time network boot")
    _power(ctx, server, "bootdev-pxe")
    state = _power(ctx, server, "status")["state"]
    action = "on" if state == "off" else "cycle"
    ctx.progress(5, "switching on" if action == "on" else "power cycling")
    _power(ctx, server, action)


def _ours(status, ctx, server):
    if status is None:
        raise RinstallFailed(f"{server.hostname}: its deployment was removed.")
    if status["job"] != ctx.job.pk:
        raise services.BuildSuperseded(
            f"{server.hostname}: a newer nodeset or rinstall replaced this build."
        )


def _follow(ctx, server, *, deadline, timeout, poll):
    """Watch the build until it ends; returns its last status, raises on failure/timeout."""
    shown = None
    while True:
        status = services.build_status(server.pk)
        _ours(status, ctx, server)
        stage = status["stage"]
        percent = services.job_progress(stage, status["progress"])
        text = services.STAGE_TEXT.get(stage, stage)
        if stage == ServerDeploy.Stage.INSTALLING:
            text = f"installing {status['progress']}%"
            if status["message"]:
                text += f": {status['message']}"
        if status["state"] == State.DEPLOYED:
            return status
        if status["state"] == State.FAILED:
            raise RinstallFailed(f"{server.hostname}: install failed: {status['error']}")
        if status["state"] != State.BUILDING:
            raise RinstallFailed(
                f"{server.hostname}: the build was cancelled (next boot {status['next_boot']})."
            )
        if (percent, text) != shown:
            ctx.progress(percent, text)  # raises JobCancelled when a cancel was asked for
            shown = (percent, text)
        else:
            ctx.check_cancelled()
        if time.monotonic() >= deadline:
            reason = (
                f"No install report within {timeout:g} s of the start of the reinstall "
                f"(last stage: {services.STAGE_TEXT.get(stage, stage)})."
            )
            if services.expire_build(server.pk, job_id=ctx.job.pk, reason=reason):
                raise RinstallFailed(f"{server.hostname}: {reason}")
            continue  # the build ended (or moved on) right then: read how
        time.sleep(max(0.05, min(poll, deadline - time.monotonic())))


@job_kind(services.RINSTALL_JOB_KIND, queue="deploy", title="Reinstall")
def rinstall(ctx, server_id, timeout, poll=None):
    """Network-boot one server into its install and follow the build to its end.

    Progress: waiting for boot 10 %, booted 20 %, template fetched 40 %, installing 40-95 %
    (the installer's own percentage), done 100 %. The job fails when the install fails, when it
    is not done within `timeout` seconds of the job's start (the build is then marked failed
    too), or when a newer nodeset replaced the build; cancelling the job stops following, the
    build goes on."""
    server = Server.objects.filter(pk=server_id).first()
    if server is None:
        raise RinstallFailed(f"Server {server_id} no longer exists.")
    if ctx.user is None:
        raise PermissionDenied("The user who asked for this reinstall no longer exists.")
    # The timeout counts from here, power actions included: the job must end before RQ's own
    # job timeout, which services.rinstall keeps the timeout under.
    timeout = float(timeout)
    deadline = time.monotonic() + timeout
    _ours(services.build_status(server_id), ctx, server)
    _boot_from_network(ctx, server)
    ctx.progress(10, services.STAGE_TEXT[ServerDeploy.Stage.WAITING])
    poll = settings.RINSTALL_POLL_SECONDS if poll is None else float(poll)
    status = _follow(ctx, server, deadline=deadline, timeout=timeout, poll=poll)
    ctx.log(f"{server.hostname}: deployed; it boots its local disk from now on")
    return {"server": server.pk, "hostname": server.hostname, "state": status["state"]}

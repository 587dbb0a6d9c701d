"""RQ entry points of the inventory (autodiscovered by dcportal.apps): take ids, load, call a
service, report progress."""

from django.core.exceptions import PermissionDenied

from dcportal.jobs import job_kind
from inventory import power_services
from inventory.models import Server


@job_kind(power_services.JOB_KIND, queue="power", title="Power action")
def power(ctx, server_id, action, persistent=False):
    """One power action on one server (inventory.power_services.run_power_action).

    A failed action fails the job, with the action's own message as the error; the result of a
    successful one (state, sensors, "requested" for a manual BMC) is the job's result."""
    server = Server.objects.filter(pk=server_id).first()
    if server is None:
        raise LookupError(f"Server {server_id} no longer exists.")
    if ctx.user is None:
        raise PermissionDenied("The user who asked for this action no longer exists.")
    ctx.progress(10, f"{action} {server.hostname}")
    result = power_services.run_power_action(
        user=ctx.user, server=server, action=action, persistent=persistent, log=ctx.log
    )
    if not result["ok"]:
        raise power_services.PowerActionFailed(f"{server.hostname}: {result['message']}")
    ctx.progress(100, f"{server.hostname}: {result['message']}")
    return result

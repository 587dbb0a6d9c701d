"""Portal pages for power control: the power buttons and BMC section of a server's page, bulk
power actions from the server list, and the page that follows the jobs they start.

Thin like the other server pages: inventory.power_services checks permission and scope again,
writes the BMC (audited) and enqueues one tracked job per server on the "power" queue.
"""

from django.contrib import messages
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from dcportal import rbac
from dcportal import selectors as platform_selectors
from inventory import power_services, selectors
from inventory.forms import (
    DISRUPTIVE_POWER_ACTIONS,
    POWER_ACTIONS,
    POWER_PREFIX,
    BmcForm,
    PowerForm,
    add_service_errors,
)
from inventory.models import Bmc, Server

MAX_JOBS_SHOWN = 1000
RECENT_JOBS = 10


def _server(request, pk):
    return get_object_or_404(selectors.servers_for(request.user), pk=pk)


def _bmc_of(server):
    return Bmc.objects.select_related("credential").filter(server=server).first()


def _label(action):
    return dict(POWER_ACTIONS).get(action, action)


def may_bulk(user, value):
    """Whether the user may run the bulk action `value` of the server list."""
    if value.startswith(POWER_PREFIX):
        return power_services.may(user, value.removeprefix(POWER_PREFIX))
    return user.has_perm(f"inventory.{'delete' if value == 'delete' else 'change'}_server")


def recent_power_jobs(server, *, user):
    content_type = ContentType.objects.get_for_model(Server)
    return platform_selectors.jobs_for(user).filter(
        kind=power_services.JOB_KIND, content_type=content_type, object_id=str(server.pk)
    )[:RECENT_JOBS]


def power_context(server, *, user):
    """What the server page shows of the BMC and power: only with view_bmc; the buttons only
    for actions the user holds."""
    if not user.has_perm("inventory.view_bmc"):
        return {"show_power": False}
    bmc = _bmc_of(server)
    buttons = []
    if bmc is not None:
        buttons = [
            {"action": value, "label": label, "confirm": value in DISRUPTIVE_POWER_ACTIONS}
            for value, label in POWER_ACTIONS
            if power_services.may(user, value)
        ]
    return {
        "show_power": True,
        "bmc": bmc,
        "power_buttons": buttons,
        "power_jobs": recent_power_jobs(server, user=user),
        "can_add_bmc": user.has_perm("inventory.add_bmc"),
        "can_change_bmc": user.has_perm("inventory.change_bmc"),
        "can_delete_bmc": user.has_perm("inventory.delete_bmc"),
    }


@require_POST
def server_power(request, pk):
    """A power button: one job on the power queue, then back to the server's power section."""
    server = _server(request, pk)
    back = reverse("inventory:server", args=[server.pk]) + "#power"
    form = PowerForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Unknown power action.")
        return redirect(back)
    action = form.cleaned_data["action"]
    rbac.require(request.user, power_services.permission_for(action))
    try:
        (job,) = power_services.enqueue_power(
            user=request.user,
            servers=[server],
            action=action,
            persistent=form.cleaned_data["persistent"],
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{_label(action)}: {server.hostname} — job #{job.pk} queued.")
    return redirect(back)


def bulk_power(request, data, back):
    """A power action on the servers selected in the list (called by views.server_bulk): asks
    to confirm anything that changes a machine, then starts one job per server and shows them."""
    user = request.user
    action = data["power_action"]
    spec = power_services.get_action(action)
    rbac.require(user, power_services.permission_for(action))
    servers = list(selectors.servers_for(user, spec.permission).filter(pk__in=data["ids"]))
    if not servers:
        messages.error(request, "None of the selected servers can be switched by you.")
        return redirect(back)
    count = f"{len(servers)} server{'s' if len(servers) != 1 else ''}"
    problems = []
    if data["confirm"] or not spec.changes:
        try:
            started = power_services.enqueue_power(user=user, servers=servers, action=action)
        except ValidationError as exc:
            problems = list(exc.messages)
        else:
            messages.success(request, f"{_label(action)}: {len(started)} job(s) queued.")
            ids = ",".join(str(job.pk) for job in started)
            return redirect(reverse("inventory:power-jobs") + f"?ids={ids}")
    return render(
        request,
        "inventory/server_confirm.html",
        {
            "title": f"{_label(action)}: {count}?",
            "servers": servers,
            "problems": problems,
            "action_url": reverse("inventory:server-bulk"),
            "action_label": _label(action),
            "danger": action in DISRUPTIVE_POWER_ACTIONS,
            "bulk": {"action": POWER_PREFIX + action},
            "back": back,
        },
    )


def power_jobs(request):
    """The jobs a bulk power action started (?ids=1,2,3), refreshed live while they run."""
    ids = [int(part) for part in request.GET.get("ids", "").split(",") if part.strip().isdigit()]
    jobs = platform_selectors.jobs_for(request.user).filter(
        pk__in=ids[:MAX_JOBS_SHOWN], kind=power_services.JOB_KIND
    )
    return render(request, "inventory/power_jobs.html", {"jobs": jobs.order_by("pk")})


def bmc_edit(request, pk):
    """Add or change a server's BMC; the password box is write-only."""
    server = _server(request, pk)
    bmc = _bmc_of(server)
    rbac.require(request.user, "inventory.change_bmc" if bmc else "inventory.add_bmc")
    initial = BmcForm.initial_for(bmc) if bmc else None
    form = BmcForm(request.POST or None, user=request.user, server=server, bmc=bmc, initial=initial)
    if request.method == "POST" and form.is_valid():
        fields = dict(form.cleaned_data)
        try:
            if bmc is None:
                power_services.create_bmc(user=request.user, server=server, **fields)
            else:
                power_services.update_bmc(bmc, user=request.user, **fields)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"BMC of {server.hostname} saved.")
            return redirect(reverse("inventory:server", args=[server.pk]) + "#power")
    return render(
        request,
        "inventory/form.html",
        {
            "form": form,
            "server": server,
            "title": f"{'Edit the' if bmc else 'Add a'} BMC of {server.hostname}",
            "submit": "Save",
            "cancel_url": reverse("inventory:server", args=[server.pk]) + "#power",
        },
    )


@require_POST
def bmc_delete(request, pk):
    server = _server(request, pk)
    bmc = get_object_or_404(Bmc, server=server)
    try:
        power_services.delete_bmc(bmc, user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"BMC of {server.hostname} removed.")
    return redirect(reverse("inventory:server", args=[server.pk]) + "#power")


urlpatterns = [
    path("servers/<int:pk>/power/", server_power, name="server-power"),
    path("servers/<int:pk>/bmc/", bmc_edit, name="server-bmc"),
    path("servers/<int:pk>/bmc/delete/", bmc_delete, name="server-bmc-delete"),
    path("power/jobs/", power_jobs, name="power-jobs"),
]

"""Portal pages of the build state machine: the builds table (building or failed servers, or
any state), one server's deployment (profile, parameters, nodeset and rinstall buttons), bulk
nodeset/rinstall from the inventory's server list and the builds table, and the rinstall jobs
they start.

Thin: deploy.services checks permission and tenant again and writes (audited); buttons are shown
only to those who may use them.
"""

from django.contrib import messages
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from dcportal import bulk, rbac
from dcportal import selectors as platform_selectors
from deploy import services
from deploy.build_forms import (
    BULK_ACTIONS,
    BulkDeployForm,
    DeployForm,
    NodesetForm,
    RinstallForm,
    profiles_for,
)
from deploy.forms import BuildFilterForm
from deploy.models import ServerDeploy
from deploy.tables import BuildTable
from inventory import selectors
from inventory.models import Bmc, Server

RECENT_JOBS = 10
MAX_JOBS_SHOWN = 1000
VIEW = "deploy.view_serverdeploy"
CHANGE = "deploy.change_serverdeploy"
ACTIVE = (ServerDeploy.State.BUILDING, ServerDeploy.State.FAILED)
NODESET_BUTTONS = (
    ("localboot", "Local disk"),
    ("rescue", "Rescue"),
    ("discovery", "Discovery"),
)


def _messages_of(exc):
    if hasattr(exc, "error_dict"):
        return [
            f"{field}: {message}" for field, errs in exc.message_dict.items() for message in errs
        ]
    return list(exc.messages)


def builds(request):
    """Servers with a deployment row, as a table: building or failed ones unless another state
    is asked for (?state=idle|building|deployed|failed|all). The page refreshes itself while a
    row it shows is building."""
    user = request.user
    rbac.require(user, VIEW)
    state = request.GET.get("state", "")
    scoped = rbac.restrict(
        Server.objects.filter(deploy__isnull=False).select_related(
            "tenant", "deploy", "deploy__profile", "deploy__job"
        ),
        user,
        VIEW,
    )
    counts = dict(
        scoped.order_by()
        .values("deploy__state")
        .annotate(n=Count("pk"))
        .values_list("deploy__state", "n")
    )
    rows = scoped
    if not state:
        rows = rows.filter(deploy__state__in=ACTIVE)
    profiles = profiles_for(user)
    table = BuildTable(request, rows, filter_form=BuildFilterForm(request.GET, profiles=profiles))
    if table.export and not table.errors:
        return table.export_response()
    shown = dict(ServerDeploy.State.choices).get(state, "").lower()
    table.empty_text = (
        "No server is building or failed."
        if not state
        else f"No server is {shown}."
        if shown
        else "No server matches."
    )
    tabs = [
        {
            "label": label,
            "url": table.url(state=value or None),
            "count": sum(counts.get(s, 0) for s in states) if states else sum(counts.values()),
            "current": value == state,
        }
        for value, label, states in (
            ("", "Building or failed", ACTIVE),
            *((s, label, (s,)) for s, label in ServerDeploy.State.choices),
            ("all", "All", ()),
        )
    ]
    return render(
        request,
        "deploy/build/list.html",
        {"table": table, "tabs": tabs, "title": "Builds", "polling": table.building},
    )


def _server(request, pk):
    return get_object_or_404(selectors.servers_for(request.user), pk=pk)


def _back(server):
    return reverse("deploy:server-deploy", args=[server.pk])


def rinstall_jobs_of(server, *, user):
    content_type = ContentType.objects.get_for_model(Server)
    return platform_selectors.jobs_for(user).filter(
        kind=services.RINSTALL_JOB_KIND, content_type=content_type, object_id=str(server.pk)
    )[:RECENT_JOBS]


def server_deploy(request, pk):
    """One server's deployment: state and progress, profile and parameters, nodeset/rinstall."""
    user = request.user
    rbac.require(user, VIEW)
    server = _server(request, pk)
    row = services.deploy_of(server)
    initial = {"profile": row.profile_id, "parameters": row.parameters} if row else None
    form = DeployForm(request.POST or None, user=user, server=server, initial=initial)
    if request.method == "POST":
        rbac.require(user, CHANGE)
        if form.is_valid():
            try:
                services.set_deploy(server, user=user, **form.cleaned_data)
            except ValidationError as exc:
                for message in _messages_of(exc):
                    form.add_error(None, message)
            else:
                messages.success(request, f"Deployment settings of {server.hostname} saved.")
                return redirect(_back(server))
    can_nodeset = user.has_perm(services.NODESET_PERMISSION)
    can_rinstall = all(user.has_perm(p) for p in services.RINSTALL_PERMISSIONS)
    profiles = profiles_for(user, server.tenant_id) if can_nodeset else []
    return render(
        request,
        "deploy/build/server.html",
        {
            "title": f"Deployment of {server.hostname}",
            "server": server,
            "row": row,
            "form": form,
            "can_change": user.has_perm(CHANGE),
            "can_nodeset": can_nodeset,
            "can_rinstall": can_rinstall,
            "has_bmc": Bmc.objects.filter(server=server).exists(),
            "profiles": profiles,
            "nodeset_buttons": NODESET_BUTTONS,
            "jobs": rinstall_jobs_of(server, user=user),
        },
    )


@require_POST
def server_nodeset(request, pk):
    user = request.user
    rbac.require(user, services.NODESET_PERMISSION)
    server = _server(request, pk)
    form = NodesetForm(request.POST, user=user, tenant_id=server.tenant_id)
    if not form.is_valid():
        messages.error(request, "Choose a next boot (and, for install, a profile).")
        return redirect(_back(server))
    next_boot, profile = form.cleaned_data["next_boot"], form.cleaned_data["profile"]
    if next_boot == ServerDeploy.NextBoot.INSTALL and profile is None:
        row = services.deploy_of(server)
        profile = row.profile if row is not None else None
    try:
        result = services.nodeset(user=user, servers=[server], next_boot=next_boot, profile=profile)
    except ValidationError as exc:
        messages.error(request, " ".join(_messages_of(exc)))
    else:
        what = f"install {result.profile}" if next_boot == "install" else next_boot
        messages.success(request, f"{server.hostname}: next boot {what}.")
    return redirect(_back(server))


@require_POST
def server_rinstall(request, pk):
    user = request.user
    for permission in services.RINSTALL_PERMISSIONS:
        rbac.require(user, permission)
    server = _server(request, pk)
    form = RinstallForm(request.POST, user=user, tenant_id=server.tenant_id)
    if not form.is_valid():
        messages.error(request, "Unknown profile.")
        return redirect(_back(server))
    try:
        (job,) = services.rinstall(
            user=user, servers=[server], profile=form.cleaned_data["profile"]
        )
    except ValidationError as exc:
        messages.error(request, " ".join(_messages_of(exc)))
    else:
        messages.success(request, f"Reinstall of {server.hostname}: job #{job.pk} queued.")
    return redirect(_back(server))


@require_POST
def server_bulk(request):
    """Nodeset or rinstall for the servers selected in the inventory's list or the builds
    table: the action and profile are chosen (and confirmed) on this page."""
    user = request.user
    rbac.require(user, services.NODESET_PERMISSION)
    back = bulk.back_url(request, reverse("inventory:index"))
    form = BulkDeployForm(request.POST, user=user)
    if not form.is_valid():
        errors = form.errors.get("ids") and "Select at least one server."
        messages.error(request, errors or "Choose an action and a profile the list offers.")
        return redirect(back)
    data = form.cleaned_data
    servers = list(
        rbac.restrict(Server.objects.select_related("tenant"), user, services.NODESET_PERMISSION)
        .filter(pk__in=data["ids"])
        .order_by("hostname")
    )
    if not servers:
        messages.error(request, "None of the selected servers can be set by you.")
        return redirect(back)
    action, profile = data["deploy_action"], data["profile"]
    listed = request.POST.get("action", "")
    if not action and not data["confirm"] and listed in dict(BULK_ACTIONS):
        # A list's bulk button that names a deploy action (the builds table's local boot)
        # comes here to be confirmed with that action chosen.
        action = listed
    problems = []
    if data["confirm"] and action:
        try:
            if action == "rinstall":
                for permission in services.RINSTALL_PERMISSIONS:
                    rbac.require(user, permission)
                started = services.rinstall(user=user, servers=servers, profile=profile)
                messages.success(request, f"Reinstall: {len(started)} job(s) queued.")
                ids = ",".join(str(job.pk) for job in started)
                return redirect(reverse("deploy:build-jobs") + f"?ids={ids}")
            if action == "install" and profile is None:
                raise ValidationError({"profile": "An install needs a profile."})
            result = services.nodeset(
                user=user,
                servers=servers,
                next_boot=action,
                profile=profile if action == "install" else None,
            )
        except ValidationError as exc:
            problems = _messages_of(exc)
        else:
            messages.success(request, f"{result.count} server(s): next boot {action}.")
            return redirect(
                reverse("deploy:builds") + ("?state=all" if action != "install" else "")
            )
    count = f"{len(servers)} server{'s' if len(servers) != 1 else ''}"
    return render(
        request,
        "deploy/build/bulk.html",
        {
            "title": f"Deploy {count}",
            "servers": servers,
            "problems": problems,
            "actions": [
                (value, label)
                for value, label in BULK_ACTIONS
                if value != "rinstall"
                or all(user.has_perm(p) for p in services.RINSTALL_PERMISSIONS)
            ],
            "action": action,
            "profiles": profiles_for(user),
            "profile": profile,
            "back": back,
        },
    )


def build_jobs(request):
    """The rinstall jobs a bulk action started (?ids=1,2,3), refreshed while they run."""
    ids = [int(part) for part in request.GET.get("ids", "").split(",") if part.strip().isdigit()]
    jobs = platform_selectors.jobs_for(request.user).filter(
        pk__in=ids[:MAX_JOBS_SHOWN], kind=services.RINSTALL_JOB_KIND
    )
    return render(
        request, "deploy/build/jobs.html", {"jobs": jobs.order_by("pk"), "title": "Reinstalls"}
    )


urlpatterns = [
    path("builds/", builds, name="builds"),
    path("builds/jobs/", build_jobs, name="build-jobs"),
    path("servers/bulk/", server_bulk, name="server-bulk"),
    path("servers/<int:pk>/", server_deploy, name="server-deploy"),
    path("servers/<int:pk>/nodeset/", server_nodeset, name="server-nodeset"),
    path("servers/<int:pk>/rinstall/", server_rinstall, name="server-rinstall"),
]

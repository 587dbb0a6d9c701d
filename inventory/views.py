"""Portal pages for servers: the list (search, filters including attributes, sort, pages, bulk
actions, bulk power actions), the detail page (facts, interfaces, addresses, conflicts, BMC and
power buttons, history), create and edit. Power pages live in inventory.power_views.

Thin: every page scopes with dcportal.rbac through inventory.selectors, every write calls
inventory.services, and a service's ValidationError comes back on the form field it concerns.
Edit controls are shown only to those who may use them; the services check again regardless.
"""

import json

from django.contrib import messages
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from dcportal import dialogs, rbac
from dcportal import selectors as platform_selectors
from dcportal.models import Job
from inventory import power_views, selectors, services
from inventory.forms import BulkForm, ServerFilterForm, ServerForm, add_service_errors
from inventory.models import Interface
from inventory.tables import ServerTable

MAX_FACT_DEPTH = 8


def _can(user, action):
    return user.has_perm(f"inventory.{action}_server")


def fact_tree(value, depth=0):
    """Attributes as nested nodes a template can walk without guessing types (a dict key
    called "items" would fool `value.items`). Past MAX_FACT_DEPTH levels the rest is shown as
    JSON text: facts come from machines, and a deeply nested report must not exhaust the
    template engine's recursion."""
    if isinstance(value, dict | list) and value and depth >= MAX_FACT_DEPTH:
        return {"kind": "text", "text": json.dumps(value, sort_keys=True)}
    if isinstance(value, dict):
        items = [(str(k), fact_tree(v, depth + 1)) for k, v in sorted(value.items())]
        return {"kind": "map", "items": items}
    if isinstance(value, list):
        items = [(str(i), fact_tree(v, depth + 1)) for i, v in enumerate(value)]
        return {"kind": "map", "items": items}
    if value is None or isinstance(value, bool):
        return {"kind": "literal", "text": "null" if value is None else str(value).lower()}
    return {"kind": "text", "text": str(value)}


def server_list(request):
    user = request.user
    queryset = selectors.servers_for(user).select_related("bmc", "deploy", "vm")
    table = ServerTable(request, queryset, filter_form=ServerFilterForm(request.GET, user=user))
    if table.export and not table.errors:
        return table.export_response()
    return render(
        request,
        "inventory/server_list.html",
        {"table": table, "can_add": _can(user, "add"), "can_change_servers": _can(user, "change")},
    )


def _server(request, pk):
    """A server the user may see, or 404 (also when it belongs to another tenant)."""
    return get_object_or_404(selectors.servers_for(request.user), pk=pk)


def server_detail(request, pk):
    """The server's page: a header with its status, power and deployment badges, then tabs.
    While a power job or a build runs, the header refreshes itself (htmx) until it ends."""
    server = _server(request, pk)
    user = request.user

    def _related(name):
        try:
            return getattr(server, name)
        except ObjectDoesNotExist:  # no deployment row, not a VM
            return None

    power = power_views.power_context(server, user=user)
    power_jobs = list(power.get("power_jobs", ()))
    deploy = _related("deploy") if user.has_perm("deploy.view_serverdeploy") else None
    vm = _related("vm") if user.has_perm("virt.view_vm") else None
    bmc = power.get("bmc")
    if vm is not None:
        power_state = vm.power_state
    elif bmc is not None:
        power_state = bmc.power_state
    else:
        power_state = ""
    busy = (
        any(job.status in (Job.Status.QUEUED, Job.Status.RUNNING) for job in power_jobs)
        or (deploy is not None and deploy.state == deploy.State.BUILDING)
        or (vm is not None and vm.state in (vm.State.CREATING, vm.State.INSTALLING))
    )
    return render(
        request,
        "inventory/server_detail.html",
        {
            "server": server,
            "interfaces": server.interfaces.all(),
            "facts": fact_tree(server.attributes),
            "addresses": selectors.addresses_of(server, user=user),
            "conflicts": selectors.conflicts_of(server, user=user),
            "certificates": platform_selectors.certificates_of_server(server, user=user),
            "events": selectors.server_history(server, user=user),
            "show_history": user.has_perm("dcportal.view_auditevent"),
            "can_change": _can(user, "change"),
            "can_delete": _can(user, "delete"),
            "can_change_interface": user.has_perm("inventory.change_interface"),
            **power,
            "power_jobs": power_jobs,
            "header_power": power_state,
            "header_deploy": deploy,
            "header_vm": vm,
            "state_busy": busy,
        },
    )


def server_create(request):
    rbac.require(request.user, "inventory.add_server")
    form = ServerForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            server = services.create_server(user=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            return dialogs.saved(
                request,
                location=reverse("inventory:server", args=[server.pk]),
                message=f"Server {server.hostname} created.",
            )
    return render(
        request,
        "inventory/form.html",
        {
            "form": form,
            "title": "New server",
            "submit": "Create server",
            "cancel_url": reverse("inventory:index"),
        },
    )


def server_edit(request, pk):
    server = _server(request, pk)
    rbac.require(request.user, "inventory.change_server")
    initial = ServerForm.initial_for(server)
    form = ServerForm(request.POST or None, user=request.user, initial=initial)
    if request.method == "POST" and form.is_valid():
        changed = {name: form.cleaned_data[name] for name in form.changed_data}
        try:
            services.update_server(server, user=request.user, **changed)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            return dialogs.saved(
                request,
                location=reverse("inventory:server", args=[server.pk]),
                message=f"Server {server.hostname} saved.",
            )
    return render(
        request,
        "inventory/form.html",
        {
            "form": form,
            "server": server,
            "title": f"Edit {server.hostname}",
            "submit": "Save",
            "cancel_url": reverse("inventory:server", args=[server.pk]),
        },
    )


def server_delete(request, pk):
    """GET asks for confirmation, POST deletes."""
    server = _server(request, pk)
    rbac.require(request.user, "inventory.delete_server")
    if request.method == "POST":
        try:
            services.delete_server(server, user=request.user)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("inventory:server", pk=server.pk)
        messages.success(request, f"Server {server.hostname} deleted.")
        return redirect("inventory:index")
    return render(
        request,
        "inventory/server_confirm.html",
        {
            "title": f"Delete {server.hostname}?",
            "servers": [server],
            "action_url": reverse("inventory:server-delete", args=[server.pk]),
            "action_label": "Delete",
            "danger": True,
            "back": reverse("inventory:server", args=[server.pk]),
        },
    )


@require_POST
def server_bulk(request):
    """A bulk action from the list: first a confirmation page, then (confirm=1) the service."""
    user = request.user
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = reverse("inventory:index")
    back = back or reverse("inventory:index")
    form = BulkForm(request.POST)
    if not form.is_valid():
        errors = form.errors.get("ids") and "Select at least one server."
        messages.error(request, errors or _form_message(form))
        return redirect(back)
    data = form.cleaned_data
    if data["power_action"]:
        return power_views.bulk_power(request, data, back)
    action = data["action"]
    needed = "delete" if action == "delete" else "change"
    rbac.require(user, f"inventory.{needed}_server")
    # Ids the user may not touch (another tenant's, or gone) drop out of the selection; the
    # confirmation page lists exactly the servers the action will change.
    servers = list(selectors.servers_for(user, needed).filter(pk__in=data["ids"]))
    if not servers:
        messages.error(request, "None of the selected servers can be changed.")
        return redirect(back)
    wording = _wording(action, data, len(servers))
    problems = []
    if data["confirm"]:
        try:
            _apply_bulk(user, action, [server.pk for server in servers], data)
        except ValidationError as exc:
            problems = _bulk_problems(exc, servers)
        else:
            messages.success(request, wording["done"])
            return redirect(back)
    return render(
        request,
        "inventory/server_confirm.html",
        {
            "title": wording["ask"],
            "servers": servers,
            "problems": problems,
            "action_url": reverse("inventory:server-bulk"),
            "action_label": dict(BulkForm.base_fields["action"].choices)[action],
            "danger": action == "delete",
            "bulk": {"action": action, "status": data.get("status"), "tags": data.get("tags")},
            "back": back,
        },
    )


def _apply_bulk(user, action, ids, data):
    if action == "delete":
        services.bulk_delete_servers(user=user, ids=ids)
    elif action == "status":
        services.bulk_set_status(user=user, ids=ids, status=data["status"])
    else:
        services.bulk_add_tags(user=user, ids=ids, tags=data["tags"])


def _wording(action, data, count):
    servers = f"{count} server{'s' if count != 1 else ''}"
    if action == "delete":
        return {"ask": f"Delete {servers}?", "done": f"Deleted {servers}."}
    if action == "status":
        status = data["status"]
        return {
            "ask": f"Set the status of {servers} to {status}?",
            "done": f"Status of {servers} set to {status}.",
        }
    try:
        tags = ", ".join(services.normalise_tags(data["tags"]))
    except ValidationError:
        tags = data["tags"]  # the service will say what is wrong with them
    return {"ask": f"Add the tags {tags} to {servers}?", "done": f"Tags {tags} added to {servers}."}


def _bulk_problems(exc, servers):
    if isinstance(exc, services.BulkError):
        return [
            f"{servers[index].hostname}: {message}"
            for index, fields in exc.errors.items()
            for message in services.flat_messages(fields)
        ]
    return list(exc.messages)


def _form_message(form):
    return " ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())


@require_POST
def interface_boot(request, pk):
    interface = rbac.get_restricted(
        Interface.objects.select_related("server"), request.user, "view", pk=pk
    )
    try:
        services.set_boot_interface(user=request.user, interface=interface)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{interface.server.hostname} now boots from {interface.name}.")
    return redirect(reverse("inventory:server", args=[interface.server_id]) + "#interfaces")


urlpatterns = [
    path("", server_list, name="index"),
    path("servers/", server_list, name="servers"),
    path("servers/new/", server_create, name="server-create"),
    path("servers/bulk/", server_bulk, name="server-bulk"),
    path("servers/<int:pk>/", server_detail, name="server"),
    path("servers/<int:pk>/edit/", server_edit, name="server-edit"),
    path("servers/<int:pk>/delete/", server_delete, name="server-delete"),
    path("interfaces/<int:pk>/boot/", interface_boot, name="interface-boot"),
    *power_views.urlpatterns,
]

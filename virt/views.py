"""Portal pages of virtualization: pools (list, detail with what the sync read, create and edit
in the dialog, delete, "Sync now") and VMs (list with filters and bulk power actions, the
two-step create form, detail with power, install, migrate and destroy).

Thin: every page scopes with dcportal.rbac through virt.selectors, every write calls
virt.services, and a service's ValidationError comes back on the form field it concerns.
Controls are shown only to those who may use them (a shared pool: admins only); the services
check again regardless. Every VM operation is a job: its page shows the progress.
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from dcportal import bulk, dialogs, rbac
from dcportal import selectors as platform_selectors
from virt import forms, selectors, services
from virt.models import Host, Network, Pool, StorageRepository, Vm, VmTemplate
from virt.tables import PoolTable, VmTable

MAX_JOBS_SHOWN = 1000
# A VM in these states has nothing on the hypervisor to operate (yet, or any more).
INACTIVE_STATES = frozenset({Vm.State.CREATING, Vm.State.DESTROYING})
# The buttons offered in each power state, as last read (XAPI's rules; the hypervisor has the
# last word). An unknown state offers every button.
APPLICABLE_ACTIONS = {
    Vm.PowerState.RUNNING: {"shutdown", "hard-shutdown", "reboot", "hard-reboot"},
    Vm.PowerState.HALTED: {"start"},
    Vm.PowerState.PAUSED: {"hard-shutdown", "hard-reboot"},
    Vm.PowerState.SUSPENDED: {"hard-shutdown"},
}


def _count(queryset):
    """A correlated COUNT over `queryset` per pool (0 when none), in the pools' one query."""
    counted = (
        queryset.filter(pool=OuterRef("pk"))
        .order_by()
        .values("pool")
        .annotate(count=Count("pk"))
        .values("count")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def _may_pool(user, action, pool=None):
    """Whether to show a pool control: the permission, and for a shared pool, an admin."""
    if not user.has_perm(f"virt.{action}_pool"):
        return False
    return pool is None or pool.tenant_id is not None or rbac.is_global(user)


def _pool(request, pk):
    """A pool the user may see, or 404 (also when it belongs to another tenant)."""
    return get_object_or_404(selectors.pools_for(request.user), pk=pk)


def _vm(request, pk):
    """A VM the user may see, or 404 (also when it belongs to another tenant)."""
    return get_object_or_404(selectors.vms_for(request.user), pk=pk)


def _job_url(job):
    return reverse("job", args=[job.pk])


# Pools ------------------------------------------------------------------------------------------


def index(request):
    """The pools the user sees, with their hosts, VMs and how their last sync went."""
    user = request.user
    # A shared pool holds other tenants' VMs too: count only those the user sees.
    pools = selectors.pools_for(user).annotate(
        visible_vms=_count(rbac.restrict(Vm.objects.all(), user))
    )
    table = PoolTable(request, pools, filter_form=forms.PoolFilterForm(request.GET, user=user))
    if table.export and not table.errors:
        return table.export_response()
    return render(
        request,
        "virt/pool_list.html",
        {
            "table": table,
            "can_add": _may_pool(user, "add"),
            "can_add_vm": user.has_perm("virt.add_vm"),
            "can_change_pools": user.has_perm("virt.change_pool"),
            "is_global": rbac.is_global(user),
            "subnav": "pools",
        },
    )


def pool_detail(request, pk):
    pool = _pool(request, pk)
    user = request.user
    storage = selectors.pool_objects(StorageRepository, user).filter(pool=pool)
    return render(
        request,
        "virt/pool_detail.html",
        {
            "pool": pool,
            "hosts": selectors.pool_objects(Host, user).filter(pool=pool),
            "templates": selectors.pool_objects(VmTemplate, user).filter(pool=pool),
            "networks": selectors.pool_objects(Network, user).filter(pool=pool),
            "storage": [(sr, _usage(sr)) for sr in storage],
            "vms": selectors.vms_for(user).filter(pool=pool),
            "can_change": _may_pool(user, "change", pool),
            "can_delete": _may_pool(user, "delete", pool),
            "can_sync": _may_pool(user, "sync", pool),
            "can_add_vm": user.has_perm("virt.add_vm"),
            "subnav": "pools",
        },
    )


def _usage(storage):
    size = storage.size_bytes
    return {
        "used": forms.human_size(storage.used_bytes),
        "size": forms.human_size(size),
        "free": forms.human_size(storage.free_bytes),
        "percent": 100.0 * storage.used_bytes / size if size else 0.0,
    }


def pool_edit(request, pk=None):
    """Create (no pk) or change a pool; the password box is write-only."""
    user = request.user
    pool = None if pk is None else _pool(request, pk)
    rbac.require(user, "virt.add_pool" if pool is None else "virt.change_pool")
    if pool is not None and not _may_pool(user, "change", pool):
        raise PermissionDenied("Only an admin may change what every tenant shares.")
    initial = None if pool is None else forms.PoolForm.initial_for(pool)
    form = forms.PoolForm(request.POST or None, user=user, pool=pool, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            if pool is None:
                pool = services.create_pool(user=user, **form.values())
            else:
                services.update_pool(pool, user=user, **form.values(changed_only=True))
        except ValidationError as exc:
            forms.add_service_errors(form, exc)
        else:
            return dialogs.saved(
                request,
                location=reverse("virt:pool", args=[pool.pk]),
                message=f"Pool {pool.name} saved.",
            )
    return render(
        request,
        "virt/form.html",
        {
            "form": form,
            "title": "New pool" if pool is None else f"Edit pool {pool.name}",
            "submit": "Create pool" if pool is None else "Save",
            "cancel_url": reverse("virt:index")
            if pool is None
            else reverse("virt:pool", args=[pool.pk]),
            "subnav": "pools",
        },
    )


def pool_delete(request, pk):
    """GET asks for confirmation, POST deletes (refused while the pool holds VMs)."""
    pool = _pool(request, pk)
    rbac.require(request.user, "virt.delete_pool")
    if not _may_pool(request.user, "delete", pool):
        raise PermissionDenied("Only an admin may change what every tenant shares.")
    if request.method == "POST":
        try:
            services.delete_pool(pool, user=request.user)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("virt:pool", pk=pool.pk)
        messages.success(request, f"Pool {pool.name} deleted.")
        return redirect("virt:index")
    return render(
        request,
        "virt/confirm.html",
        {
            "title": f"Delete the pool {pool.name}?",
            "text": "The portal forgets the pool and what it read from it; the hypervisor "
            "and its guests are not touched.",
            "action_url": reverse("virt:pool-delete", args=[pool.pk]),
            "action_label": "Delete pool",
            "back": reverse("virt:pool", args=[pool.pk]),
            "subnav": "pools",
        },
    )


@require_POST
def pool_sync(request, pk):
    """Sync now: one job reads the pool into the portal; its page shows the progress."""
    pool = _pool(request, pk)
    rbac.require(request.user, "virt.sync_pool")
    try:
        job = services.enqueue_sync(user=request.user, pool=pool)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("virt:pool", pk=pool.pk)
    messages.success(request, f"Sync of {pool.name}: job #{job.pk} queued.")
    return redirect(_job_url(job))


# VMs --------------------------------------------------------------------------------------------


def vm_list(request):
    user = request.user
    pools = rbac.restrict(Pool.objects.only("pk", "name", "tenant"), user).order_by("name")
    table = VmTable(
        request,
        selectors.vms_for(user),
        filter_form=forms.VmFilterForm(request.GET, pools=pools, user=user),
    )
    if table.export and not table.errors:
        return table.export_response()
    return render(
        request,
        "virt/vm_list.html",
        {"table": table, "can_add": user.has_perm("virt.add_vm"), "subnav": "vms"},
    )


@require_POST
def vm_bulk(request):
    """A power action on the VMs selected in the list: a confirmation page, then (confirm=1)
    one job per VM, all or none, and the page that follows those jobs."""
    user = request.user
    back = bulk.back_url(request, reverse("virt:vms"))
    form = forms.VmBulkForm(request.POST)
    if not form.is_valid():
        messages.error(
            request,
            "Select at least one VM." if "ids" in form.errors else "Unknown VM action.",
        )
        return redirect(back)
    action = form.cleaned_data["action"]
    permission, label = services.VM_ACTIONS[action]
    rbac.require(user, permission)
    # VMs the user may not operate (another tenant's, or gone) drop out of the selection; the
    # confirmation page lists exactly the VMs that get a job.
    vms = list(
        selectors.vms_for(user, permission)
        .filter(pk__in=form.cleaned_data["ids"])
        .order_by("server__hostname", "pk")
    )
    if not vms:
        messages.error(request, "None of the selected VMs can be operated by you.")
        return redirect(back)
    problems = []
    if form.cleaned_data["confirm"]:
        try:
            started = services.vm_actions(user=user, vms=vms, action=action)
        except ValidationError as exc:
            problems = exc.messages
        else:
            messages.success(request, f"{label}: {len(started)} job(s) queued.")
            ids = ",".join(str(job.pk) for job in started)
            return redirect(reverse("virt:vm-jobs") + f"?ids={ids}")
    count = f"{len(vms)} VM{'s' if len(vms) != 1 else ''}"
    return render(
        request,
        "virt/vm_bulk_confirm.html",
        {
            "title": f"{label}: {count}?",
            "vms": vms,
            "problems": problems,
            "action": action,
            "action_label": label,
            "danger": action != "start",
            "back": back,
            "subnav": "vms",
        },
    )


def vm_jobs(request):
    """The jobs a bulk power action started (?ids=1,2,3), refreshed while any of them runs."""
    ids = [int(part) for part in request.GET.get("ids", "").split(",") if part.strip().isdigit()]
    jobs = list(
        platform_selectors.jobs_for(request.user)
        .filter(pk__in=ids[:MAX_JOBS_SHOWN], kind=services.POWER_JOB_KIND)
        .order_by("pk")
    )
    return render(
        request,
        "virt/vm_jobs.html",
        {
            "jobs": jobs,
            "running": any(job.status not in job.FINISHED for job in jobs),
            "subnav": "vms",
        },
    )


def vm_create(request):
    """Two steps without scripts: ?pool=ID chooses the pool, then its templates, storage and
    networks are offered."""
    user = request.user
    rbac.require(user, "virt.add_vm")
    pools = selectors.pools_for(user).select_related("tenant")
    chosen = request.GET.get("pool", "")
    if not chosen.isdigit():
        return render(
            request,
            "virt/vm_create.html",
            {"pool_form": forms.PoolChoiceForm(pools=pools), "subnav": "vms"},
        )
    pool = get_object_or_404(pools, pk=int(chosen))
    form = forms.VmCreateForm(request.POST or None, user=user, pool=pool)
    if request.method == "POST" and form.is_valid():
        fields = {**form.cleaned_data, "networks": list(form.cleaned_data["networks"])}
        try:
            vm = services.create_vm(user=user, pool=pool, **fields)
        except ValidationError as exc:
            forms.add_service_errors(form, exc)
        else:
            messages.success(
                request, f"VM {vm.server.hostname}: creation queued as job #{vm.job_id}."
            )
            return redirect("virt:vm", pk=vm.pk)
    return render(
        request,
        "virt/vm_create.html",
        {
            "pool": pool,
            "form": form,
            "pool_form": forms.PoolChoiceForm(pools=pools, initial={"pool": pool.pk}),
            "subnav": "vms",
        },
    )


def _operable(vm):
    """Whether the VM exists on the hypervisor for an operation to reach it."""
    return bool(vm.uuid) and vm.state not in INACTIVE_STATES


def _action_buttons(user, vm):
    if not _operable(vm):
        return []
    applicable = APPLICABLE_ACTIONS.get(vm.power_state, services.VM_ACTIONS.keys())
    return [
        {"action": action, "label": label, "confirm": action != "start"}
        for action, (permission, label) in services.VM_ACTIONS.items()
        if action in applicable and user.has_perm(permission)
    ]


def vm_detail(request, pk):
    vm = _vm(request, pk)
    user = request.user
    active = _operable(vm)
    install_form = None
    if active and user.has_perm("virt.install_vm"):
        install_form = forms.InstallForm(user=user)
        if not install_form.fields["profile"].queryset.exists():
            install_form = None
    # Only a running guest migrates, and only to another host of its pool.
    migrate_form = None
    if active and vm.power_state == Vm.PowerState.RUNNING and user.has_perm("virt.pool_migrate"):
        migrate_form = forms.MigrateForm(vm=vm)
        if not migrate_form.fields["host"].queryset.exists():
            migrate_form = None
    return render(
        request,
        "virt/vm_detail.html",
        {
            "vm": vm,
            "server": vm.server,
            "vifs": vm.vifs.all(),
            "buttons": _action_buttons(user, vm),
            "install_form": install_form,
            "migrate_form": migrate_form,
            "can_destroy": vm.state != Vm.State.DESTROYING and user.has_perm("virt.delete_vm"),
            "subnav": "vms",
        },
    )


def _back(vm):
    return reverse("virt:vm", args=[vm.pk])


def _run(request, vm, start, wording):
    """Call a service that starts a job on the VM; a refusal comes back as a message."""
    try:
        job = start()
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{wording}: {vm.server.hostname} — job #{job.pk} queued.")
    return redirect(_back(vm))


@require_POST
def vm_action(request, pk):
    """A power button: start, shutdown, force shutdown, reboot, force reboot."""
    vm = _vm(request, pk)
    form = forms.VmActionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Unknown VM action.")
        return redirect(_back(vm))
    action = form.cleaned_data["action"]
    permission, label = services.VM_ACTIONS[action]
    rbac.require(request.user, permission)
    return _run(
        request, vm, lambda: services.vm_action(user=request.user, vm=vm, action=action), label
    )


@require_POST
def vm_install(request, pk):
    vm = _vm(request, pk)
    rbac.require(request.user, "virt.install_vm")
    form = forms.InstallForm(request.POST, user=request.user)
    if not form.is_valid():
        messages.error(request, "Choose a profile you may use.")
        return redirect(_back(vm))
    profile = form.cleaned_data["profile"]
    return _run(
        request,
        vm,
        lambda: services.install_vm(user=request.user, vm=vm, profile=profile),
        f"Install with {profile.name}",
    )


@require_POST
def vm_migrate(request, pk):
    vm = _vm(request, pk)
    rbac.require(request.user, "virt.pool_migrate")
    form = forms.MigrateForm(request.POST, vm=vm)
    if not form.is_valid():
        messages.error(request, "Choose another host of the pool.")
        return redirect(_back(vm))
    host = form.cleaned_data["host"]
    return _run(
        request,
        vm,
        lambda: services.migrate_vm(user=request.user, vm=vm, host=host),
        f"Migrate to {host.name}",
    )


def vm_destroy(request, pk):
    """GET asks the user to type the host name, POST destroys the VM (a job)."""
    vm = _vm(request, pk)
    rbac.require(request.user, "virt.delete_vm")
    form = forms.DestroyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = services.destroy_vm(
                user=request.user, vm=vm, confirm=form.cleaned_data["confirm"]
            )
        except ValidationError as exc:
            forms.add_service_errors(form, exc)
        else:
            messages.success(request, f"Destruction of {vm.server.hostname}: job #{job.pk} queued.")
            return redirect(_job_url(job))
    return render(
        request,
        "virt/vm_destroy.html",
        {"vm": vm, "form": form, "back": _back(vm), "subnav": "vms"},
    )


urlpatterns = [
    path("", index, name="index"),
    path("pools/new/", pool_edit, name="pool-create"),
    path("pools/<int:pk>/", pool_detail, name="pool"),
    path("pools/<int:pk>/edit/", pool_edit, name="pool-edit"),
    path("pools/<int:pk>/delete/", pool_delete, name="pool-delete"),
    path("pools/<int:pk>/sync/", pool_sync, name="pool-sync"),
    path("vms/", vm_list, name="vms"),
    path("vms/new/", vm_create, name="vm-create"),
    path("vms/bulk/", vm_bulk, name="vm-bulk"),
    path("vms/jobs/", vm_jobs, name="vm-jobs"),
    path("vms/<int:pk>/", vm_detail, name="vm"),
    path("vms/<int:pk>/power/", vm_action, name="vm-action"),
    path("vms/<int:pk>/install/", vm_install, name="vm-install"),
    path("vms/<int:pk>/migrate/", vm_migrate, name="vm-migrate"),
    path("vms/<int:pk>/destroy/", vm_destroy, name="vm-destroy"),
]

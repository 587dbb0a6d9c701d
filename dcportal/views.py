"""Portal pages of the platform: dashboard, jobs, audit, API tokens."""

import json
from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from dcportal import bulk, charts, jobs, preferences, rbac, selectors, services, tables
from dcportal.forms import AuditFilterForm, JobFilterForm, TokenFilterForm, TokenForm
from dcportal.lists import AuditTable, JobTable, TokenTable
from dcportal.models import ApiToken, Job, Tenant
from inventory.models import Bmc, Server
from virt.models import Vm

DASHBOARD_EXPIRY_DAYS = 30
NAVIGATION = (
    ("Dashboard", "dashboard", None),
    ("Inventory", "inventory:index", None),
    ("Deploy", "deploy:index", None),
    ("Virtualization", "virt:index", None),
    ("Certificates", "ca:index", None),
    ("Jobs", "jobs", None),
    ("Audit", "audit", "dcportal.view_auditevent"),
)


def navigation(request):
    """Context processor: the navigation entries this user may follow."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    entries = [
        {
            "label": label,
            "url": reverse(name),
            "active": request.path.startswith(reverse(name))
            and name != "dashboard"
            or request.path == reverse(name),
        }
        for label, name, perm in NAVIGATION
        if perm is None or user.has_perm(perm)
    ]
    return {
        "nav": entries,
        "nav_admin": rbac.is_global(user),
        "user_roles": rbac.user_roles(user),
    }


def dashboard(request):
    """The fleet at a glance: every figure counts only what the user may see, and each bar
    links to the list of exactly the rows it counts."""
    user = request.user
    now = timezone.now()
    since = now - timedelta(hours=24)
    servers_url = reverse("inventory:index")
    context = {
        **selectors.job_counts(user, since),
        "recent_jobs": selectors.jobs_for(user)[:8],
        "recent_events": selectors.audit_events_for(user)[:10],
        "all_tenants": rbac.is_global(user),
        "tenant_count": Tenant.objects.count()
        if rbac.is_global(user)
        else len(rbac.tenant_ids(user)),
        "expiry_days": DASHBOARD_EXPIRY_DAYS,
    }
    status_tones = {
        "new": "warn",
        "ready": "neutral",
        "deploying": "busy",
        "deployed": "ok",
        "failed": "bad",
        "retired": "idle",
    }
    power_tones = {
        "on": "ok",
        "running": "ok",
        "off": "idle",
        "halted": "idle",
        "paused": "warn",
        "suspended": "busy",
        "unknown": "other",
    }

    def figures(counts, choices, url, parameter, tones):
        return [
            charts.Datum(label, counts.get(value, 0), f"{url}?{parameter}={value}", tones[value])
            for value, label in choices
        ]

    fleet = selectors.fleet_counts(user)
    if fleet is not None:
        context["fleet_status"] = charts.bar_chart(
            "chart-status",
            "Servers by status",
            figures(
                fleet["status"],
                [(value, value) for value in Server.Status.values],
                servers_url,
                "status",
                status_tones,
            ),
        )
        context["fleet_kind"] = charts.stacked_bar(
            "chart-kind",
            "Servers by kind",
            figures(
                fleet["kind"],
                [(value, value) for value in Server.Kind.values],
                servers_url,
                "kind",
                {"physical": "neutral", "virtual": "busy"},
            ),
        )
    builds = selectors.build_counts(user, since)
    if builds is not None:
        builds_url = reverse("deploy:builds")
        context["builds"] = charts.bar_chart(
            "chart-builds",
            "Deployments",
            [
                charts.Datum(
                    "building", builds["building"], f"{builds_url}?state=building", "busy"
                ),
                charts.Datum("failed", builds["failed"], f"{builds_url}?state=failed", "bad"),
            ],
        )
        context["builds_failed_recent"] = builds["failed_recent"]
    bmc_power = selectors.bmc_power_counts(user)
    if bmc_power is not None:
        context["bmc_power"] = charts.stacked_bar(
            "chart-bmc-power",
            "Power of servers with a BMC",
            figures(
                bmc_power,
                [(value, value) for value in Bmc.PowerState.values],
                servers_url,
                "bmc_power",
                power_tones,
            ),
        )
    vm_power = selectors.vm_power_counts(user)
    if vm_power is not None:
        context["vm_power"] = charts.stacked_bar(
            "chart-vm-power",
            "Power of VMs",
            figures(
                vm_power,
                [(value, value) for value in Vm.PowerState.values],
                reverse("virt:vms"),
                "power_state",
                power_tones,
            ),
        )
    certificates = selectors.certificate_counts(user, DASHBOARD_EXPIRY_DAYS, now=now)
    if certificates is not None:
        certificates_url = reverse("ca:certificates")
        context["certificates"] = charts.bar_chart(
            "chart-certificates",
            "Certificates",
            [
                charts.Datum(
                    f"expiring within {DASHBOARD_EXPIRY_DAYS} days",
                    certificates["expiring"],
                    f"{certificates_url}?expiring_within={DASHBOARD_EXPIRY_DAYS}",
                    "warn",
                ),
                charts.Datum(
                    "valid", certificates["valid"], f"{certificates_url}?status=valid", "ok"
                ),
                charts.Datum(
                    "revoked", certificates["revoked"], f"{certificates_url}?status=revoked", "bad"
                ),
            ],
        )
        context["certificates_expiring"] = certificates["expiring"]
    pools = selectors.pool_capacity(user)
    if pools is not None:
        context["pools"] = [
            {
                "pool": pool,
                "url": reverse("virt:pool", args=[pool.pk]),
                "vms_url": f"{reverse('virt:vms')}?pool={pool.pk}",
                "memory": charts.meter(
                    f"chart-pool-{pool.pk}-memory",
                    f"Memory of {pool.name}",
                    pool.memory_total - pool.memory_free,
                    pool.memory_total,
                    url=reverse("virt:pool", args=[pool.pk]),
                ),
                "storage": charts.meter(
                    f"chart-pool-{pool.pk}-storage",
                    f"Storage of {pool.name}",
                    pool.storage_used,
                    pool.storage_size,
                    url=reverse("virt:pool", args=[pool.pk]) + "#storage",
                ),
            }
            for pool in pools
        ]
    return render(request, "dcportal/dashboard.html", context)


def job_list(request):
    """Jobs the user may see; POST cancels the selected ones after a confirmation page."""
    if request.method == "POST":
        return _jobs_cancel(request)
    table = JobTable(
        request,
        selectors.jobs_for(request.user).select_related("user", "tenant"),
        filter_form=JobFilterForm(request.GET),
    )
    if table.export and not table.errors:
        return table.export_response()
    return render(request, "dcportal/job_list.html", {"table": table})


def _jobs_cancel(request):
    rbac.require(request.user, "dcportal.cancel_job")
    back = bulk.back_url(request, reverse("jobs"))
    ids = bulk.selected_ids(request)
    chosen = list(
        selectors.jobs_for(request.user)
        .filter(pk__in=ids)
        .exclude(status__in=Job.FINISHED)
        .order_by("pk")
    )
    if not chosen:
        messages.error(request, "None of the selected jobs is still queued or running.")
        return redirect(back)
    if request.POST.get("confirm") != "1":
        return bulk.confirm_page(
            request,
            title=f"Cancel {len(chosen)} job{'s' if len(chosen) != 1 else ''}?",
            items=[f"#{job.pk} {job.kind} {job.object_repr} ({job.status})" for job in chosen],
            ids=[job.pk for job in chosen],
            action="cancel",
            label="Cancel jobs",
            back=back,
        )
    bulk.apply_all(
        request,
        chosen,
        lambda job: jobs.cancel(job, user=request.user),
        done=f"Cancellation of {len(chosen)} job(s) requested.",
        name=lambda job: f"job {job.pk}",
    )
    return redirect(back)


def job_detail(request, pk):
    job = get_object_or_404(selectors.jobs_for(request.user), pk=pk)
    can_cancel = job.status not in Job.FINISHED and (
        job.user_id == request.user.pk or request.user.has_perm("dcportal.cancel_job")
    )
    return render(
        request,
        "dcportal/job_detail.html",
        {
            "job": job,
            "result": None if job.result is None else json.dumps(job.result, indent=2),
            "log": job.log.all()[:1000],
            "can_cancel": can_cancel,
        },
    )


@require_POST
def job_cancel(request, pk):
    job = get_object_or_404(selectors.jobs_for(request.user), pk=pk)
    jobs.cancel(job, user=request.user)
    messages.info(request, f"Cancellation of job {job.pk} requested.")
    return redirect("job", pk=job.pk)


def audit_list(request):
    rbac.require(request.user, "dcportal.view_auditevent")
    table = AuditTable(
        request,
        selectors.audit_events_for(request.user).select_related("tenant"),
        filter_form=AuditFilterForm(request.GET),
    )
    if table.export and not table.errors:
        return table.export_response()
    return render(request, "dcportal/audit_list.html", {"table": table})


def token_list(request):
    """The user's own API tokens; a new key is shown on this page once. POST with
    action=revoke revokes the selected tokens after a confirmation page."""
    if request.method == "POST" and request.POST.get("action") == "revoke":
        return _tokens_revoke(request)
    form = TokenForm(request.POST or None)
    new_key = None
    if request.method == "POST" and form.is_valid():
        try:
            token, new_key = services.create_token(
                user=request.user,
                name=form.cleaned_data["name"],
                expires=form.cleaned_data["expires"],
                write=form.cleaned_data["write"],
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            form = TokenForm()
    table = TokenTable(
        request,
        ApiToken.objects.filter(user=request.user),
        filter_form=TokenFilterForm(request.GET),
    )
    if table.export and not table.errors:
        response = table.export_response()
    else:
        response = render(
            request,
            "dcportal/token_list.html",
            {"form": form, "table": table, "new_key": new_key},
        )
    response["Cache-Control"] = "no-store"
    return response


def _tokens_revoke(request):
    back = bulk.back_url(request, reverse("tokens"))
    chosen = list(
        ApiToken.objects.filter(
            user=request.user, pk__in=bulk.selected_ids(request), revoked__isnull=True
        )
    )
    if not chosen:
        messages.error(request, "None of the selected tokens can be revoked.")
        return redirect(back)
    if request.POST.get("confirm") != "1":
        return bulk.confirm_page(
            request,
            title=f"Revoke {len(chosen)} token{'s' if len(chosen) != 1 else ''}?",
            items=[f"{token.name} ({token.prefix})" for token in chosen],
            ids=[token.pk for token in chosen],
            action="revoke",
            label="Revoke tokens",
            back=back,
        )
    bulk.apply_all(
        request,
        chosen,
        lambda token: services.revoke_token(user=request.user, token=token),
        done=f"{len(chosen)} token(s) revoked.",
    )
    return redirect(back)


@require_POST
def token_revoke(request, pk):
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    services.revoke_token(user=request.user, token=token)
    messages.info(request, f"Token {token.name} revoked.")
    return redirect("tokens")


def app_index(request, app_label, title, description):
    """Landing page of an app section until its own pages take over."""
    return render(
        request,
        "dcportal/app_index.html",
        {"title": title, "description": description, "app_label": app_label},
    )


@require_POST
def table_columns(request, name):
    """Remember the columns the user chose for a table, then go back to it."""
    table = tables.registered(name)
    if table is None:
        raise Http404("No such table.")
    columns = [] if request.POST.get("reset") else request.POST.getlist("columns")
    try:
        preferences.set_table_columns(
            request.user, name, columns, allowed=[column.name for column in table.columns]
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect(bulk.back_url(request, reverse("dashboard")))

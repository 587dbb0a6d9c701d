"""Portal pages of the platform: dashboard, jobs, audit, API tokens."""

import json
from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from dcportal import jobs, preferences, rbac, selectors, services, tables
from dcportal.filtersets import AuditEventFilterSet, JobFilterSet
from dcportal.forms import AuditFilterForm, JobFilterForm, TokenForm
from dcportal.models import ApiToken, Job, Tenant

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


def _page(request, queryset, per_page=50):
    return Paginator(queryset, per_page).get_page(request.GET.get("page"))


def dashboard(request):
    user = request.user
    since = timezone.now() - timedelta(hours=24)
    my_jobs = selectors.jobs_for(user)
    context = {
        "running": my_jobs.filter(status=Job.Status.RUNNING).count(),
        "queued": my_jobs.filter(status=Job.Status.QUEUED).count(),
        "failed_24h": my_jobs.filter(status=Job.Status.FAILED, finished__gte=since).count(),
        "recent_jobs": my_jobs[:8],
        "recent_events": selectors.audit_events_for(user)[:10],
        "all_tenants": rbac.is_global(user),
        "tenant_count": Tenant.objects.count()
        if rbac.is_global(user)
        else len(rbac.tenant_ids(user)),
    }
    return render(request, "dcportal/dashboard.html", context)


def job_list(request):
    form = JobFilterForm(request.GET)
    params = {k: v for k, v in request.GET.items() if v and k != "page"}
    filterset = JobFilterSet(params, queryset=selectors.jobs_for(request.user))
    jobs_page = _page(request, filterset.qs if filterset.is_valid() else Job.objects.none())
    return render(
        request,
        "dcportal/job_list.html",
        {"form": form, "page": jobs_page, "errors": filterset.errors},
    )


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
    form = AuditFilterForm(request.GET)
    params = {k: v for k, v in request.GET.items() if v and k != "page"}
    filterset = AuditEventFilterSet(params, queryset=selectors.audit_events_for(request.user))
    events = filterset.qs if filterset.is_valid() else []
    return render(
        request,
        "dcportal/audit_list.html",
        {"form": form, "page": _page(request, events), "errors": filterset.errors},
    )


def token_list(request):
    """The user's own API tokens; a new key is shown on this page once."""
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
    tokens = ApiToken.objects.filter(user=request.user)
    response = render(
        request, "dcportal/token_list.html", {"form": form, "tokens": tokens, "new_key": new_key}
    )
    response["Cache-Control"] = "no-store"
    return response


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
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("dashboard")
    return redirect(target)

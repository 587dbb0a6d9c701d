"""Portal pages of auto-inventory: the agent script, registration conflicts, enrolment tokens."""

import functools
import json
import shlex
from pathlib import Path

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_POST, require_safe

from dcportal import bulk, ratelimit, rbac
from dcportal.models import Tenant
from inventory import registration
from inventory.models import Conflict, EnrolmentToken
from inventory.tables import ConflictTable, EnrolmentTokenTable

AGENT_SOURCE = Path(__file__).parent / "templates" / "inventory" / "agent.sh"
AGENT_URL_LINE = 'PORTAL_REGISTER_URL=""  # filled in by the portal when it serves this script'


@functools.cache
def _agent_source():
    text = AGENT_SOURCE.read_text()
    if text.count(AGENT_URL_LINE) != 1:
        raise RuntimeError(f"{AGENT_SOURCE} lost its line {AGENT_URL_LINE!r}")
    return text


@login_not_required  # public on purpose: a script with no secret in it (see PUBLIC_URL_NAMES)
@require_safe
@ratelimit.limited
def agent(request):
    """The inventory agent, with this portal's register URL baked in."""
    register_url = request.build_absolute_uri(reverse("api:inventory-register"))
    script = _agent_source().replace(
        AGENT_URL_LINE,
        f"PORTAL_REGISTER_URL={shlex.quote(register_url)}  # the portal that served this script",
    )
    response = HttpResponse(script, content_type="text/x-shellscript; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="agent.sh"'
    response["Cache-Control"] = "no-cache"
    return response


# Conflicts ------------------------------------------------------------------------------------


class ConflictFilterForm(forms.Form):
    # Open first: the page shows the open conflicts when no state is asked for.
    state = forms.ChoiceField(
        required=False, choices=[("open", "open"), ("resolved", "resolved"), ("", "any")]
    )
    kind = forms.ChoiceField(required=False, choices=[("", "any"), *Conflict.Kind.choices])
    server = forms.CharField(required=False, label="Server")


def _conflicts(user):
    return rbac.restrict(
        Conflict.objects.select_related("tenant", "server", "other_server", "resolved_by"),
        user,
        "view",
    )


def conflict_list(request):
    rbac.require(request.user, "inventory.view_conflict")
    table = ConflictTable(
        request, _conflicts(request.user), filter_form=ConflictFilterForm(request.GET)
    )
    if table.export and not table.errors:
        return table.export_response()
    return render(request, "inventory/conflict_list.html", {"table": table})


@require_POST
def conflict_bulk(request):
    """Dismiss the selected open conflicts: first a confirmation page, then (confirm=1) do it."""
    user = request.user
    rbac.require(user, "inventory.resolve_conflict")
    back = bulk.back_url(request, reverse("inventory:conflicts"))
    chosen = list(
        _conflicts(user)
        .filter(pk__in=bulk.selected_ids(request), resolved__isnull=True)
        .order_by("pk")
    )
    if not chosen:
        messages.error(request, "None of the selected conflicts is open.")
        return redirect(back)
    count = f"{len(chosen)} conflict{'s' if len(chosen) != 1 else ''}"
    if request.POST.get("confirm") != "1":
        return bulk.confirm_page(
            request,
            title=f"Dismiss {count}?",
            items=[f"#{c.pk} {c.kind}: {c.detail}" for c in chosen],
            ids=[c.pk for c in chosen],
            action="dismiss",
            label="Dismiss",
            back=back,
        )
    bulk.apply_all(
        request,
        chosen,
        lambda conflict: registration.resolve_conflict(
            user=user, conflict=conflict, resolution="dismiss"
        ),
        done=f"Dismissed {count}.",
    )
    return redirect(back)


def conflict_detail(request, pk):
    conflict = rbac.get_restricted(_conflicts(request.user), request.user, "view", pk=pk)
    can_resolve = request.user.has_perm("inventory.resolve_conflict")
    return render(
        request,
        "inventory/conflict_detail.html",
        {
            "conflict": conflict,
            "report": json.dumps(conflict.report, indent=2, sort_keys=True),
            "choices": registration.resolutions_for(conflict) if can_resolve else [],
            "descriptions": registration.RESOLUTIONS,
        },
    )


@require_POST
def conflict_resolve(request, pk):
    rbac.require(request.user, "inventory.resolve_conflict")
    conflict = rbac.get_restricted(_conflicts(request.user), request.user, "view", pk=pk)
    resolution = request.POST.get("resolution", "")
    try:
        registration.resolve_conflict(
            user=request.user,
            conflict=conflict,
            resolution=resolution,
            note=request.POST.get("note", "")[:200],
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.info(request, f"Conflict {conflict.pk} resolved: {resolution}.")
    target = request.POST.get("next", "")
    if target == "detail":
        return redirect("inventory:conflict", pk=conflict.pk)
    return redirect("inventory:conflicts")


# Enrolment tokens -----------------------------------------------------------------------------


class EnrolmentTokenForm(forms.Form):
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.none(), to_field_name="slug")
    name = forms.CharField(max_length=100)
    expires = forms.DateTimeField(
        required=False,
        help_text="Optional, e.g. 2027-01-31 00:00",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        tenants = Tenant.objects.all()
        if not rbac.is_global(user):
            tenants = tenants.filter(pk__in=rbac.tenant_ids(user))
        self.fields["tenant"].queryset = tenants
        if tenants.count() == 1:
            self.fields["tenant"].initial = tenants.first().slug


def enrolment_tokens(request):
    """The enrolment tokens of the user's tenants; a new key is shown on this page once."""
    user = request.user
    rbac.require(user, "inventory.view_enrolmenttoken")
    can_add = user.has_perm("inventory.add_enrolmenttoken")
    form = EnrolmentTokenForm(request.POST or None, user=user) if can_add else None
    created = None
    if request.method == "POST":
        if not can_add:
            raise PermissionDenied("You lack the permission inventory.add_enrolmenttoken.")
        if form.is_valid():
            try:
                token, key = registration.create_enrolment_token(
                    user=user,
                    tenant=form.cleaned_data["tenant"],
                    name=form.cleaned_data["name"],
                    expires=form.cleaned_data["expires"],
                )
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                agent_url = request.build_absolute_uri(reverse("inventory:agent"))
                base_url = request.build_absolute_uri("/").rstrip("/")
                created = {
                    "token": token,
                    "key": key,
                    "command": f"wget -qO- {agent_url} | sh -s -- --token {key}",
                    "cmdline": f"dcportal.url={base_url} dcportal.token={key}",
                }
                form = EnrolmentTokenForm(user=user)
    table = EnrolmentTokenTable(
        request, rbac.restrict(EnrolmentToken.objects.select_related("tenant"), user, "view")
    )
    if table.export and not table.errors:
        response = table.export_response()
        response["Cache-Control"] = "no-store"
        return response
    response = render(
        request,
        "inventory/enrolment_tokens.html",
        {
            "form": form,
            "table": table,
            "created": created,
            "can_revoke": user.has_perm("inventory.change_enrolmenttoken"),
            "agent_url": request.build_absolute_uri(reverse("inventory:agent")),
        },
    )
    response["Cache-Control"] = "no-store"
    return response


@require_POST
def enrolment_token_revoke(request, pk):
    rbac.require(request.user, "inventory.change_enrolmenttoken")
    token = rbac.get_restricted(
        EnrolmentToken.objects.select_related("tenant"), request.user, "view", pk=pk
    )
    registration.revoke_enrolment_token(user=request.user, token=token)
    messages.info(request, f"Enrolment token {token.name} revoked.")
    return redirect("inventory:enrolment-tokens")


@require_POST
def enrolment_token_bulk(request):
    """Revoke the selected enrolment tokens: a confirmation page, then (confirm=1) revoke."""
    user = request.user
    rbac.require(user, "inventory.change_enrolmenttoken")
    back = bulk.back_url(request, reverse("inventory:enrolment-tokens"))
    chosen = list(
        rbac.restrict(EnrolmentToken.objects.select_related("tenant"), user, "view")
        .filter(pk__in=bulk.selected_ids(request), revoked__isnull=True)
        .order_by("pk")
    )
    if not chosen:
        messages.error(request, "None of the selected tokens can be revoked.")
        return redirect(back)
    count = f"{len(chosen)} enrolment token{'s' if len(chosen) != 1 else ''}"
    if request.POST.get("confirm") != "1":
        return bulk.confirm_page(
            request,
            title=f"Revoke {count}?",
            items=[f"{t.tenant.slug}: {t.name} ({t.prefix})" for t in chosen],
            ids=[t.pk for t in chosen],
            action="revoke",
            label="Revoke",
            back=back,
        )
    bulk.apply_all(
        request,
        chosen,
        lambda token: registration.revoke_enrolment_token(user=user, token=token),
        done=f"Revoked {count}.",
    )
    return redirect(back)


urlpatterns = [
    path("agent.sh", agent, name="agent"),
    path("conflicts/", conflict_list, name="conflicts"),
    path("conflicts/bulk/", conflict_bulk, name="conflict-bulk"),
    path("conflicts/<int:pk>/", conflict_detail, name="conflict"),
    path("conflicts/<int:pk>/resolve/", conflict_resolve, name="conflict-resolve"),
    path("enrolment-tokens/", enrolment_tokens, name="enrolment-tokens"),
    path("enrolment-tokens/bulk/", enrolment_token_bulk, name="enrolment-token-bulk"),
    path(
        "enrolment-tokens/<int:pk>/revoke/",
        enrolment_token_revoke,
        name="enrolment-token-revoke",
    ),
]

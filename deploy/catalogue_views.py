"""Portal pages of the deploy catalogue: the section overview, and for operating systems,
templates, profiles and parameters a list (filters, pages), a detail page, create, edit and
delete. A template's page previews its rendering for a server.

Thin: every page scopes with dcportal.rbac, every write calls deploy.catalogue, and a service's
ValidationError comes back on the form field it concerns. Edit controls are shown only to those
who may use them (shared objects: admins only); the services check again regardless.
"""

import json
from dataclasses import dataclass

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from dcportal import rbac
from deploy import catalogue, forms
from deploy.filtersets import (
    OperatingSystemFilterSet,
    ParameterFilterSet,
    ProfileFilterSet,
    TemplateFilterSet,
)
from deploy.models import OperatingSystem, Parameter, Profile, ServerDeploy, Template

PER_PAGE = 50


def _tenant(obj):
    return obj.tenant.name if obj.tenant_id else forms.SHARED


def _json(value):
    return json.dumps(value, indent=2, sort_keys=True)


@dataclass(frozen=True)
class Section:
    """One kind of catalogue object and how its pages show and change it."""

    key: str  # URL name stem: deploy:<plural>, deploy:<key>, deploy:<key>-edit…
    plural: str  # URL name of the list
    model: type
    form: type
    filterset: type
    title: str
    noun: str
    columns: tuple  # (label, function of the object -> text)
    facts: tuple  # (label, function of the object -> text) on the detail page
    services: tuple  # (create, update, delete)
    related: tuple = ()

    def queryset(self):
        return self.model.objects.select_related("tenant", *self.related)

    def perm(self, action):
        return f"deploy.{action}_{self.model._meta.model_name}"


OS = Section(
    key="os",
    plural="oses",
    model=OperatingSystem,
    form=forms.OperatingSystemForm,
    filterset=OperatingSystemFilterSet,
    title="Operating systems",
    noun="operating system",
    columns=(
        ("Name", lambda o: o.name),
        ("Family", lambda o: o.get_family_display()),
        ("Version", lambda o: o.version),
        ("Architecture", lambda o: o.architecture),
        ("Tenant", _tenant),
    ),
    facts=(
        ("Family", lambda o: o.get_family_display()),
        ("Version", lambda o: o.version),
        ("Architecture", lambda o: o.architecture),
        ("Kernel", lambda o: o.kernel),
        ("Initrd", lambda o: o.initrd or "—"),
        ("Install URL", lambda o: o.install_url or "—"),
        ("Boot arguments", lambda o: o.boot_args or "—"),
        ("Tenant", _tenant),
        ("Description", lambda o: o.description or "—"),
    ),
    services=(catalogue.create_os, catalogue.update_os, catalogue.delete_os),
)
TEMPLATES = Section(
    key="template",
    plural="templates",
    model=Template,
    form=forms.TemplateForm,
    filterset=TemplateFilterSet,
    title="Templates",
    noun="template",
    columns=(
        ("Name", lambda t: t.name),
        ("Kind", lambda t: t.get_kind_display()),
        ("Shipped", lambda t: "yes" if t.builtin else ""),
        ("Tenant", _tenant),
        ("Updated", lambda t: t.updated.strftime("%Y-%m-%d %H:%M")),
    ),
    facts=(
        ("Kind", lambda t: t.get_kind_display()),
        ("Shipped with dcportal", lambda t: "yes" if t.builtin else "no"),
        ("Tenant", _tenant),
        ("Description", lambda t: t.description or "—"),
    ),
    services=(catalogue.create_template, catalogue.update_template, catalogue.delete_template),
)
PROFILES = Section(
    key="profile",
    plural="profiles",
    model=Profile,
    form=forms.ProfileForm,
    filterset=ProfileFilterSet,
    title="Profiles",
    noun="profile",
    columns=(
        ("Name", lambda p: p.name),
        ("Operating system", lambda p: p.os.name),
        ("Install template", lambda p: p.install_template.name),
        ("Tenant", _tenant),
    ),
    facts=(
        ("Operating system", lambda p: p.os.name),
        ("Install template", lambda p: p.install_template.name),
        ("iPXE template", lambda p: p.ipxe_template.name if p.ipxe_template else "default"),
        (
            "PXELinux template",
            lambda p: p.pxelinux_template.name if p.pxelinux_template else "default",
        ),
        ("GRUB template", lambda p: p.grub_template.name if p.grub_template else "default"),
        ("Partitioning", lambda p: p.partitioning or "—"),
        ("Parameters", lambda p: _json(p.parameters)),
        ("Tenant", _tenant),
        ("Description", lambda p: p.description or "—"),
    ),
    services=(catalogue.create_profile, catalogue.update_profile, catalogue.delete_profile),
    related=(
        "os",
        "install_template",
        "ipxe_template",
        "pxelinux_template",
        "grub_template",
    ),
)
PARAMETERS = Section(
    key="parameter",
    plural="parameters",
    model=Parameter,
    form=forms.ParameterForm,
    filterset=ParameterFilterSet,
    title="Parameters",
    noun="parameter",
    columns=(
        ("Name", lambda p: p.name),
        ("Value", lambda p: json.dumps(p.value)[:80]),
        ("Tenant", _tenant),
        ("Description", lambda p: p.description),
    ),
    facts=(
        ("Value", lambda p: _json(p.value)),
        ("Tenant", _tenant),
        ("Description", lambda p: p.description or "—"),
    ),
    services=(
        catalogue.create_parameter,
        catalogue.update_parameter,
        catalogue.delete_parameter,
    ),
)
SECTIONS = (PROFILES, OS, TEMPLATES, PARAMETERS)


def _may(user, section, action, obj=None):
    """Whether to show a control: the permission, and for a shared object, an admin."""
    if not user.has_perm(section.perm(action)):
        return False
    return obj is None or obj.tenant_id is not None or rbac.is_global(user)


def _facts(section, obj):
    return [(label, str(value(obj))) for label, value in section.facts]


def _object(request, section, pk):
    """An object the user may see, or 404 (also when it belongs to another tenant)."""
    return rbac.get_restricted(section.queryset(), request.user, pk=pk)


def _base(section, **extra):
    return {"section": section, "subnav": section.plural, **extra}


# Pages ------------------------------------------------------------------------------------------


def index(request):
    """The section overview: what the catalogue holds and how the builds go."""
    user = request.user
    counts = [
        {
            "title": section.title,
            "url": reverse(f"deploy:{section.plural}"),
            "count": rbac.restrict(section.model.objects.all(), user).count(),
        }
        for section in SECTIONS
        if user.has_perm(section.perm("view"))
    ]
    states = {}
    if user.has_perm("deploy.view_serverdeploy"):
        labels = dict(ServerDeploy.State.choices)
        rows = (
            rbac.restrict(ServerDeploy.objects.all(), user)
            .order_by("state")
            .values_list("state")
            .annotate(count=Count("pk"))
        )
        states = {labels.get(state, state): count for state, count in rows}
    return render(
        request, "deploy/catalogue/index.html", {"counts": counts, "states": states, "subnav": ""}
    )


def object_list(request, section):
    rbac.require(request.user, section.perm("view"))
    params = {k: v for k, v in request.GET.items() if v and k != "page"}
    scoped = rbac.restrict(section.queryset(), request.user)
    filterset = section.filterset(params, queryset=scoped)
    objects = filterset.qs.order_by("name", "pk") if filterset.is_valid() else scoped.none()
    page = Paginator(objects, PER_PAGE).get_page(request.GET.get("page"))
    rows = [
        {
            "url": reverse(f"deploy:{section.key}", args=[obj.pk]),
            "cells": [value(obj) for _, value in section.columns],
        }
        for obj in page
    ]
    return render(
        request,
        "deploy/catalogue/list.html",
        _base(
            section,
            page=page,
            rows=rows,
            headers=[label for label, _ in section.columns],
            form=filterset.form,
            errors=filterset.errors,
            can_add=_may(request.user, section, "add"),
        ),
    )


def object_detail(request, section, pk):
    obj = _object(request, section, pk)
    user = request.user
    context = _base(
        section,
        obj=obj,
        facts=[(label, text, "\n" in text) for label, text in _facts(section, obj)],
        can_change=_may(user, section, "change", obj),
        can_delete=_may(user, section, "delete", obj),
    )
    if section is TEMPLATES:
        context |= _preview_context(request, obj)
    return render(request, "deploy/catalogue/detail.html", context)


def _preview_context(request, template):
    form = forms.PreviewForm(request.GET if "server" in request.GET else None)
    result, server = None, None
    if form.is_bound and form.is_valid():
        try:
            server = catalogue.find_server(request.user, form.cleaned_data["server"])
            result = catalogue.preview(
                request.user, template, server, base_url=catalogue.base_url_for(request)
            )
        except Http404:
            form.add_error("server", "No server of that name that you may see.")
        except ValidationError as exc:
            forms.add_service_errors(form, exc)
    return {"preview_form": form, "preview": result, "preview_server": server}


def object_edit(request, section, pk=None):
    """Create (no pk) or change an object."""
    user = request.user
    obj = None if pk is None else _object(request, section, pk)
    rbac.require(user, section.perm("add" if obj is None else "change"))
    if obj is not None and not _may(user, section, "change", obj):
        raise PermissionDenied("Only an admin may change what every tenant shares.")
    initial = {} if obj is None else section.form.initial_for(obj)
    form = section.form(request.POST or None, user=user, initial=initial)
    if request.method == "POST" and form.is_valid():
        create, update, _ = section.services
        try:
            if obj is None:
                obj = create(user=user, **form.cleaned_data)
            else:
                changed = {name: form.cleaned_data[name] for name in form.changed_data}
                update(obj, user=user, **changed)
        except ValidationError as exc:
            forms.add_service_errors(form, exc)
        else:
            messages.success(request, f"The {section.noun} {obj} is saved.")
            return redirect(f"deploy:{section.key}", pk=obj.pk)
    return render(
        request,
        "deploy/catalogue/form.html",
        _base(
            section,
            form=form,
            title=f"New {section.noun}" if obj is None else f"Edit {section.noun} {obj}",
            submit="Create" if obj is None else "Save",
            cancel_url=reverse(f"deploy:{section.plural}")
            if obj is None
            else reverse(f"deploy:{section.key}", args=[obj.pk]),
        ),
    )


@require_POST
def object_delete(request, section, pk):
    obj = _object(request, section, pk)
    _, _, delete = section.services
    try:
        delete(obj, user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(f"deploy:{section.key}", pk=obj.pk)
    messages.success(request, f"The {section.noun} {obj} is deleted.")
    return redirect(f"deploy:{section.plural}")


def _routes(section):
    return [
        path(f"{section.plural}/", object_list, {"section": section}, name=section.plural),
        path(
            f"{section.plural}/new/",
            object_edit,
            {"section": section},
            name=f"{section.key}-create",
        ),
        path(
            f"{section.plural}/<int:pk>/",
            object_detail,
            {"section": section},
            name=section.key,
        ),
        path(
            f"{section.plural}/<int:pk>/edit/",
            object_edit,
            {"section": section},
            name=f"{section.key}-edit",
        ),
        path(
            f"{section.plural}/<int:pk>/delete/",
            object_delete,
            {"section": section},
            name=f"{section.key}-delete",
        ),
    ]


urlpatterns = [route for section in SECTIONS for route in _routes(section)]

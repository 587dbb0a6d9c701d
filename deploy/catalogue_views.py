"""Portal pages of the deploy catalogue: the section overview, and for operating systems,
templates, profiles and parameters a list (deploy.tables), a detail page, create, edit (in the
portal's dialog, or for a template in its editor) and delete. A template's page previews its
rendering for a server; its editor previews the unsaved text as it is typed.

Thin: every page scopes with dcportal.rbac, every write calls deploy.catalogue, and a service's
ValidationError comes back on the form field it concerns. Edit controls are shown only to those
who may use them (shared objects: admins only); the services check again regardless.
"""

import json
from dataclasses import dataclass

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from dcportal import dialogs, rbac
from dcportal.templating import TemplateError
from deploy import catalogue, forms, rendering, tables
from deploy.models import OperatingSystem, Parameter, Profile, ServerDeploy, Template
from inventory.models import Server


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
    table: type
    title: str
    noun: str
    facts: tuple  # (label, function of the object -> text) on the detail page
    services: tuple  # (create, update, delete)
    related: tuple = ()
    in_dialog: bool = True  # its form fits the portal's dialog (a template needs the editor)

    def queryset(self):
        return self.model.objects.select_related("tenant", *self.related)

    def perm(self, action):
        return f"deploy.{action}_{self.model._meta.model_name}"


OS = Section(
    key="os",
    plural="oses",
    model=OperatingSystem,
    form=forms.OperatingSystemForm,
    table=tables.OperatingSystemTable,
    title="Operating systems",
    noun="operating system",
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
    table=tables.TemplateTable,
    title="Templates",
    noun="template",
    facts=(
        ("Kind", lambda t: t.get_kind_display()),
        ("Shipped with dcportal", lambda t: "yes" if t.builtin else "no"),
        ("Tenant", _tenant),
        ("Description", lambda t: t.description or "—"),
    ),
    services=(catalogue.create_template, catalogue.update_template, catalogue.delete_template),
    in_dialog=False,
)
PROFILES = Section(
    key="profile",
    plural="profiles",
    model=Profile,
    form=forms.ProfileForm,
    table=tables.ProfileTable,
    title="Profiles",
    noun="profile",
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
    table=tables.ParameterTable,
    title="Parameters",
    noun="parameter",
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
    user = request.user
    rbac.require(user, section.perm("view"))
    scoped = rbac.restrict(section.queryset(), user)
    filter_form = forms.catalogue_filter_form(section.table.filterset_class, request.GET, user=user)
    table = section.table(request, scoped, filter_form=filter_form)
    if table.export and not table.errors:
        return table.export_response()
    can_change = user.has_perm(section.perm("change"))
    if not can_change:
        table.row_template = ""
    return render(
        request,
        "deploy/catalogue/list.html",
        _base(
            section,
            table=table,
            can_add=_may(user, section, "add"),
            can_change=can_change,
            can_change_shared=can_change and rbac.is_global(user),
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
            form.add_error("server", NO_SERVER)
        except ValidationError as exc:
            forms.add_service_errors(form, exc)
    return {"preview_form": form, "preview": result, "preview_server": server}


def object_edit(request, section, pk=None):
    """Create (no pk) or change an object. The form works on its page and in the dialog."""
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
            return dialogs.saved(
                request,
                location=reverse(f"deploy:{section.key}", args=[obj.pk]),
                message=f"The {section.noun} {obj} is saved.",
            )
    context = _base(
        section,
        form=form,
        obj=obj,
        title=f"New {section.noun}" if obj is None else f"Edit {section.noun} {obj}",
        submit="Create" if obj is None else "Save",
        cancel_url=reverse(f"deploy:{section.plural}")
        if obj is None
        else reverse(f"deploy:{section.key}", args=[obj.pk]),
    )
    if section is TEMPLATES:
        return render(
            request, "deploy/catalogue/template_form.html", context | _editor(request, obj)
        )
    return render(request, "deploy/catalogue/form.html", context)


# The template editor's live preview ---------------------------------------------------------------

NO_SERVER = "No server of that name that you may see."
SERVER_SUGGESTIONS = 20


def _editor(request, template):
    """What the template editor adds to its form: the preview's address and server picker."""
    url = (
        reverse("deploy:template-preview", args=[template.pk])
        if template is not None
        else reverse("deploy:template-preview-new")
    )
    return {
        "preview_url": url,
        "preview_server": request.GET.get("server", ""),
        "server_suggestions": _servers_named(request.user, ""),
    }


def _servers_named(user, text):
    """Host names of servers the user may see that start with `text` (a few, for a picker)."""
    servers = rbac.restrict(Server.objects.all(), user)
    text = text.strip().lower()
    if text:
        servers = servers.filter(hostname__startswith=text)
    return list(
        servers.order_by("hostname").values_list("hostname", flat=True)[:SERVER_SUGGESTIONS]
    )


def template_servers(request):
    """<option>s of host names for the editor's server picker (?server= what is typed)."""
    rbac.require(request.user, TEMPLATES.perm("view"))
    names = _servers_named(request.user, request.GET.get("server", ""))
    return render(request, "deploy/catalogue/_server_options.html", {"names": names})


def _unsaved_template(request):
    """The template being written on the create page, not stored: kind, content and the
    tenant picked (one of the user's, or shared)."""
    field = forms.TenantChoiceField(user=request.user)
    try:
        tenant = field.clean(request.POST.get("tenant", ""))
    except ValidationError:
        tenant = None
    kind = request.POST.get("kind", "")
    if kind not in Template.Kind.values:
        kind = Template.Kind.KICKSTART
    return Template(kind=kind, tenant=tenant, content=request.POST.get("content", ""))


def _preview_unsaved(user, template, server, *, base_url):
    # deploy.catalogue.preview finds a stored template by its id; a new one has none yet, so
    # the same checks are made here on the unsaved object.
    server = rbac.get_restricted(Server.objects.all(), user, pk=server.pk)
    if template.tenant_id not in (None, server.tenant_id):
        raise ValidationError({"server": f"The template's tenant is not the one of {server}."})
    try:
        text = rendering.render_template(template, server, base_url=base_url)
    except TemplateError as error:
        return catalogue.Preview(
            None, errors=[{"message": error.message, "line": error.lineno, "snippet": error.name}]
        )
    kickstart = template.kind == Template.Kind.KICKSTART
    return catalogue.Preview(
        text, validation=catalogue.validate_kickstart(text) if kickstart else []
    )


@require_POST
def template_preview(request, pk=None):
    """Render the editor's unsaved content for a server the user may see (POST: content,
    server, and on the create page kind and tenant). The editor asks with fragment=1 and gets
    the preview panel's content; without scripts the page's Preview button opens it as a page.
    200 with the rendering or the template error (its line in data-error-line), 404 for a
    server the user may not see, 400 for a missing server or one of another tenant."""
    user = request.user
    rbac.require(user, TEMPLATES.perm("view"))
    template = None if pk is None else _object(request, TEMPLATES, pk)
    hostname = request.POST.get("server", "").strip()
    context = {"template": template, "hostname": hostname, "preview": None, "problem": ""}
    status = 200
    if not hostname:
        context["problem"], status = "Choose a server to render for.", 400
    else:
        try:
            server = catalogue.find_server(user, hostname)
        except Http404:
            context["problem"], status = NO_SERVER, 404
        else:
            context["server"] = server
            base_url = catalogue.base_url_for(request)
            content = request.POST.get("content", "")
            try:
                if template is None:
                    context["preview"] = _preview_unsaved(
                        user, _unsaved_template(request), server, base_url=base_url
                    )
                else:
                    context["preview"] = catalogue.preview(
                        user, template, server, base_url=base_url, content=content
                    )
            except ValidationError as exc:
                context["problem"], status = " ".join(exc.messages), 400
    if context["preview"] is not None and not context["preview"].ok:
        context["error_line"] = next(
            (e["line"] for e in context["preview"].errors if e["line"] and not e["snippet"]), ""
        )
        context["error_text"] = catalogue.describe(context["preview"].errors[0])
    page = "_preview.html" if request.POST.get("fragment") else "preview_page.html"
    return render(request, f"deploy/catalogue/{page}", context, status=status)


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


urlpatterns = [
    path("templates/preview/", template_preview, name="template-preview-new"),
    path("templates/servers/", template_servers, name="template-servers"),
    path("templates/<int:pk>/preview/", template_preview, name="template-preview"),
    *(route for section in SECTIONS for route in _routes(section)),
]

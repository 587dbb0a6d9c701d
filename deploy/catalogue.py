"""Writes to the deploy catalogue (operating systems, templates, profiles, parameters) and the
preview of a template for a server.

Every write goes through dcportal.services (permission, tenant, full_clean, audit) inside a
transaction. A catalogue object without a tenant is shared by every tenant: only a global admin
creates, changes or deletes those (dcportal.rbac.check_tenant). A template's content is compiled
before it is stored, so a syntax error is a field error with its line number.
"""

import warnings
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import router, transaction
from django.db.models import ProtectedError
from django.db.models.deletion import Collector

from dcportal import rbac, services, templating
from dcportal.templating import TemplateError
from deploy import rendering
from deploy.defaults import BUILTINS
from deploy.models import OperatingSystem, Parameter, Profile, Template
from inventory.models import Server

CLI_BASE_URL = "http://127.0.0.1:8000"


def template_error_message(error):
    """ "Line 3: unexpected '}'" (and the snippet it happened in, if any)."""
    return describe({"message": error.message, "line": error.lineno, "snippet": error.name})


def describe(problem):
    """One line for a preview error {message, line, snippet}."""
    where = f"snippet {problem['snippet']!r}, " if problem.get("snippet") else ""
    line = f"line {problem['line']}: " if problem.get("line") else ""
    text = f"{where}{line}{problem['message']}"
    return text[:1].upper() + text[1:]


def check_content(content):
    """ValidationError on `content` when the template does not compile."""
    try:
        templating.check(content or "")
    except TemplateError as error:
        raise ValidationError({"content": template_error_message(error)}, code="syntax") from None


def _delete(obj, *, user):
    """Delete through the audited service, refusing first, by name, what is still in use."""
    model = type(obj)
    rbac.require(user, rbac.permission_code(model, "delete"))
    rbac.check_tenant(user, obj.tenant, model)
    try:
        Collector(using=router.db_for_write(model)).collect([obj])
    except ProtectedError as exc:
        users = sorted({str(o) for o in exc.protected_objects})
        shown = ", ".join(users[:10]) + (f" and {len(users) - 10} more" if len(users) > 10 else "")
        raise ValidationError(f"{obj} is still used by: {shown}.", code="protected") from None
    services.delete_object(obj, user=user)


# Operating systems ------------------------------------------------------------------------------


def create_os(*, user, **fields):
    return services.create_object(OperatingSystem, user=user, **fields)


def update_os(os, *, user, **fields):
    return services.update_object(os, user=user, **fields)


def delete_os(os, *, user):
    _delete(os, user=user)


# Templates --------------------------------------------------------------------------------------


def create_template(*, user, **fields):
    fields.pop("builtin", None)  # only migrate ships templates
    check_content(fields.get("content"))
    return services.create_object(Template, user=user, **fields)


@transaction.atomic
def update_template(template, *, user, **fields):
    fields.pop("builtin", None)
    if "content" in fields:
        check_content(fields["content"])
    if template.builtin and template.name in BUILTINS:
        # The boot endpoints find the shipped defaults by name, and migrate puts a missing one
        # back: a renamed or re-kinded builtin would silently be replaced.
        for name in ("name", "kind"):
            if name in fields and fields[name] != getattr(template, name):
                raise ValidationError({name: f"A shipped template keeps its {name}."})
    return services.update_object(template, user=user, **fields)


def delete_template(template, *, user):
    _delete(template, user=user)


# Profiles and parameters ------------------------------------------------------------------------


def create_profile(*, user, **fields):
    return services.create_object(Profile, user=user, **fields)


def update_profile(profile, *, user, **fields):
    return services.update_object(profile, user=user, **fields)


def delete_profile(profile, *, user):
    _delete(profile, user=user)


def create_parameter(*, user, **fields):
    return services.create_object(Parameter, user=user, **fields)


def update_parameter(parameter, *, user, **fields):
    return services.update_object(parameter, user=user, **fields)


def delete_parameter(parameter, *, user):
    _delete(parameter, user=user)


# Preview ----------------------------------------------------------------------------------------


@dataclass
class Preview:
    """A rendering for one server: `content` (None when it failed), `errors` [{message, line,
    snippet}] and, for a kickstart, what pykickstart says of the result: `validation`
    [{level, message, line}]."""

    content: str | None
    errors: list = field(default_factory=list)
    validation: list = field(default_factory=list)

    @property
    def ok(self):
        return self.content is not None


def base_url_for(request=None):
    """The portal URL as nodes see it: DCPORTAL_BOOT_URL, else the request's, else loopback."""
    if settings.BOOT_URL:
        return settings.BOOT_URL
    if request is not None:
        return request.build_absolute_uri("/").rstrip("/")
    return CLI_BASE_URL


def preview(user, template, server, *, base_url=None, content=None):
    """Render `template` (or unsaved `content` in its place) for `server` with the placeholder
    token. Both must be visible to the user (Http404 otherwise) and the template usable by the
    server's tenant (ValidationError otherwise)."""
    template = rbac.get_restricted(Template.objects.all(), user, pk=template.pk)
    server = rbac.get_restricted(Server.objects.all(), user, pk=server.pk)
    if template.tenant_id not in (None, server.tenant_id):
        raise ValidationError({"server": f"{template} belongs to another tenant than {server}."})
    if content is not None:
        template.content = content
    try:
        text = rendering.render_template(template, server, base_url=base_url or base_url_for())
    except TemplateError as error:
        return Preview(
            None,
            errors=[{"message": error.message, "line": error.lineno, "snippet": error.name}],
        )
    validation = validate_kickstart(text) if template.kind == Template.Kind.KICKSTART else []
    return Preview(text, validation=validation)


def find_template(user, name):
    return rbac.get_restricted(Template.objects.all(), user, name=name)


def find_server(user, hostname):
    return rbac.get_restricted(
        Server.objects.all(), user, hostname=(hostname or "").strip().lower().rstrip(".")
    )


# Kickstart validation ---------------------------------------------------------------------------


def validate_kickstart(text, version="RHEL9"):
    """What pykickstart's parser for `version` finds in a kickstart: [{level, message, line}]
    (level "error" or "warning"; deprecations are warnings). Empty when it is clean."""
    from pykickstart.errors import KickstartError, KickstartParseWarning
    from pykickstart.parser import KickstartParser
    from pykickstart.version import makeVersion

    found = []

    class CollectingParser(KickstartParser):
        # The stock parser prints non-fatal errors to stderr; keep them instead, and go on.
        def _tryFunc(self, fn):
            try:
                fn()
            except KickstartError as error:
                self.errorsCount += 1
                found.append(_kickstart_problem("error", error))

    parser = CollectingParser(makeVersion(version), followIncludes=False, errorsAreFatal=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", KickstartParseWarning)
        try:
            parser.readKickstartFromString(text)
        except KickstartError as error:
            found.append(_kickstart_problem("error", error))
    for warning in caught:
        if issubclass(warning.category, KickstartParseWarning):
            found.append({"level": "warning", "message": str(warning.message), "line": None})
    return found


def _kickstart_problem(level, error):
    return {
        "level": level,
        "message": str(getattr(error, "message", None) or error),
        "line": getattr(error, "lineno", None),
    }

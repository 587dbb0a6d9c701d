"""The deploy app's lists as portal tables (dcportal.tables): the catalogue (operating
systems, templates, profiles, parameters) and the builds."""

import json

from django.urls import reverse

from dcportal.tables import BulkAction, Column, Table
from deploy import forms, services
from deploy.filtersets import (
    BuildFilterSet,
    OperatingSystemFilterSet,
    ParameterFilterSet,
    ProfileFilterSet,
    TemplateFilterSet,
)

VALUE_SHOWN = 80


def _tenant(obj):
    return obj.tenant.name if obj.tenant_id else forms.SHARED


def _link(name):
    return lambda obj: reverse(f"deploy:{name}", args=[obj.pk])


def _value(parameter):
    text = json.dumps(parameter.value)
    return text if len(text) <= VALUE_SHOWN else text[: VALUE_SHOWN - 1] + "…"


class CatalogueTable(Table):
    search_fields = ("name", "description")
    default_sort = "name"
    row_template = "deploy/catalogue/_row_actions.html"


class OperatingSystemTable(CatalogueTable):
    name = "deploy-oses"
    filterset_class = OperatingSystemFilterSet
    empty_text = "No operating systems match."
    columns = (
        Column("name", "Name", sort="name", link=_link("os")),
        Column("family", "Family", value=lambda o: o.get_family_display(), sort="family"),
        Column("version", "Version", sort="version"),
        Column("architecture", "Architecture", sort="architecture"),
        Column("kernel", "Kernel", default=False, cell="mono"),
        Column("tenant", "Tenant", value=_tenant),
        Column("description", "Description", default=False),
    )


class TemplateTable(CatalogueTable):
    name = "deploy-templates"
    filterset_class = TemplateFilterSet
    empty_text = "No templates match."
    columns = (
        Column("name", "Name", sort="name", link=_link("template")),
        Column("kind", "Kind", value=lambda t: t.get_kind_display(), sort="kind"),
        Column("builtin", "Shipped", sort="builtin", cell="bool"),
        Column("tenant", "Tenant", value=_tenant),
        Column("updated", "Updated", sort="updated"),
        Column("description", "Description", default=False),
    )


class ProfileTable(CatalogueTable):
    name = "deploy-profiles"
    filterset_class = ProfileFilterSet
    empty_text = "No profiles match."
    columns = (
        Column("name", "Name", sort="name", link=_link("profile")),
        Column("os", "Operating system", value="os.name", sort="os__name"),
        Column(
            "install_template",
            "Install template",
            value="install_template.name",
            sort="install_template__name",
        ),
        Column("partitioning", "Partitioning", default=False, cell="mono"),
        Column("tenant", "Tenant", value=_tenant),
        Column("description", "Description", default=False),
    )


class ParameterTable(CatalogueTable):
    name = "deploy-parameters"
    filterset_class = ParameterFilterSet
    empty_text = "No parameters match."
    columns = (
        Column("name", "Name", sort="name", link=_link("parameter")),
        Column("value", "Value", value=_value, cell="mono"),
        Column("tenant", "Tenant", value=_tenant),
        Column("description", "Description"),
    )


def _deploy(attr):
    return lambda server: getattr(server.deploy, attr)


def _message(server):
    row = server.deploy
    return row.error[:160] if row.state == row.State.FAILED and row.error else row.message


def _job(server):
    return f"#{server.deploy.job_id} {server.deploy.job.status}" if server.deploy.job_id else ""


class BuildTable(Table):
    """Servers with a deployment row: what they boot next and how their build goes. The rows
    are servers, so the selection posts server ids, as the inventory's list does."""

    name = "deploy-builds"
    filterset_class = BuildFilterSet
    search_fields = ("hostname", "deploy__message")
    default_sort = "hostname"
    empty_text = "No server matches."
    columns = (
        Column(
            "hostname",
            "Server",
            sort="hostname",
            link=lambda s: reverse("deploy:server-deploy", args=[s.pk]),
        ),
        Column("tenant", "Tenant", value="tenant.name", sort="tenant__name"),
        Column("profile", "Profile", value=lambda s: s.deploy.profile),
        Column("next_boot", "Next boot", value=_deploy("next_boot"), sort="deploy__next_boot"),
        Column("state", "State", value=_deploy("state"), sort="deploy__state", cell="badge"),
        Column("stage", "Stage", value=_deploy("stage"), sort="deploy__stage", cell="badge"),
        Column("progress", "Progress", value=_deploy("progress"), cell="progress"),
        Column("last_report", "Last report", value=_deploy("last_report")),
        Column("message", "Message", value=_message),
        Column("job", "Job", value=_job, default=False),
        Column("updated", "Updated", value=_deploy("updated"), sort="deploy__updated"),
    )

    @property
    def bulk_actions(self):
        # The same confirmation page as the inventory's "Deploy" action, with local boot
        # chosen: it ends a build (or a rescue) at the next boot.
        return (
            BulkAction(
                "localboot",
                "Boot the local disk (cancel build)",
                reverse("deploy:server-bulk"),
                permission=services.NODESET_PERMISSION,
            ),
        )

    @property
    def building(self):
        """Whether a row on this page is building (the page then refreshes itself)."""
        return any(row.obj.deploy.state == "building" for row in self.rows)

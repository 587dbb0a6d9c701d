"""django-filter classes for the deploy catalogue and the builds list: the API lists and the
portal pages filter through the same classes."""

import django_filters as filters

from deploy.models import OperatingSystem, Parameter, Profile, ServerDeploy, Template
from inventory.models import Server


class CatalogueFilterSet(filters.FilterSet):
    """What every catalogue list filters on: a name part, the tenant, shared or not."""

    name = filters.CharFilter(lookup_expr="icontains")
    tenant = filters.CharFilter(field_name="tenant__slug", label="Tenant (slug)")
    shared = filters.BooleanFilter(
        field_name="tenant", lookup_expr="isnull", label="Shared by every tenant"
    )


class OperatingSystemFilterSet(CatalogueFilterSet):
    class Meta:
        model = OperatingSystem
        fields = ["name", "family", "architecture", "version", "tenant", "shared"]


class TemplateFilterSet(CatalogueFilterSet):
    kind = filters.MultipleChoiceFilter(choices=Template.Kind.choices)

    class Meta:
        model = Template
        fields = ["name", "kind", "builtin", "tenant", "shared"]


class ProfileFilterSet(CatalogueFilterSet):
    os = filters.CharFilter(field_name="os__name", label="Operating system (name)")
    family = filters.ChoiceFilter(
        field_name="os__family", choices=OperatingSystem.Family.choices, label="OS family"
    )
    template = filters.CharFilter(
        field_name="install_template__name", label="Install template (name)"
    )

    class Meta:
        model = Profile
        fields = ["name", "os", "family", "template", "tenant", "shared"]


class ParameterFilterSet(CatalogueFilterSet):
    class Meta:
        model = Parameter
        fields = ["name", "tenant", "shared"]


class BuildFilterSet(filters.FilterSet):
    """The builds list: servers that have a deployment row, by its state, stage, next boot and
    profile. `state=all` lists every state; the page itself shows building or failed when no
    state is asked for."""

    state = filters.ChoiceFilter(
        choices=(("all", "All"), *ServerDeploy.State.choices), method="filter_state"
    )
    stage = filters.ChoiceFilter(
        field_name="deploy__stage",
        choices=[(value, label) for value, label in ServerDeploy.Stage.choices if value],
    )
    next_boot = filters.ChoiceFilter(
        field_name="deploy__next_boot", choices=ServerDeploy.NextBoot.choices, label="Next boot"
    )
    profile = filters.CharFilter(field_name="deploy__profile__name", label="Profile (name)")

    class Meta:
        model = Server
        fields = ["state", "stage", "next_boot", "profile"]

    def filter_state(self, queryset, name, value):
        return queryset if value == "all" else queryset.filter(deploy__state=value)

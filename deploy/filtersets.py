"""django-filter classes for the deploy catalogue: the API lists and the portal pages filter
through the same classes."""

import django_filters as filters

from deploy.models import OperatingSystem, Parameter, Profile, Template


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

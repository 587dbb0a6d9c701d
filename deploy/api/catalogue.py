"""The deploy catalogue in the API.

    /api/deploy/os/                   operating systems: list (filters: name family
                                      architecture version tenant shared), create
    /api/deploy/templates/            templates (filters: name kind builtin tenant shared)
    /api/deploy/templates/{id}/preview/
                                      GET ?server=<id> or POST {"server": id, "content": "…"}:
                                      {content, errors: [{message, line, snippet}], validation}
    /api/deploy/profiles/             profiles (filters: name os family template tenant shared)
    /api/deploy/parameters/           parameters (filters: name tenant shared)

Related objects are named: tenant by slug (null = shared by every tenant, admins only), the
profile's OS and templates by name. Thin: deploy.catalogue validates and writes.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from dcportal.api.errors import error_body
from dcportal.api.serializers import JSONField, PortalModelSerializer, ScopedRelatedField
from dcportal.api.views import ScopedViewSet
from dcportal.models import Tenant
from deploy import catalogue
from deploy.filtersets import (
    OperatingSystemFilterSet,
    ParameterFilterSet,
    ProfileFilterSet,
    TemplateFilterSet,
)
from deploy.models import OperatingSystem, Parameter, Profile, Template, validate_name
from inventory.api.servers import ScopedServerField

urlpatterns = []


def _tenant_field():
    return ScopedRelatedField(
        slug_field="slug",
        queryset=Tenant.objects.all(),
        allow_null=True,
        required=False,
        help_text="Tenant slug; null (the default) shares the object with every tenant, "
        "which only an admin may do.",
    )


def _template_field(kinds, **kwargs):
    return ScopedRelatedField(
        slug_field="name", queryset=Template.objects.filter(kind__in=kinds), **kwargs
    )


# Serializers ------------------------------------------------------------------------------------


class OperatingSystemSerializer(PortalModelSerializer):
    tenant = _tenant_field()

    class Meta:
        model = OperatingSystem
        fields = [
            "id",
            "name",
            "family",
            "version",
            "architecture",
            "kernel",
            "initrd",
            "install_url",
            "boot_args",
            "description",
            "tenant",
        ]
        # Uniqueness is the model's (full_clean in the service); the name's form is checked here.
        extra_kwargs = {"name": {"validators": [validate_name]}}


class TemplateSerializer(PortalModelSerializer):
    tenant = _tenant_field()

    class Meta:
        model = Template
        fields = ["id", "name", "kind", "content", "description", "builtin", "tenant", "updated"]
        read_only_fields = ["builtin", "updated"]
        extra_kwargs = {"name": {"validators": [validate_name]}}


class ProfileSerializer(PortalModelSerializer):
    tenant = _tenant_field()
    os = ScopedRelatedField(slug_field="name", queryset=OperatingSystem.objects.all())
    install_template = _template_field(Template.INSTALL_KINDS)
    ipxe_template = _template_field((Template.Kind.IPXE,), allow_null=True, required=False)
    pxelinux_template = _template_field((Template.Kind.PXELINUX,), allow_null=True, required=False)
    grub_template = _template_field((Template.Kind.GRUB,), allow_null=True, required=False)

    class Meta:
        model = Profile
        fields = [
            "id",
            "name",
            "os",
            "install_template",
            "ipxe_template",
            "pxelinux_template",
            "grub_template",
            "partitioning",
            "parameters",
            "description",
            "tenant",
        ]
        extra_kwargs = {"name": {"validators": [validate_name]}}

    def validate_parameters(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("Parameters must be a JSON object.")
        return value


class ParameterSerializer(PortalModelSerializer):
    tenant = _tenant_field()
    value = JSONField(help_text="Any JSON value.")

    class Meta:
        model = Parameter
        fields = ["id", "name", "value", "description", "tenant"]
        validators = []  # (tenant, name) uniqueness is the model's, per tenant or global


@extend_schema_field(OpenApiTypes.INT)
class PreviewServerField(ScopedServerField):
    """A server id among those the user may see."""


class PreviewRequestSerializer(serializers.Serializer):
    server = PreviewServerField(help_text="Id of the server to render for.")
    content = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text="Render this text instead of the stored content (to try an edit).",
    )


class TemplateProblemSerializer(serializers.Serializer):
    message = serializers.CharField()
    line = serializers.IntegerField(allow_null=True)
    snippet = serializers.CharField(allow_null=True, required=False)


class ValidationProblemSerializer(serializers.Serializer):
    level = serializers.ChoiceField(choices=["error", "warning"])
    message = serializers.CharField()
    line = serializers.IntegerField(allow_null=True)


class PreviewSerializer(serializers.Serializer):
    content = serializers.CharField(allow_null=True)
    errors = TemplateProblemSerializer(many=True)
    validation = ValidationProblemSerializer(many=True)


# Views ------------------------------------------------------------------------------------------


class CatalogueViewSet(viewsets.ModelViewSet, ScopedViewSet):
    """CRUD through the catalogue services named by `create`, `update` and `delete`."""

    services = None  # (create, update, delete)

    def perform_create(self, serializer):
        create, _, _ = self.services
        serializer.instance = create(user=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer):
        _, update, _ = self.services
        serializer.instance = update(
            serializer.instance, user=self.request.user, **serializer.validated_data
        )

    def perform_destroy(self, instance):
        _, _, delete = self.services
        delete(instance, user=self.request.user)


class OperatingSystemViewSet(CatalogueViewSet):
    base_queryset = OperatingSystem.objects.select_related("tenant")
    serializer_class = OperatingSystemSerializer
    filterset_class = OperatingSystemFilterSet
    ordering_fields = ["name", "id"]
    services = (catalogue.create_os, catalogue.update_os, catalogue.delete_os)


class TemplateViewSet(CatalogueViewSet):
    """Templates are Jinja2 rendered in the portal's sandbox (see docs/templates.md). Content
    that does not compile is a 400 with the line number."""

    base_queryset = Template.objects.select_related("tenant")
    serializer_class = TemplateSerializer
    filterset_class = TemplateFilterSet
    ordering_fields = ["name", "kind", "updated", "id"]
    services = (catalogue.create_template, catalogue.update_template, catalogue.delete_template)
    action_permissions = {"preview": "view"}

    @extend_schema(
        methods=["GET"],
        parameters=[OpenApiParameter("server", int, required=True, description="Server id")],
        request=None,
        responses={200: PreviewSerializer, 400: OpenApiResponse(PreviewSerializer)},
    )
    @extend_schema(
        methods=["POST"],
        request=PreviewRequestSerializer,
        responses={200: PreviewSerializer, 400: OpenApiResponse(PreviewSerializer)},
    )
    @action(detail=True, methods=["get", "post"], filter_backends=[], pagination_class=None)
    def preview(self, request, pk=None):
        """Render the template for a server with a placeholder build token. A template error is
        a 400 carrying `errors` [{message, line, snippet}]; a kickstart's rendering is also
        checked by pykickstart (RHEL 9), whose findings are in `validation`."""
        template = self.get_object()
        data = request.data if request.method == "POST" else request.query_params
        body = PreviewRequestSerializer(data=data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        result = catalogue.preview(
            request.user,
            template,
            body.validated_data["server"],
            base_url=catalogue.base_url_for(request),
            content=body.validated_data.get("content"),
        )
        payload = PreviewSerializer(result).data
        if result.ok:
            return Response(payload)
        first = catalogue.describe(result.errors[0])
        field = "content" if "content" in body.validated_data else "template"
        error = error_body(400, "template_error", "The template does not render.", {field: [first]})
        return Response({**error, **payload}, status=status.HTTP_400_BAD_REQUEST)


class ProfileViewSet(CatalogueViewSet):
    base_queryset = Profile.objects.select_related(
        "tenant",
        "os",
        "install_template",
        "ipxe_template",
        "pxelinux_template",
        "grub_template",
    )
    serializer_class = ProfileSerializer
    filterset_class = ProfileFilterSet
    ordering_fields = ["name", "id"]
    services = (catalogue.create_profile, catalogue.update_profile, catalogue.delete_profile)


class ParameterViewSet(CatalogueViewSet):
    base_queryset = Parameter.objects.select_related("tenant")
    serializer_class = ParameterSerializer
    filterset_class = ParameterFilterSet
    ordering_fields = ["name", "id"]
    services = (
        catalogue.create_parameter,
        catalogue.update_parameter,
        catalogue.delete_parameter,
    )


def register(router):
    """Add the catalogue viewsets to the deploy API router."""
    router.register("os", OperatingSystemViewSet, basename="os")
    router.register("templates", TemplateViewSet, basename="template")
    router.register("profiles", ProfileViewSet, basename="profile")
    router.register("parameters", ParameterViewSet, basename="parameter")

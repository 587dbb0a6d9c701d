"""Servers, interfaces, sites and racks in the API.

    /api/inventory/servers/         list (filters: q hostname uuid serial status kind tenant vendor
                                    model tag site rack mac attr; ordering), create
    /api/inventory/servers/{id}/    detail with interfaces and their addresses, update, delete
    /api/inventory/servers/bulk/    POST [{…}, …] create · PATCH [{"id": …, …}, …] update ·
                                    DELETE {"ids": […]}; all or nothing, errors keyed by item index
    /api/inventory/interfaces/      CRUD; POST …/{id}/boot/ makes it the boot interface
    /api/inventory/sites/, /api/inventory/racks/

Thin: serializers parse, inventory.services writes (audited, permission- and tenant-checked).
"""

from django.db import transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from dcportal import rbac
from dcportal.api.serializers import PortalModelSerializer, ScopedRelatedField
from dcportal.api.views import ScopedViewSet, ServiceWriteMixin
from dcportal.models import Tenant
from inventory import selectors, services
from inventory.filtersets import (
    SERVER_ORDERING,
    InterfaceFilterSet,
    RackFilterSet,
    ServerFilterSet,
    SiteFilterSet,
)
from inventory.models import Interface, Rack, Server, Site

urlpatterns = []


class ScopedServerField(serializers.PrimaryKeyRelatedField):
    """A server by id among those the requesting user may see: another tenant's server is
    refused exactly like one that does not exist."""

    def get_queryset(self):
        request = self.context.get("request")
        servers = Server.objects.all()
        return rbac.restrict(servers, request.user, "view") if request else servers.none()


# Serializers ----------------------------------------------------------------------------------


class SiteSerializer(PortalModelSerializer):
    class Meta:
        model = Site
        fields = ["id", "name", "slug", "description"]


class RackSerializer(PortalModelSerializer):
    site = serializers.SlugRelatedField(slug_field="slug", queryset=Site.objects.all())

    class Meta:
        model = Rack
        fields = ["id", "site", "name", "units"]
        validators = []  # (site, name) is checked by the model, after normalisation


class ServerInterfaceSerializer(serializers.ModelSerializer):
    """An interface as listed inside its server (read-only there)."""

    addresses = serializers.SerializerMethodField()

    class Meta:
        model = Interface
        fields = ["id", "name", "mac", "boot", "description", "addresses"]
        read_only_fields = fields

    def get_addresses(self, interface) -> list[str]:
        return [str(address.address) for address in interface.addresses.all()]


class InterfaceSerializer(PortalModelSerializer):
    server = ScopedServerField()
    addresses = serializers.SerializerMethodField()

    class Meta:
        model = Interface
        fields = ["id", "server", "name", "mac", "boot", "description", "addresses"]
        # MACs are normalised by the service before uniqueness is checked.
        extra_kwargs = {"mac": {"validators": []}}
        validators = []

    def get_addresses(self, interface) -> list[str]:
        return [str(address.address) for address in interface.addresses.all()]


class ServerSerializer(PortalModelSerializer):
    tenant = ScopedRelatedField(slug_field="slug", queryset=Tenant.objects.all())
    rack = serializers.PrimaryKeyRelatedField(
        queryset=Rack.objects.all(), allow_null=True, required=False
    )
    site = serializers.CharField(source="rack.site.slug", read_only=True, allow_null=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=64), required=False)
    interfaces = ServerInterfaceSerializer(many=True, read_only=True)

    class Meta:
        model = Server
        fields = [
            "id",
            "hostname",
            "uuid",
            "serial",
            "vendor",
            "model",
            "kind",
            "status",
            "tenant",
            "site",
            "rack",
            "position",
            "tags",
            "attributes",
            "interfaces",
            "created",
            "updated",
            "last_inventory",
        ]
        read_only_fields = ["created", "updated", "last_inventory"]
        # Host names and UUIDs are normalised by the service (Web01. -> web01) before the model
        # validates them and checks uniqueness; validating the raw input here would refuse
        # spellings the service accepts.
        extra_kwargs = {"hostname": {"validators": []}, "uuid": {"validators": []}}
        validators = []

    def validate_attributes(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("Attributes must be a JSON object.")
        return value


class ServerBulkUpdateSerializer(ServerSerializer):
    id = serializers.IntegerField(help_text="The server to change.")

    class Meta(ServerSerializer.Meta):
        pass


class BulkDeleteSerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(), allow_empty=False, max_length=services.MAX_BULK
    )


# Views ----------------------------------------------------------------------------------------


def _bulk_error(errors):
    """services.BulkError / list-serializer errors -> a 400 keyed by item index."""
    fields = {
        str(index): {
            ("non_field_errors" if name == "__all__" else name): messages
            for name, messages in item.items()
        }
        for index, item in errors.items()
        if item
    }
    return exceptions.ValidationError(fields)


class SiteViewSet(ServiceWriteMixin, viewsets.ModelViewSet, ScopedViewSet):
    base_queryset = Site.objects.all()
    serializer_class = SiteSerializer
    filterset_class = SiteFilterSet
    ordering_fields = ["name", "id"]
    ordering = ["name"]


class RackViewSet(ServiceWriteMixin, viewsets.ModelViewSet, ScopedViewSet):
    base_queryset = Rack.objects.select_related("site")
    serializer_class = RackSerializer
    filterset_class = RackFilterSet
    ordering_fields = ["name", "id"]
    ordering = ["name", "id"]


class ServerViewSet(viewsets.ModelViewSet, ScopedViewSet):
    """Servers by SMBIOS UUID and serial, with their facts (`attributes`) and interfaces.

    `attr` filters on facts and may be repeated (all must hold): `cpu.cores__gte=8`,
    `vendor=Dell`, `disks__contains={"model": "X"}`, `rack__exists`, `role__in=web,db`.
    Lookups: eq ne gt gte lt lte contains icontains exists in. A malformed filter is a 400.
    """

    base_queryset = Server.objects.all()
    serializer_class = ServerSerializer
    filterset_class = ServerFilterSet
    ordering_fields = list(SERVER_ORDERING)
    ordering = ["hostname"]

    def get_queryset(self):
        return selectors.servers_for(self.request.user)

    def perform_create(self, serializer):
        serializer.instance = services.create_server(
            user=self.request.user, **serializer.validated_data
        )

    def perform_update(self, serializer):
        serializer.instance = services.update_server(
            serializer.instance, user=self.request.user, **serializer.validated_data
        )

    def perform_destroy(self, instance):
        services.delete_server(instance, user=self.request.user)

    def _reload(self, servers):
        ids = [server.pk for server in servers]
        loaded = self.get_queryset().in_bulk(ids)
        return [loaded[pk] for pk in ids if pk in loaded]

    def _bulk_write(self, serializer_class, service, **kwargs):
        """Validate every item, run the service on those that passed, and report the errors of
        both steps together, by index. Anything written is rolled back if any item failed."""
        if not isinstance(self.request.data, list):
            raise exceptions.ValidationError({"non_field_errors": ["Expected a list of items."]})
        if not self.request.data:
            raise exceptions.ValidationError({"non_field_errors": ["No items given."]})
        context = self.get_serializer_context()
        errors, valid, positions = {}, [], []
        for index, item in enumerate(self.request.data):
            serializer = serializer_class(data=item, context=context, **kwargs)
            if serializer.is_valid():
                valid.append(serializer.validated_data)
                positions.append(index)
            else:
                errors[index] = serializer.errors
        with transaction.atomic():
            try:
                servers = service(user=self.request.user, items=valid) if valid else []
            except services.BulkError as exc:
                errors.update({positions[i]: fields for i, fields in exc.errors.items()})
            if errors:
                transaction.set_rollback(True)
        if errors:
            raise _bulk_error(errors)
        return servers

    @extend_schema(
        methods=["POST"],
        request=ServerSerializer(many=True),
        responses={201: ServerSerializer(many=True)},
        description="Create every server of the list, or none: errors are keyed by item index.",
    )
    @extend_schema(
        methods=["PATCH"],
        request=ServerBulkUpdateSerializer(many=True, partial=True),
        responses={200: ServerSerializer(many=True)},
        description="Change several servers ([{id, field: value, …}]), all or none.",
    )
    @extend_schema(
        methods=["DELETE"],
        request=BulkDeleteSerializer,
        responses={204: OpenApiResponse(description="All deleted.")},
        description='Delete servers by id ({"ids": […]}), all or none.',
    )
    @action(detail=False, methods=["post", "patch", "delete"], url_path="bulk")
    def bulk(self, request):
        user = request.user
        try:
            if request.method == "POST":
                servers = self._bulk_write(ServerSerializer, services.bulk_create_servers)
                code = status.HTTP_201_CREATED
            elif request.method == "PATCH":
                servers = self._bulk_write(
                    ServerBulkUpdateSerializer, services.bulk_update_servers, partial=True
                )
                code = status.HTTP_200_OK
            else:
                body = BulkDeleteSerializer(data=request.data)
                body.is_valid(raise_exception=True)
                services.bulk_delete_servers(user=user, ids=body.validated_data["ids"])
                return Response(status=status.HTTP_204_NO_CONTENT)
        except services.BulkError as exc:
            raise _bulk_error(exc.errors) from None
        data = ServerSerializer(
            self._reload(servers), many=True, context=self.get_serializer_context()
        )
        return Response(data.data, status=code)


class InterfaceViewSet(viewsets.ModelViewSet, ScopedViewSet):
    base_queryset = Interface.objects.select_related("server").prefetch_related("addresses")
    serializer_class = InterfaceSerializer
    filterset_class = InterfaceFilterSet
    ordering_fields = ["name", "mac", "id"]
    action_permissions = {"boot": "change"}

    def perform_create(self, serializer):
        serializer.instance = services.create_interface(
            user=self.request.user, **serializer.validated_data
        )

    def perform_update(self, serializer):
        serializer.instance = services.update_interface(
            serializer.instance, user=self.request.user, **serializer.validated_data
        )

    def perform_destroy(self, instance):
        services.delete_interface(instance, user=self.request.user)

    @extend_schema(request=None, responses=InterfaceSerializer)
    @action(detail=True, methods=["post"])
    def boot(self, request, pk=None):
        """Make this the interface its server PXE-boots from (the others lose the flag)."""
        interface = services.set_boot_interface(user=request.user, interface=self.get_object())
        interface = self.get_queryset().get(pk=interface.pk)
        return Response(InterfaceSerializer(interface, context=self.get_serializer_context()).data)


def register(router):
    """Add this module's viewsets to the inventory API router."""
    router.register("sites", SiteViewSet, basename="site")
    router.register("racks", RackViewSet, basename="rack")
    router.register("servers", ServerViewSet, basename="server")
    router.register("interfaces", InterfaceViewSet, basename="interface")

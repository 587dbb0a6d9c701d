"""Power control in the API.

    /api/inventory/bmcs/                   BMCs: CRUD; `password` is write-only (`has_password`
                                           says whether one is stored; empty on update keeps it)
    /api/inventory/servers/{id}/power/     POST {action, persistent?} -> 202 {job, …}
    /api/inventory/power/                  POST {servers: [ids] | noderange, action,
                                           persistent?} -> 202 {jobs: […]}

Actions: status, on, off, softoff, cycle, reset, bootdev-pxe, bootdev-disk (persistent: not
just the next boot), sensors. Each server gets a tracked job on the "power" queue (follow it at
/api/jobs/{job}/). Power changes take inventory.power_server, boot devices
inventory.set_boot_device, status and sensors view_server; another tenant's server is not found.
"""

import django_filters
from django.urls import path
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status, viewsets
from rest_framework.response import Response

from dcportal import rbac
from dcportal.api.permissions import Authenticated
from dcportal.api.serializers import PortalModelSerializer
from dcportal.api.views import ScopedViewSet
from dcportal.models import Credential
from inventory import power_services, selectors
from inventory.api.servers import ScopedServerField
from inventory.models import Bmc, Server

ACTION_HELP = (
    "status, on, off, softoff, cycle, reset, bootdev-pxe, bootdev-disk or sensors. Power "
    "changes need inventory.power_server, boot devices inventory.set_boot_device."
)


class ScopedCredentialField(serializers.PrimaryKeyRelatedField):
    """A credential by id among those the requesting user may see."""

    def get_queryset(self):
        request = self.context.get("request")
        credentials = Credential.objects.all()
        return rbac.restrict(credentials, request.user, "view") if request else credentials.none()


class PowerActionField(serializers.ChoiceField):
    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", ACTION_HELP)
        super().__init__(choices=list(power_services.ACTIONS), **kwargs)


class PowerActionFieldSchema(OpenApiSerializerFieldExtension):
    """PowerActionField as its own named enum: "action" is also the audit event's field, and
    two different enums of one name would make the schema generator warn."""

    target_class = PowerActionField

    def map_serializer_field(self, auto_schema, direction):
        component = ResolvedComponent(
            name="PowerActionEnum",
            type=ResolvedComponent.SCHEMA,
            object="PowerActionEnum",
            schema={"type": "string", "enum": list(power_services.ACTIONS)},
        )
        auto_schema.registry.register_on_missing(component)
        return component.ref


class BmcSerializer(PortalModelSerializer):
    server = ScopedServerField()
    hostname = serializers.CharField(source="server.hostname", read_only=True)
    credential = ScopedCredentialField(
        allow_null=True,
        required=False,
        help_text="A credential (by id) used when no username and password are set here.",
    )
    has_password = serializers.SerializerMethodField()

    class Meta:
        model = Bmc
        fields = [
            "id",
            "server",
            "hostname",
            "driver",
            "address",
            "port",
            "username",
            "password",
            "has_password",
            "credential",
            "options",
            "power_state",
            "power_state_checked",
            "created",
            "updated",
        ]
        read_only_fields = ["power_state", "power_state_checked", "created", "updated"]
        extra_kwargs = {"password": {"required": False}}

    def get_has_password(self, bmc) -> bool:
        return bool(bmc.password)

    def validate_options(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("Options must be a JSON object.")
        return value


class PowerRequestSerializer(serializers.Serializer):
    action = PowerActionField()
    persistent = serializers.BooleanField(
        default=False,
        help_text="Boot device actions only: keep the device for every boot, not just the next.",
    )


class BulkPowerRequestSerializer(PowerRequestSerializer):
    servers = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        allow_empty=False,
        max_length=power_services.MAX_SERVERS,
        help_text="Server ids.",
    )
    noderange = serializers.CharField(
        required=False, help_text="An xCAT node range instead of ids, e.g. node[01-20],db1."
    )

    def validate(self, attrs):
        if bool(attrs.get("servers")) == bool(attrs.get("noderange")):
            raise serializers.ValidationError("Give exactly one of servers or noderange.")
        return attrs


class PowerJobSerializer(serializers.Serializer):
    job = serializers.IntegerField(source="pk", help_text="The job's id: /api/jobs/{job}/.")
    server = serializers.IntegerField(source="params.server_id")
    hostname = serializers.CharField(source="object_repr")
    action = serializers.CharField(source="params.action")
    status = serializers.CharField()


class BulkPowerJobsSerializer(serializers.Serializer):
    jobs = PowerJobSerializer(many=True)


# Views ----------------------------------------------------------------------------------------


class BmcFilterSet(django_filters.FilterSet):
    # By id, not a choice among every server: another tenant's id must read like a missing one.
    server = django_filters.NumberFilter(field_name="server_id", label="Server (id)")

    class Meta:
        model = Bmc
        fields = ["server", "driver", "power_state"]


class BmcViewSet(viewsets.ModelViewSet, ScopedViewSet):
    """Servers' BMCs. Credentials are write-only; has_password says whether one is stored."""

    base_queryset = Bmc.objects.select_related("server", "credential")
    serializer_class = BmcSerializer
    filterset_class = BmcFilterSet
    ordering_fields = ["id", "server__hostname"]
    ordering = ["id"]

    def perform_create(self, serializer):
        serializer.instance = power_services.create_bmc(
            user=self.request.user, **serializer.validated_data
        )

    def perform_update(self, serializer):
        serializer.instance = power_services.update_bmc(
            serializer.instance, user=self.request.user, **serializer.validated_data
        )

    def perform_destroy(self, instance):
        power_services.delete_bmc(instance, user=self.request.user)


def _check_permission(user, action):
    # Checked before the servers are looked up, so a user without the action hears 403, not a
    # misleading "no such server".
    rbac.require(user, power_services.permission_for(action))


class ServerPowerView(generics.GenericAPIView):
    """Run a power action on one server as a tracked job on the "power" queue."""

    permission_classes = [Authenticated]
    serializer_class = PowerRequestSerializer

    def get_queryset(self):
        return selectors.servers_for(self.request.user)

    @extend_schema(
        request=PowerRequestSerializer,
        responses={202: PowerJobSerializer},
        operation_id="inventory_servers_power",
    )
    def post(self, request, pk):
        server = rbac.get_restricted(Server.objects.all(), request.user, "view", pk=pk)
        body = PowerRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        _check_permission(request.user, body.validated_data["action"])
        data = body.validated_data
        (job,) = power_services.enqueue_power(
            user=request.user,
            servers=[server],
            action=data["action"],
            persistent=data["persistent"],
        )
        return Response(PowerJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class BulkPowerView(generics.GenericAPIView):
    """Run a power action on several servers (ids or a node range): one tracked job each."""

    permission_classes = [Authenticated]
    serializer_class = BulkPowerRequestSerializer

    def get_queryset(self):
        return selectors.servers_for(self.request.user)

    @extend_schema(
        request=BulkPowerRequestSerializer,
        responses={202: BulkPowerJobsSerializer},
        operation_id="inventory_power_bulk",
    )
    def post(self, request):
        body = BulkPowerRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        user = request.user
        _check_permission(user, data["action"])
        servers = selectors.servers_named(
            user=user, ids=data.get("servers"), noderange=data.get("noderange")
        )
        jobs = power_services.enqueue_power(
            user=user, servers=servers, action=data["action"], persistent=data["persistent"]
        )
        body = BulkPowerJobsSerializer({"jobs": jobs})
        return Response(body.data, status=status.HTTP_202_ACCEPTED)


def register(router):
    router.register("bmcs", BmcViewSet, basename="bmc")


urlpatterns = [
    path("servers/<int:pk>/power/", ServerPowerView.as_view(), name="server-power"),
    path("power/", BulkPowerView.as_view(), name="power"),
]

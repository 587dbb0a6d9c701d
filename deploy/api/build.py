"""The build state machine in the API.

    /api/deploy/builds/               the servers' deployment rows (filters: state, stage,
                                      next_boot, profile, server, hostname)
    /api/deploy/builds/{server id}/   one server's deployment (a server without a row boots its
                                      local disk); PATCH/PUT {profile, parameters}
    /api/deploy/nodeset/              POST {servers: [ids] | noderange, next_boot, profile?}
    /api/deploy/rinstall/             POST {servers: [ids] | noderange, profile?, timeout?}
                                      -> 202 {jobs: [...]}, one tracked job per server

Build tokens never appear (only when they expire); nodeset takes deploy.nodeset_server,
rinstall also inventory.power_server and inventory.set_boot_device. Another tenant's server
is not found.
"""

import django_filters as filters
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import generics, mixins, serializers, status
from rest_framework.response import Response

from dcportal import rbac
from dcportal.api.permissions import Authenticated
from dcportal.api.serializers import PortalModelSerializer, ScopedRelatedField
from dcportal.api.views import ScopedViewSet
from deploy import services
from deploy.models import Profile, ServerDeploy
from inventory import selectors
from inventory.models import Server


class BuildFilterSet(filters.FilterSet):
    # By id, not a choice among every server: another tenant's id must read like a missing one.
    server = filters.NumberFilter(field_name="server_id", label="Server (id)")
    profile = filters.CharFilter(field_name="profile__name")
    hostname = filters.CharFilter(field_name="server__hostname", lookup_expr="icontains")

    class Meta:
        model = ServerDeploy
        fields = ["server", "state", "stage", "next_boot", "profile", "hostname"]


class ServerDeploySerializer(PortalModelSerializer):
    server = serializers.IntegerField(source="server_id", read_only=True)
    hostname = serializers.CharField(source="server.hostname", read_only=True)
    profile = ScopedRelatedField(
        slug_field="name",
        queryset=Profile.objects.all(),
        allow_null=True,
        required=False,
        help_text="The deploy profile, by name.",
    )
    job = serializers.IntegerField(
        source="job_id", read_only=True, allow_null=True, help_text="The rinstall job, if any."
    )
    # A server whose deployment was never set reads as an unsaved row: never updated.
    updated = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta:
        model = ServerDeploy
        fields = [
            "server",
            "hostname",
            "profile",
            "parameters",
            "next_boot",
            "state",
            "stage",
            "progress",
            "message",
            "error",
            "token_expires",
            "build_started",
            "booted",
            "template_fetched",
            "last_report",
            "finished",
            "job",
            "updated",
        ]
        read_only_fields = [name for name in fields if name not in ("profile", "parameters")]

    def validate_parameters(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("Parameters must be a JSON object.")
        return value


class _Targets(serializers.Serializer):
    servers = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        allow_empty=False,
        max_length=services.MAX_SERVERS,
        help_text="Server ids.",
    )
    noderange = serializers.CharField(
        required=False, help_text="An xCAT node range instead of ids, e.g. node[01-20],db1."
    )

    def validate(self, attrs):
        if bool(attrs.get("servers")) == bool(attrs.get("noderange")):
            raise serializers.ValidationError("Give exactly one of servers or noderange.")
        return attrs


class NodesetRequestSerializer(_Targets):
    next_boot = serializers.ChoiceField(choices=ServerDeploy.NextBoot.choices)
    profile = serializers.CharField(
        required=False, allow_null=True, help_text="Profile name; install needs one."
    )


class NodesetResultSerializer(serializers.Serializer):
    next_boot = serializers.CharField()
    profile = serializers.CharField(allow_null=True)
    count = serializers.IntegerField()
    servers = serializers.ListField(child=serializers.CharField(), help_text="Host names.")


class RinstallRequestSerializer(_Targets):
    profile = serializers.CharField(
        required=False,
        allow_null=True,
        help_text="Profile name; without one each server is reinstalled with its own.",
    )
    timeout = serializers.FloatField(
        required=False,
        allow_null=True,
        help_text="Seconds each job gives the install to report done, power cycle included.",
    )


class RinstallJobSerializer(serializers.Serializer):
    job = serializers.IntegerField(source="pk", help_text="The job's id: /api/jobs/{job}/.")
    server = serializers.IntegerField(source="params.server_id")
    hostname = serializers.CharField(source="object_repr")
    status = serializers.CharField()


class RinstallJobsSerializer(serializers.Serializer):
    jobs = RinstallJobSerializer(many=True)


# Views ----------------------------------------------------------------------------------------


class ServerDeployViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    ScopedViewSet,
):
    """Servers' deployment state (next boot, build progress) and their profile/parameters."""

    base_queryset = ServerDeploy.objects.select_related("server", "profile")
    serializer_class = ServerDeploySerializer
    filterset_class = BuildFilterSet
    ordering_fields = ["id", "server__hostname", "updated", "last_report"]
    ordering = ["id"]
    lookup_field = "server"
    lookup_value_regex = r"[0-9]+"

    def _server(self):
        return rbac.get_restricted(
            Server.objects.all(), self.request.user, "view", pk=self.kwargs["server"]
        )

    def get_object(self):
        server = self._server()
        row = self.get_queryset().filter(server=server).first()
        return row if row is not None else ServerDeploy(server=server)

    def perform_update(self, serializer):
        server = serializer.instance.server
        serializer.instance = services.set_deploy(
            server, user=self.request.user, **serializer.validated_data
        )


def _servers(user, data, action):
    return selectors.servers_named(
        user=user, ids=data.get("servers"), noderange=data.get("noderange"), action=action
    )


class NodesetView(generics.GenericAPIView):
    """Set the next boot (install with a profile, localboot, rescue, discovery) of servers."""

    permission_classes = [Authenticated]
    serializer_class = NodesetRequestSerializer

    def get_queryset(self):
        return selectors.servers_for(self.request.user)

    @extend_schema(
        request=NodesetRequestSerializer,
        responses={200: NodesetResultSerializer},
        operation_id="deploy_nodeset",
    )
    def post(self, request):
        body = NodesetRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        user = request.user
        rbac.require(user, services.NODESET_PERMISSION)
        servers = _servers(user, data, services.NODESET_PERMISSION)
        result = services.nodeset(
            user=user, servers=servers, next_boot=data["next_boot"], profile=data.get("profile")
        )
        answer = {
            "next_boot": result.next_boot,
            "profile": result.profile,
            "count": result.count,
            "servers": list(result.servers),
        }
        return Response(NodesetResultSerializer(answer).data)


class RinstallView(generics.GenericAPIView):
    """Reinstall servers: nodeset install, one-time network boot, power cycle; a tracked job
    per server on the "deploy" queue follows its build (/api/jobs/{job}/)."""

    permission_classes = [Authenticated]
    serializer_class = RinstallRequestSerializer

    def get_queryset(self):
        return selectors.servers_for(self.request.user)

    @extend_schema(
        request=RinstallRequestSerializer,
        responses={202: RinstallJobsSerializer},
        operation_id="deploy_rinstall",
    )
    def post(self, request):
        body = RinstallRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        user = request.user
        for permission in services.RINSTALL_PERMISSIONS:
            rbac.require(user, permission)
        servers = _servers(user, data, services.NODESET_PERMISSION)
        started = services.rinstall(
            user=user, servers=servers, profile=data.get("profile"), timeout=data.get("timeout")
        )
        body = RinstallJobsSerializer({"jobs": started})
        return Response(body.data, status=status.HTTP_202_ACCEPTED)


def register(router):
    router.register("builds", ServerDeployViewSet, basename="serverdeploy")


urlpatterns = [
    path("nodeset/", NodesetView.as_view(), name="deploy-nodeset"),
    path("rinstall/", RinstallView.as_view(), name="deploy-rinstall"),
]

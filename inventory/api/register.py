"""Auto-inventory API: POST /api/inventory/register/, enrolment tokens and conflicts.

The register endpoint authenticates itself: an enrolment token (`Authorization: Bearer dce_…`)
registers into that token's tenant; a user (API token or session) needs inventory.add_server and
inventory.change_server and names the tenant in the report unless they belong to just one.
"""

import codecs
import json

from django.contrib.auth.models import AnonymousUser
from django.urls import path, reverse
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import authentication, exceptions, mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from dcportal import ratelimit
from dcportal.api.auth import TokenAuthentication, throttled
from dcportal.api.errors import error_body
from dcportal.api.permissions import token_allows
from dcportal.api.serializers import ScopedRelatedField
from dcportal.api.views import ScopedViewSet
from dcportal.models import Tenant
from inventory import registration
from inventory.models import Conflict, EnrolmentToken
from inventory.registration_filters import ConflictFilterSet, EnrolmentTokenFilterSet

MAX_REPORT_BYTES = 1024 * 1024


# Authentication and parsing ---------------------------------------------------------------------


class EnrolmentTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer dce_…`: an agent acting for the token's tenant, not a user.

    The call is a public endpoint's: limited per source address, and a refused token counts
    toward the source's lockout like any other (dcportal.ratelimit)."""

    keywords = ("bearer", "token")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if len(header) != 2 or header[0].lower().decode() not in self.keywords:
            return None  # not ours: the API token or session authentication decides
        prefix = registration.ENROLMENT_PREFIX.encode() + b"_"
        if not header[1].startswith(prefix):
            return None
        if (over := ratelimit.check(request, token=True)) is not None:
            raise throttled(over)
        token = registration.authenticate_enrolment_token(header[1].decode("ascii", "replace"))
        if token is None:
            ratelimit.refused_token(request)
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked enrolment token.")
        return AnonymousUser(), token

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class EnrolmentTokenScheme(OpenApiAuthenticationExtension):
    target_class = "inventory.api.register.EnrolmentTokenAuthentication"
    name = "enrolmentTokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An enrolment token of a tenant: dce_… (register only).",
        }


class ReportParser(JSONParser):
    """JSON, at most 1 MiB; bytes that are not UTF-8 (firmware strings) become U+FFFD instead
    of failing the whole report."""

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read(MAX_REPORT_BYTES + 1) if stream is not None else b""
        if len(raw) > MAX_REPORT_BYTES:
            raise exceptions.ParseError(f"The report is larger than {MAX_REPORT_BYTES} bytes.")
        if raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        try:
            return json.loads(raw.decode("utf-8", errors="replace"))
        except (ValueError, RecursionError) as exc:
            raise exceptions.ParseError(f"JSON parse error: {exc}") from None


class CanRegister(BasePermission):
    """An active enrolment token, or a user who may add and change servers."""

    def has_permission(self, request, view):
        if isinstance(request.auth, EnrolmentToken):
            return True
        user = request.user
        return bool(
            user
            and user.is_authenticated
            and token_allows(request)
            and user.has_perm("inventory.add_server")
            and user.has_perm("inventory.change_server")
        )


# Serializers ------------------------------------------------------------------------------------


class ReportedInterfaceSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64)
    mac = serializers.CharField(help_text="Any common notation; stored as aa:bb:cc:dd:ee:ff.")
    boot = serializers.BooleanField(required=False, help_text="The interface it booted from.")


class ReportSerializer(serializers.Serializer):
    """What a machine reports. Keys other than these are facts, deep-merged into the server's
    attributes (reported keys replace, others are kept); the interfaces are kept there too."""

    uuid = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, help_text="SMBIOS system UUID."
    )
    serial = serializers.CharField(required=False, allow_blank=True, max_length=100)
    vendor = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text="Or sys_vendor."
    )
    model = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text="Or product_name."
    )
    hostname = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, help_text="Generated when absent."
    )
    tenant = serializers.SlugField(
        required=False, help_text="Slug; users only (an enrolment token knows its tenant)."
    )
    interfaces = ReportedInterfaceSerializer(many=True, required=False)


class ConflictBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Conflict
        fields = ["id", "kind", "detail"]


class RegisteredServerSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    hostname = serializers.CharField()
    uuid = serializers.UUIDField(allow_null=True)
    serial = serializers.CharField()
    vendor = serializers.CharField()
    model = serializers.CharField()
    tenant = serializers.CharField(source="tenant.slug")
    last_inventory = serializers.DateTimeField()


class RegistrationResultSerializer(serializers.Serializer):
    result = serializers.ChoiceField(choices=["created", "updated", "unchanged", "held"])
    message = serializers.CharField()
    server = RegisteredServerSerializer(allow_null=True)
    conflicts = ConflictBriefSerializer(many=True)


class EnrolmentTokenSerializer(serializers.ModelSerializer):
    tenant = ScopedRelatedField(
        slug_field="slug",
        queryset=Tenant.objects.all(),
        required=False,
        help_text="Defaults to your only tenant.",
    )
    active = serializers.BooleanField(source="is_active", read_only=True)

    class Meta:
        model = EnrolmentToken
        fields = [
            "id",
            "tenant",
            "name",
            "prefix",
            "created",
            "expires",
            "last_used",
            "revoked",
            "active",
        ]
        # The tenant defaults to the requester's; the service checks the name per tenant.
        validators = []


class EnrolmentTokenCreatedSerializer(EnrolmentTokenSerializer):
    key = serializers.CharField(read_only=True, help_text="Shown once; store it now.")
    agent_url = serializers.CharField(read_only=True)
    command = serializers.CharField(read_only=True, help_text="Run the agent on a machine.")

    class Meta(EnrolmentTokenSerializer.Meta):
        fields = [*EnrolmentTokenSerializer.Meta.fields, "key", "agent_url", "command"]


class ConflictSerializer(serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    server = serializers.SlugRelatedField(slug_field="hostname", read_only=True, allow_null=True)
    other_server = serializers.SlugRelatedField(
        slug_field="hostname", read_only=True, allow_null=True
    )
    resolved_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    resolutions = serializers.SerializerMethodField()

    class Meta:
        model = Conflict
        fields = [
            "id",
            "tenant",
            "kind",
            "server",
            "other_server",
            "detail",
            "report",
            "created",
            "resolved",
            "resolved_by",
            "resolution",
            "resolutions",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_resolutions(self, conflict):
        return registration.resolutions_for(conflict)


class ResolveSerializer(serializers.Serializer):
    resolution = serializers.ChoiceField(
        choices=list(registration.RESOLUTIONS.items()),
        help_text="; ".join(f"{k}: {v}" for k, v in registration.RESOLUTIONS.items()),
    )
    note = serializers.CharField(required=False, allow_blank=True, max_length=200)


# Views ------------------------------------------------------------------------------------------


def agent_command(request, key):
    """The line an operator pastes on a machine to inventory it with this key."""
    agent_url = request.build_absolute_uri(reverse("inventory:agent"))
    return agent_url, f"wget -qO- {agent_url} | sh -s -- --token {key}"


class RegisterView(APIView):
    """A machine reports what it is; the portal creates or updates its server.

    201 created, 200 updated or unchanged, 202 held for an operator (no identity, or its serial
    belongs to a server with another UUID: see /api/inventory/conflicts/), 409 its UUID is a
    server of another tenant. Conflicts (a MAC on another server, a taken host name) are
    listed in the answer and kept for an operator; the rest of the report is applied.
    """

    authentication_classes = [
        EnrolmentTokenAuthentication,
        TokenAuthentication,
        authentication.SessionAuthentication,
    ]
    permission_classes = [CanRegister]
    parser_classes = [ReportParser]

    @extend_schema(
        request=ReportSerializer,
        responses={
            200: RegistrationResultSerializer,
            201: RegistrationResultSerializer,
            202: RegistrationResultSerializer,
        },
    )
    def post(self, request):
        report = request.data
        if not isinstance(report, dict):
            raise exceptions.ValidationError({"non_field_errors": ["A JSON object is required."]})
        token = request.auth if isinstance(request.auth, EnrolmentToken) else None
        slug = report.get("tenant")
        if slug is not None and not isinstance(slug, str):
            raise exceptions.ValidationError({"tenant": ["A tenant slug is required."]})
        if token is not None:
            if slug and slug != token.tenant.slug:
                raise exceptions.ValidationError(
                    {"tenant": ["The enrolment token belongs to another tenant."]}
                )
            tenant, user = token.tenant, None
        else:
            tenant, user = registration.resolve_tenant(request.user, slug), request.user
        try:
            result = registration.register(
                report=report, tenant=tenant, actor_user=user, token=token
            )
        except registration.RegistrationRefused as exc:
            return Response(error_body(409, "conflict", str(exc)), status=409)
        body = RegistrationResultSerializer(
            {
                "result": result.status,
                "message": result.message,
                "server": result.server,
                "conflicts": result.conflicts,
            }
        ).data
        return Response(body, status=result.http_status)


class EnrolmentTokenViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    ScopedViewSet,
):
    """Enrolment tokens of your tenants. The key is shown once at creation; DELETE revokes
    (the row stays for the audit trail)."""

    base_queryset = EnrolmentToken.objects.select_related("tenant")
    serializer_class = EnrolmentTokenSerializer
    filterset_class = EnrolmentTokenFilterSet
    action_permissions = {"destroy": "change"}

    @extend_schema(responses={201: EnrolmentTokenCreatedSerializer})
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        tenant = data.get("tenant") or registration.resolve_tenant(request.user)
        token, key = registration.create_enrolment_token(
            user=request.user, tenant=tenant, name=data["name"], expires=data.get("expires")
        )
        token.key = key
        token.agent_url, token.command = agent_command(request, key)
        body = EnrolmentTokenCreatedSerializer(token, context=self.get_serializer_context()).data
        response = Response(body, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response

    def perform_destroy(self, instance):
        registration.revoke_enrolment_token(user=self.request.user, token=instance)


class ConflictViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """What registrations could not merge silently. Filter with ?state=open."""

    base_queryset = Conflict.objects.select_related(
        "tenant", "server", "other_server", "resolved_by"
    )
    serializer_class = ConflictSerializer
    filterset_class = ConflictFilterSet
    action_permissions = {"resolve": "resolve_conflict"}

    @extend_schema(request=ResolveSerializer, responses=ConflictSerializer)
    @action(detail=True, methods=["post"])
    def resolve(self, request, pk=None):
        conflict = self.get_object()
        params = ResolveSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        conflict = registration.resolve_conflict(
            user=request.user,
            conflict=conflict,
            resolution=params.validated_data["resolution"],
            note=params.validated_data.get("note", ""),
        )
        conflict = self.get_queryset().get(pk=conflict.pk)
        return Response(ConflictSerializer(conflict, context=self.get_serializer_context()).data)


urlpatterns = [
    path("register/", RegisterView.as_view(), name="inventory-register"),
]


def register(router):
    """Add this module's viewsets to the inventory API router."""
    router.register("enrolment-tokens", EnrolmentTokenViewSet, basename="enrolmenttoken")
    router.register("conflicts", ConflictViewSet, basename="conflict")

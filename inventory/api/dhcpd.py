"""POST /api/inventory/import/dhcpd/: import an ISC dhcpd.conf (multipart `file`, or `text`),
answering the plan. The upload is only parsed, never stored, executed or handed to a program."""

from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from dcportal.api.parsers import JSONParser
from dcportal.api.permissions import token_allows
from inventory import dhcpd_import

# A dhcpd.conf of 100k hosts is about 15 MB; anything far beyond is not a configuration.
MAX_BYTES = 32 * 1024 * 1024


class DhcpdTextImportSerializer(serializers.Serializer):
    text = serializers.CharField(
        required=False, trim_whitespace=False, help_text="The dhcpd.conf as text."
    )
    tenant = serializers.SlugField(
        required=False, help_text="Tenant slug; defaults to your only tenant."
    )
    dry_run = serializers.BooleanField(default=False, help_text="Plan only; write nothing.")


class DhcpdImportSerializer(DhcpdTextImportSerializer):
    file = serializers.FileField(required=False, help_text="The dhcpd.conf as an upload.")

    def validate(self, attrs):
        if ("file" in attrs) == ("text" in attrs):
            raise serializers.ValidationError("Give exactly one of file or text.")
        return attrs


class ProblemSerializer(serializers.Serializer):
    line = serializers.IntegerField()
    column = serializers.IntegerField(allow_null=True)
    message = serializers.CharField()


class ChangeSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["subnet", "range", "server", "interface", "address"])
    action = serializers.ChoiceField(choices=["create", "update", "unchanged"])
    object = serializers.CharField()
    line = serializers.IntegerField()
    changes = serializers.DictField(
        child=serializers.ListField(child=serializers.JSONField(), min_length=2, max_length=2),
        help_text="field: [old, new]",
    )


class SummarySerializer(serializers.Serializer):
    create = serializers.IntegerField()
    update = serializers.IntegerField()
    unchanged = serializers.IntegerField()


class DhcpdImportResultSerializer(serializers.Serializer):
    source = serializers.CharField()
    tenant = serializers.CharField()
    dry_run = serializers.BooleanField()
    applied = serializers.BooleanField()
    summary = SummarySerializer()
    changes = ChangeSerializer(many=True)
    warnings = ProblemSerializer(many=True)


class CanImport(permissions.BasePermission):
    """Every action an import may take, held up front: no half-permitted imports."""

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated and token_allows(request)):
            return False
        return all(user.has_perm(code) for code in dhcpd_import.IMPORT_PERMISSIONS)


class DhcpdImportView(APIView):
    permission_classes = [CanImport]
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(
        operation_id="inventory_import_dhcpd",
        request={
            "multipart/form-data": DhcpdImportSerializer,
            "application/x-www-form-urlencoded": DhcpdTextImportSerializer,
            "application/json": DhcpdTextImportSerializer,
        },
        responses={
            200: DhcpdImportResultSerializer,
            400: OpenApiResponse(
                description="Errors, each 'FILE:LINE: message', under fields.file or "
                "fields.text; nothing was imported."
            ),
            403: OpenApiResponse(description="Missing an import permission or the tenant."),
        },
        summary="Import an ISC dhcpd.conf",
        description=(
            "Creates or updates subnets, DHCP ranges, servers, interfaces and fixed addresses "
            "from a dhcpd.conf, idempotently and all or nothing. With dry_run the plan is "
            "checked in full and nothing is written."
        ),
    )
    def post(self, request):
        form = DhcpdImportSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        tenant = dhcpd_import.resolve_tenant(request.user, data.get("tenant"))
        if "file" in data:
            field, upload = "file", data["file"]
            source = upload.name or "upload"
            if upload.size > MAX_BYTES:
                raise ValidationError(
                    {field: [f"Larger than {MAX_BYTES:,} bytes; use manage.py import_dhcpd."]}
                )
            text = dhcpd_import.decode(upload.read())
        else:
            field, source, text = "text", "text", data["text"]
        try:
            result = dhcpd_import.import_dhcpd(
                text, user=request.user, tenant=tenant, dry_run=data["dry_run"], source=source
            )
        except dhcpd_import.DhcpdImportError as exc:
            raise ValidationError(
                {field: [dhcpd_import.located(source, problem) for problem in exc.problems]}
            ) from None
        return Response(DhcpdImportResultSerializer(result.as_dict()).data)


urlpatterns = [
    path("import/dhcpd/", DhcpdImportView.as_view(), name="inventory-import-dhcpd"),
]


def register(router):
    """Add this module's viewsets to the inventory API router (it has none: one plain view)."""

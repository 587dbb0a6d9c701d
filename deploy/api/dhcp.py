"""GET /api/deploy/dhcp/<format>/: the DHCP configuration (isc, kea or dnsmasq) of what the
caller may see, as the daemon reads it: text/plain, or JSON for Kea.

Query parameters override the DHCP settings for this answer (next_server, boot_url,
boot_mode, bios_file, uefi_file, interface for Kea). Conflicts in the inventory answer 400 with
one message per conflict under fields.conflicts; an unknown parameter is a 400 too.
"""

from django.http import HttpResponse
from django.urls import re_path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, renderers, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from dcportal.api.permissions import token_allows
from deploy import dhcp_services
from deploy.dhcp.model import BOOT_MODES


class PlainTextRenderer(renderers.BaseRenderer):
    """Lets a client ask for text/plain; error bodies still come out as JSON text."""

    media_type = "text/plain"
    format = "txt"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, str):
            return data.encode(self.charset)
        # An error body is JSON, and says so (the schema documents errors as JSON only).
        response = (renderer_context or {}).get("response")
        if response is not None:
            response["Content-Type"] = "application/json"
        return renderers.JSONRenderer().render(data)


class DhcpQuerySerializer(serializers.Serializer):
    next_server = serializers.IPAddressField(protocol="IPv4", required=False)
    boot_url = serializers.CharField(required=False, max_length=200)
    boot_mode = serializers.ChoiceField(choices=BOOT_MODES, required=False)
    bios_file = serializers.CharField(required=False, max_length=200)
    uefi_file = serializers.CharField(required=False, max_length=200)
    interface = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, allow_empty=False
    )


class CanViewDhcp(permissions.BasePermission):
    """A configuration shows subnets, ranges, addresses, MACs and host names: all are needed."""

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated and token_allows(request)):
            return False
        return all(user.has_perm(code) for code in dhcp_services.PERMISSIONS)


_QUERY = [
    OpenApiParameter(
        "dhcp_format",
        OpenApiTypes.STR,
        OpenApiParameter.PATH,
        enum=list(dhcp_services.FORMATS),
        description="isc (dhcpd.conf), kea (kea-dhcp4 JSON) or dnsmasq.",
    ),
    OpenApiParameter(
        "next_server",
        OpenApiTypes.IP4,
        description="TFTP server address (default: the DHCP_NEXT_SERVER setting).",
    ),
    OpenApiParameter(
        "boot_url",
        OpenApiTypes.URI,
        description="The portal's URL as nodes reach it; iPXE fetches BOOT_URL/boot/ipxe.",
    ),
    OpenApiParameter("boot_mode", OpenApiTypes.STR, enum=list(BOOT_MODES)),
    OpenApiParameter("bios_file", OpenApiTypes.STR, description="Boot file of BIOS PXE."),
    OpenApiParameter("uefi_file", OpenApiTypes.STR, description="Boot file of UEFI PXE."),
    OpenApiParameter(
        "interface", OpenApiTypes.STR, many=True, description="Kea: interfaces to listen on."
    ),
]


class DhcpConfigView(APIView):
    permission_classes = [CanViewDhcp]
    renderer_classes = [renderers.JSONRenderer, PlainTextRenderer]

    @extend_schema(
        operation_id="deploy_dhcp_config",
        parameters=_QUERY,
        responses={
            (200, "text/plain"): OpenApiTypes.STR,
            (200, "application/json"): OpenApiTypes.OBJECT,
            400: OpenApiResponse(
                description="Conflicts in the inventory (fields.conflicts, one message each) "
                "or bad parameters; no configuration."
            ),
            403: OpenApiResponse(description="Missing a view permission of the inventory."),
        },
        summary="A DHCP configuration (ISC dhcpd, Kea or dnsmasq)",
        description=(
            "Subnets with a DHCP range or reservations, their pools, the reservations (MAC, "
            "address, host name) and the boot files per client: legacy BIOS PXE, UEFI PXE "
            "(option 93 = 7 or 9) and iPXE (user class iPXE, which gets the HTTP boot script). "
            "text/plain for isc and dnsmasq, application/json for kea."
        ),
    )
    def get(self, request, dhcp_format):
        # `format` (txt or json) picks the renderer, as in every DRF view with several.
        allowed = {*DhcpQuerySerializer().fields, api_settings.URL_FORMAT_OVERRIDE}
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            raise ValidationError({name: ["Unknown query parameter."] for name in unknown})
        params = request.query_params.copy()
        params.pop(api_settings.URL_FORMAT_OVERRIDE, None)
        query = DhcpQuerySerializer(data=params)
        query.is_valid(raise_exception=True)
        data = dict(query.validated_data)
        output = dhcp_services.generate(
            user=request.user,
            fmt=dhcp_format,
            interfaces=data.pop("interface", None),
            **data,
        )
        return HttpResponse(output.text, content_type=output.content_type)


urlpatterns = [
    re_path(
        r"^dhcp/(?P<dhcp_format>isc|kea|dnsmasq)/$",
        DhcpConfigView.as_view(),
        name="deploy-dhcp",
    ),
]


def register(router):
    """Add this module's viewsets to the deploy API router (it has none: one plain view)."""

"""IPAM in the API: subnets (with usage), ranges and addresses, and next-free allocation.

    /api/inventory/subnets/                  list, create (filters: tenant vlan family contains q)
    /api/inventory/subnets/{id}/             detail with usage, update, delete
    /api/inventory/subnets/{id}/allocate/    POST: the next free address of the subnet (201)
    /api/inventory/ranges/ ... /{id}/allocate/
    /api/inventory/addresses/                the subnet is found from the address when omitted

Thin: serializers parse, inventory.ipam decides and writes.
"""

import ipaddress

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from dcportal import rbac
from dcportal.api.serializers import PortalModelSerializer, ScopedRelatedField
from dcportal.api.views import ScopedViewSet
from dcportal.models import Tenant
from inventory import ipam
from inventory.ipam_filtersets import IPAddressFilterSet, IPRangeFilterSet, SubnetFilterSet
from inventory.models import Interface, IPAddress, IPRange, Subnet

urlpatterns = []


# Fields -----------------------------------------------------------------------------------------


class AddressField(serializers.CharField):
    """An IPv4 or IPv6 address in, its canonical text out."""

    def to_internal_value(self, data):
        text = super().to_internal_value(data)
        try:
            return ipaddress.ip_address(text)
        except ValueError:
            raise serializers.ValidationError(f"{text!r} is not an IP address.") from None

    def to_representation(self, value):
        return str(value)


class NetworkField(serializers.CharField):
    """A network in CIDR notation ("10.1.0.0/24", "2001:db8::/64"); host bits must be zero."""

    def to_internal_value(self, data):
        text = super().to_internal_value(data)
        try:
            return ipaddress.ip_network(text)
        except ValueError as exc:
            raise serializers.ValidationError(f"{text!r} is not a network: {exc}.") from None

    def to_representation(self, value):
        return str(value)


class ScopedPrimaryKeyField(serializers.PrimaryKeyRelatedField):
    """A related object by id, among those the requesting user may see: another tenant's id is
    refused exactly like one that does not exist."""

    def get_queryset(self):
        request = self.context.get("request")
        queryset = super().get_queryset()
        return rbac.restrict(queryset, request.user, "view") if request else queryset.none()


# Serializers ------------------------------------------------------------------------------------


class RangeUsageSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    start = AddressField()
    end = AddressField()
    kind = serializers.ChoiceField(choices=IPRange.Kind.choices)
    description = serializers.CharField()
    size = serializers.IntegerField()
    used = serializers.IntegerField()
    free = serializers.IntegerField()
    percent = serializers.FloatField()


class UsageSerializer(serializers.Serializer):
    size = serializers.IntegerField(
        help_text="Addresses a host may hold (IPv4: without network "
        "and broadcast; IPv6: without the subnet-router anycast)."
    )
    used = serializers.IntegerField()
    free = serializers.IntegerField()
    percent = serializers.FloatField()
    ranges = RangeUsageSerializer(many=True)


class SubnetSerializer(PortalModelSerializer):
    network = NetworkField()
    tenant = ScopedRelatedField(slug_field="slug", queryset=Tenant.objects.all())
    gateway = AddressField(required=False, allow_null=True)
    dns_servers = serializers.ListField(child=AddressField(), required=False)
    family = serializers.SerializerMethodField()
    size = serializers.SerializerMethodField()
    used = serializers.SerializerMethodField()

    class Meta:
        model = Subnet
        fields = [
            "id",
            "network",
            "name",
            "tenant",
            "vlan",
            "gateway",
            "dns_servers",
            "domain",
            "description",
            "family",
            "size",
            "used",
        ]

    def get_family(self, subnet) -> int:
        return subnet.network.version

    def get_size(self, subnet) -> int:
        return ipam.usable_size(subnet.network)

    def get_used(self, subnet) -> int:
        used = getattr(subnet, "used", None)  # annotated by the list; counted after a write
        return subnet.addresses.count() if used is None else used


class SubnetDetailSerializer(SubnetSerializer):
    usage = serializers.SerializerMethodField()

    class Meta(SubnetSerializer.Meta):
        fields = [*SubnetSerializer.Meta.fields, "usage"]

    @extend_schema_field(UsageSerializer)
    def get_usage(self, subnet):
        return UsageSerializer(ipam.subnet_usage(subnet)).data


class IPRangeSerializer(PortalModelSerializer):
    subnet = ScopedPrimaryKeyField(queryset=Subnet.objects.all())
    subnet_network = serializers.CharField(source="subnet.network", read_only=True)
    start = AddressField()
    end = AddressField()
    size = serializers.IntegerField(read_only=True)
    used = serializers.SerializerMethodField()

    class Meta:
        model = IPRange
        fields = [
            "id",
            "subnet",
            "subnet_network",
            "start",
            "end",
            "kind",
            "description",
            "size",
            "used",
        ]

    def get_used(self, iprange) -> int:
        used = getattr(iprange, "used", None)
        if used is None:
            used = IPAddress.objects.filter(
                address__gte=iprange.start, address__lte=iprange.end
            ).count()
        return used


class IPAddressSerializer(PortalModelSerializer):
    address = AddressField()
    subnet = ScopedPrimaryKeyField(
        queryset=Subnet.objects.all(),
        required=False,
        allow_null=True,
        help_text="Omit it to use the subnet (of yours) that contains the address.",
    )
    subnet_network = serializers.CharField(source="subnet.network", read_only=True)
    interface = ScopedPrimaryKeyField(
        queryset=Interface.objects.all(), required=False, allow_null=True
    )
    interface_name = serializers.CharField(
        source="interface.name", read_only=True, default=None, allow_null=True
    )
    server = serializers.CharField(
        source="interface.server.hostname", read_only=True, default=None, allow_null=True
    )

    class Meta:
        model = IPAddress
        fields = [
            "id",
            "address",
            "subnet",
            "subnet_network",
            "interface",
            "interface_name",
            "server",
            "status",
            "dns_name",
            "description",
            "created",
        ]
        read_only_fields = ["created"]


class AllocateSerializer(serializers.Serializer):
    interface = ScopedPrimaryKeyField(
        queryset=Interface.objects.all(), required=False, allow_null=True
    )
    status = serializers.ChoiceField(
        choices=IPAddress.Status.choices, default=IPAddress.Status.ACTIVE
    )
    dns_name = serializers.CharField(max_length=253, required=False, default="", allow_blank=True)
    description = serializers.CharField(
        max_length=200, required=False, default="", allow_blank=True
    )


# Viewsets ---------------------------------------------------------------------------------------


class IpamWriteMixin:
    """create/update/destroy through inventory.ipam, whose checks explain conflicts on fields."""

    create_service = update_service = delete_service = None

    def perform_create(self, serializer):
        serializer.instance = self.create_service(
            user=self.request.user, **serializer.validated_data
        )

    def perform_update(self, serializer):
        serializer.instance = self.update_service(
            serializer.instance, user=self.request.user, **serializer.validated_data
        )

    def perform_destroy(self, instance):
        self.delete_service(instance, user=self.request.user)


class AllocateMixin:
    action_permissions = {"allocate": "inventory.add_ipaddress"}

    def _allocate(self, request, **target):
        body = AllocateSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        ip = ipam.allocate_address(user=request.user, **target, **body.validated_data)
        data = IPAddressSerializer(ip, context=self.get_serializer_context()).data
        return Response(data, status=status.HTTP_201_CREATED)


class SubnetViewSet(IpamWriteMixin, AllocateMixin, viewsets.ModelViewSet, ScopedViewSet):
    base_queryset = Subnet.objects.select_related("tenant")
    filterset_class = SubnetFilterSet
    ordering = ["network"]
    ordering_fields = ["network", "name", "vlan", "id"]
    create_service = staticmethod(ipam.create_subnet)
    update_service = staticmethod(ipam.update_subnet)
    delete_service = staticmethod(ipam.delete_subnet)

    def get_queryset(self):
        queryset = super().get_queryset()
        return ipam.with_used(queryset) if self.action == "list" else queryset

    def get_serializer_class(self):
        return SubnetDetailSerializer if self.action == "retrieve" else SubnetSerializer

    @extend_schema(
        request=AllocateSerializer,
        responses={201: IPAddressSerializer},
        description="Record the next free address of the subnet, skipping the gateway and its "
        "DHCP and reserved ranges. Parallel calls never get the same address; a full subnet "
        "answers 400.",
    )
    @action(detail=True, methods=["post"])
    def allocate(self, request, pk=None):
        return self._allocate(request, subnet=self.get_object())


class IPRangeViewSet(IpamWriteMixin, AllocateMixin, viewsets.ModelViewSet, ScopedViewSet):
    base_queryset = IPRange.objects.select_related("subnet")
    serializer_class = IPRangeSerializer
    filterset_class = IPRangeFilterSet
    ordering = ["start"]
    ordering_fields = ["start", "kind", "id"]
    create_service = staticmethod(ipam.create_range)
    update_service = staticmethod(ipam.update_range)
    delete_service = staticmethod(ipam.delete_range)

    def get_queryset(self):
        queryset = super().get_queryset()
        return ipam.ranges_with_used(queryset) if self.action == "list" else queryset

    @extend_schema(
        request=AllocateSerializer,
        responses={201: IPAddressSerializer},
        description="Record the next free address of the range. Parallel calls never get the "
        "same address; a full range answers 400.",
    )
    @action(detail=True, methods=["post"])
    def allocate(self, request, pk=None):
        return self._allocate(request, iprange=self.get_object())


class IPAddressViewSet(IpamWriteMixin, viewsets.ModelViewSet, ScopedViewSet):
    base_queryset = IPAddress.objects.select_related("subnet", "interface__server")
    serializer_class = IPAddressSerializer
    filterset_class = IPAddressFilterSet
    ordering = ["address"]
    ordering_fields = ["address", "status", "dns_name", "created", "id"]
    create_service = staticmethod(ipam.create_address)
    update_service = staticmethod(ipam.update_address)
    delete_service = staticmethod(ipam.delete_address)


def register(router):
    """Add this module's viewsets to the inventory API router."""
    router.register("subnets", SubnetViewSet, basename="subnet")
    router.register("ranges", IPRangeViewSet, basename="iprange")
    router.register("addresses", IPAddressViewSet, basename="ipaddress")

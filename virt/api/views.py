"""The virtualization API: thin viewsets that parse, check the action and call virt.services.

    /api/virt/pools/                  hypervisor pools: list (filters: name driver tenant shared),
                                      create; detail, update, delete. `password` is write-only
                                      (`has_password` says whether one is stored; absent on an
                                      update keeps it, empty clears it); tenant by slug, null =
                                      shared by every tenant (only an admin changes those)
    /api/virt/pools/{id}/sync/        POST -> 202 {job}: read hosts, VMs, templates, networks and
                                      storage into the portal (virt.sync_pool)
    /api/virt/hosts/, templates/, networks/, storage/
                                      what the sync read, read-only (filters: pool (name or id),
                                      name, uuid)
    /api/virt/vms/                    list (filters: pool state power_state tenant hostname host
                                      uuid), POST {name, pool, tenant, template, vcpus, memory,
                                      disk, storage, networks, install_profile, start} -> 202
                                      {vm, job}
    /api/virt/vms/{id}/               detail with its VIFs [{device, mac, network}]
    /api/virt/vms/{id}/power/         POST {action} -> 202 {job} (virt.operate_vm)
    /api/virt/vms/{id}/install/       POST {profile} -> 202 {job} (virt.install_vm)
    /api/virt/vms/{id}/migrate/       POST {host: name or UUID} -> 202 {job} (virt.pool_migrate)
    /api/virt/vms/{id}/destroy/       POST {confirm: the VM's host name} -> 202 {job}
                                      (virt.delete_vm)

A VM is never removed by a bare DELETE: DELETE (like PUT and PATCH) on /api/virt/vms/{id}/ answers
405, and destruction goes through destroy/ with its confirmation. Memory and disk are bytes or a
size such as "2G"; template, storage and networks are looked up by name or UUID within the chosen
pool, and anything not found there is a 400 naming the field. Every VM operation is a tracked job
on the "virt" queue (/api/jobs/{id}/). Another tenant's VM is not found (404).
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import MethodNotAllowed
from rest_framework.response import Response

from dcportal.api.views import ScopedViewSet
from virt import selectors, services
from virt.api import serializers as s
from virt.filtersets import (
    HostFilterSet,
    NetworkFilterSet,
    PoolFilterSet,
    StorageRepositoryFilterSet,
    VmFilterSet,
    VmTemplateFilterSet,
)
from virt.models import Host, Network, StorageRepository, VmTemplate

# The API says memory and disk where the services say memory_bytes and disk_bytes.
CREATE_ERROR_FIELDS = {"memory_bytes": "memory", "disk_bytes": "disk"}


def _renamed(error, names):
    """A service's ValidationError with its field keys spelled as the API's body spells them."""
    if not hasattr(error, "error_dict"):
        return error
    return DjangoValidationError(
        {names.get(field, field): messages for field, messages in error.error_dict.items()}
    )


def _accepted(view, job):
    body = s.JobAcceptedSerializer({"job": job}, context=view.get_serializer_context())
    return Response(body.data, status=status.HTTP_202_ACCEPTED)


class PoolViewSet(viewsets.ModelViewSet, ScopedViewSet):
    """Hypervisor pools. The password is write-only (`has_password` says whether one is
    stored); a pool without a tenant is shared: every tenant sees it, only an admin changes it."""

    serializer_class = s.PoolSerializer
    filterset_class = PoolFilterSet
    ordering_fields = ["name", "id", "last_sync"]
    action_permissions = {"sync": "sync_pool"}

    def get_queryset(self):
        return selectors.pools_for(self.request.user)

    def _reloaded(self, pool):
        # With the selector's counts, which the service's instance lacks.
        return self.get_queryset().get(pk=pool.pk)

    def perform_create(self, serializer):
        pool = services.create_pool(user=self.request.user, **serializer.validated_data)
        serializer.instance = self._reloaded(pool)

    def perform_update(self, serializer):
        pool = services.update_pool(
            serializer.instance, user=self.request.user, **serializer.validated_data
        )
        serializer.instance = self._reloaded(pool)

    def perform_destroy(self, instance):
        services.delete_pool(instance, user=self.request.user)

    @extend_schema(request=None, responses={202: s.JobAcceptedSerializer})
    @action(detail=True, methods=["post"])
    def sync(self, request, pk=None):
        """Read the pool's hosts, VMs, templates, networks and storage into the portal, as a
        tracked job on the "virt" queue."""
        job = services.enqueue_sync(user=request.user, pool=self.get_object())
        return _accepted(self, job)


class PoolObjectViewSet(viewsets.ReadOnlyModelViewSet, ScopedViewSet):
    """What the sync read from the pools the user sees; the hypervisor is the truth for it."""

    model = None
    ordering_fields = ["name", "id"]

    def get_queryset(self):
        return selectors.pool_objects(self.model, self.request.user).select_related("pool")


class HostViewSet(PoolObjectViewSet):
    model = Host
    serializer_class = s.HostSerializer
    filterset_class = HostFilterSet


class VmTemplateViewSet(PoolObjectViewSet):
    model = VmTemplate
    serializer_class = s.VmTemplateSerializer
    filterset_class = VmTemplateFilterSet


class NetworkViewSet(PoolObjectViewSet):
    model = Network
    serializer_class = s.NetworkSerializer
    filterset_class = NetworkFilterSet


class StorageRepositoryViewSet(PoolObjectViewSet):
    model = StorageRepository
    serializer_class = s.StorageRepositorySerializer
    filterset_class = StorageRepositoryFilterSet


class VmViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """VMs. Every change is a tracked job on the "virt" queue, answered 202."""

    serializer_class = s.VmSerializer
    filterset_class = VmFilterSet
    ordering_fields = ["id", "server__hostname", "state", "power_state", "created"]
    action_permissions = {
        "power": "operate_vm",
        "install": "install_vm",
        "migrate": "pool_migrate",
        "destroy_vm": "delete",
    }

    def get_queryset(self):
        return selectors.vms_for(self.request.user)

    def check_permissions(self, request):
        # DELETE (and PUT/PATCH) have no handler: destruction goes through destroy/ and its
        # confirmation. Say so to every caller, not a 403 to those who lack delete_vm.
        if self.action is None and request.user and request.user.is_authenticated:
            raise MethodNotAllowed(request.method)
        super().check_permissions(request)

    def _reloaded(self, vm):
        return self.get_queryset().get(pk=vm.pk)

    @extend_schema(request=s.VmCreateSerializer, responses={202: s.VmCreatedSerializer})
    def create(self, request):
        """Create a VM from a template of the pool: its inventory server (kind virtual), one
        VIF per network with MACs from the portal, and the "virt.create" job."""
        body = s.VmCreateSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            vm = services.create_vm(
                user=request.user,
                pool=data["pool"],
                name=data["name"],
                tenant=data.get("tenant"),
                template=data["template"],
                vcpus=data["vcpus"],
                memory_bytes=data["memory"],
                disk_bytes=data["disk"],
                storage=data.get("storage"),
                networks=data["networks"],
                install_profile=data.get("install_profile"),
                start=data["start"],
            )
        except DjangoValidationError as error:
            raise _renamed(error, CREATE_ERROR_FIELDS) from None
        answer = s.VmCreatedSerializer(
            {"vm": self._reloaded(vm), "job": vm.job}, context=self.get_serializer_context()
        )
        return Response(answer.data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=s.VmPowerSerializer, responses={202: s.JobAcceptedSerializer})
    @action(detail=True, methods=["post"])
    def power(self, request, pk=None):
        """Start, shut down or reboot (clean or hard)."""
        vm = self.get_object()
        body = s.VmPowerSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        job = services.vm_action(user=request.user, vm=vm, action=body.validated_data["action"])
        return _accepted(self, job)

    @extend_schema(request=s.VmInstallSerializer, responses={202: s.JobAcceptedSerializer})
    @action(detail=True, methods=["post"])
    def install(self, request, pk=None):
        """PXE-install the VM with a deploy profile; it returns to disk boot when done."""
        vm = self.get_object()
        body = s.VmInstallSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        job = services.install_vm(user=request.user, vm=vm, profile=body.validated_data["profile"])
        return _accepted(self, job)

    @extend_schema(request=s.VmMigrateSerializer, responses={202: s.JobAcceptedSerializer})
    @action(detail=True, methods=["post"])
    def migrate(self, request, pk=None):
        """Move the running VM to another host of its pool."""
        vm = self.get_object()
        context = {**self.get_serializer_context(), "vm": vm}
        body = s.VmMigrateSerializer(data=request.data, context=context)
        body.is_valid(raise_exception=True)
        job = services.migrate_vm(user=request.user, vm=vm, host=body.validated_data["host"])
        return _accepted(self, job)

    @extend_schema(
        request=s.VmDestroySerializer,
        responses={
            202: s.JobAcceptedSerializer,
            400: OpenApiResponse(description="confirm is not the VM's host name."),
        },
    )
    @action(detail=True, methods=["post"], url_path="destroy", url_name="destroy")
    def destroy_vm(self, request, pk=None):
        """Remove the VM from the hypervisor, then its server from the inventory. `confirm`
        must repeat the VM's host name."""
        vm = self.get_object()
        body = s.VmDestroySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        job = services.destroy_vm(user=request.user, vm=vm, confirm=body.validated_data["confirm"])
        return _accepted(self, job)

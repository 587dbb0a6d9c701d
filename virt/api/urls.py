"""Routes of the virtualization API under /api/virt/ (the endpoints: virt.api.views)."""

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from virt.api import views

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("pools", views.PoolViewSet, basename="virt-pool")
router.register("hosts", views.HostViewSet, basename="virt-host")
router.register("templates", views.VmTemplateViewSet, basename="virt-vmtemplate")
router.register("networks", views.NetworkViewSet, basename="virt-network")
router.register("storage", views.StorageRepositoryViewSet, basename="virt-storagerepository")
router.register("vms", views.VmViewSet, basename="virt-vm")

urlpatterns = [path("", include(router.urls))]

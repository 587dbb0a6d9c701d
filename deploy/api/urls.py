from django.urls import include, path
from rest_framework.routers import DefaultRouter

from deploy.api import build, catalogue, dhcp

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
for module in (catalogue, build, dhcp):
    module.register(router)

urlpatterns = [
    *catalogue.urlpatterns,
    *build.urlpatterns,
    *dhcp.urlpatterns,
    path("", include(router.urls)),
]

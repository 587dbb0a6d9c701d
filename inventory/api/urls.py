from django.urls import include, path
from rest_framework.routers import DefaultRouter

from inventory.api import dhcpd, ipam, power, register, servers

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
for module in (servers, ipam, register, dhcpd, power):
    module.register(router)

urlpatterns = [
    *servers.urlpatterns,
    *ipam.urlpatterns,
    *register.urlpatterns,
    *dhcpd.urlpatterns,
    *power.urlpatterns,
    path("", include(router.urls)),
]

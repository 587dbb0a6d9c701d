from django.urls import path

from dcportal.views import app_index
from deploy import build_views, catalogue_views, dhcp_views

app_name = "deploy"

urlpatterns = [
    path(
        "",
        app_index,
        {
            "app_label": "deploy",
            "title": "Deploy",
            "description": (
                "PXE/iPXE boot, DHCP configurations, install templates and the build state machine."
            ),
        },
        name="index",
    ),
    *catalogue_views.urlpatterns,
    *build_views.urlpatterns,
    *dhcp_views.urlpatterns,
]

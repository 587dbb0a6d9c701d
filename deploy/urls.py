from django.urls import path

from dcportal.views import app_index

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
]

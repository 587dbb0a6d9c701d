"""Portal pages of the DHCP configurations."""

from django.urls import path

from dcportal.views import app_index

urlpatterns = [
    path(
        "dhcp/",
        app_index,
        {"app_label": "deploy", "title": "DHCP", "description": "DHCP configurations."},
        name="dhcp",
    ),
]

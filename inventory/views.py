"""Portal pages for servers."""

from django.urls import path

from dcportal.views import app_index

urlpatterns = [
    path(
        "",
        app_index,
        {
            "app_label": "inventory",
            "title": "Inventory",
            "description": "Servers by SMBIOS UUID and serial, their facts, interfaces and IPAM.",
        },
        name="index",
    ),
]

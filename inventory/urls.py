from django.urls import path

from dcportal.views import app_index

app_name = "inventory"

urlpatterns = [
    path(
        "",
        app_index,
        {
            "app_label": "inventory",
            "title": "Inventory",
            "description": (
                "Servers by SMBIOS UUID and serial, their facts, interfaces and IP "
                "address management."
            ),
        },
        name="index",
    ),
]

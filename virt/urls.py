from django.urls import path

from dcportal.views import app_index

app_name = "virt"

urlpatterns = [
    path(
        "",
        app_index,
        {
            "app_label": "virt",
            "title": "Virtualization",
            "description": (
                "Xen pools through XenAPI and libvirt hypervisors; VMs are inventory servers too."
            ),
        },
        name="index",
    ),
]

"""The unauthenticated boot and install-callback endpoints (each name is in PUBLIC_URL_NAMES)."""

from django.urls import path

from deploy.boot import views

app_name = "boot"

urlpatterns = [
    path("ipxe", views.chain, name="ipxe"),
    path("ipxe/<str:mac>", views.ipxe_mac, name="ipxe-mac"),
    path("pxelinux.cfg/<str:name>", views.pxelinux, name="pxelinux"),
    path("grub/<str:name>", views.grub, name="grub"),
    path("files/<path:path>", views.boot_file, name="file"),
    path("build/<str:token>/progress", views.progress, name="progress"),
    path("build/<str:token>/done", views.done, name="done"),
    path("build/<str:token>/failed", views.failed, name="failed"),
    path("build/<str:token>/<str:name>", views.template, name="template"),
]

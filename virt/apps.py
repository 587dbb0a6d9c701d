from django.apps import AppConfig


class VirtConfig(AppConfig):
    name = "virt"
    verbose_name = "Virtualization"

from django.apps import AppConfig


class VirtConfig(AppConfig):
    name = "virt"
    verbose_name = "Virtualization"

    def ready(self):
        from deploy.signals import build_finished
        from virt import power

        build_finished.connect(_build_finished, dispatch_uid="virt.build_finished")
        power.register()

    def housekeeping(self):
        """Periodic upkeep (run by `manage.py housekeeping`): settle VMs whose job ended
        without finishing them, and queue the pools' due syncs."""
        from virt import services

        lines = services.settle_stale_vms()
        return lines + [f"queued {job.title}" for job in services.enqueue_due_syncs()]


def _build_finished(sender, *, server_id, state, message="", **kwargs):
    from virt import services

    services.build_finished(server_id=server_id, state=state, message=message)

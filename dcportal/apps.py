from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.module_loading import autodiscover_modules


def _sync_roles(sender, **kwargs):
    # Runs after every migrate, once all apps' permissions exist, so roles pick up new actions.
    from dcportal.rbac import sync_roles

    sync_roles()


class DcportalConfig(AppConfig):
    name = "dcportal"
    verbose_name = "Platform"

    def ready(self):
        from dcportal import checks, login  # noqa: F401  (checks registers system checks)

        login.connect()
        # Every app's job kinds are registered wherever jobs run (web and workers alike).
        autodiscover_modules("jobs")
        post_migrate.connect(_sync_roles, dispatch_uid="dcportal_sync_roles")

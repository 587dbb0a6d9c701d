from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _create_builtin_templates(sender, **kwargs):
    from deploy.defaults import create_builtin_templates

    create_builtin_templates(**kwargs)


class DeployConfig(AppConfig):
    name = "deploy"
    verbose_name = "Deployment"

    def ready(self):
        post_migrate.connect(
            _create_builtin_templates, sender=self, dispatch_uid="deploy_builtin_templates"
        )
        from deploy import autosign  # noqa: F401  (registers the CA's build-token autosign)

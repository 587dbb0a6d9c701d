from django.core.checks import Error, Tags, register
from django.core.exceptions import ImproperlyConfigured


@register(Tags.security, deploy=True)
def encryption_key(app_configs, **kwargs):
    from dcportal import secrets

    try:
        secrets.fernet()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="dcportal.E001")]
    return []


@register(Tags.models)
def every_model_declares_tenancy(app_configs, **kwargs):
    from django.apps import apps

    errors = []
    for label in ("dcportal", "inventory", "deploy", "virt", "ca"):
        for model in apps.get_app_config(label).get_models():
            if not hasattr(model, "tenancy"):
                errors.append(
                    Error(
                        f"{model._meta.label} does not declare `tenancy`",
                        hint="Set tenancy = 'tenant' (a path to Tenant) or GLOBAL.",
                        obj=model,
                        id="dcportal.E002",
                    )
                )
    return errors

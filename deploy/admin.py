from django.contrib import admin
from django.core.exceptions import ValidationError

from dcportal.admin import AuditedAdmin
from deploy.catalogue import check_content
from deploy.models import OperatingSystem, Parameter, Profile, ServerDeploy, Template


@admin.register(OperatingSystem)
class OperatingSystemAdmin(AuditedAdmin):
    list_display = ["name", "family", "version", "architecture", "tenant"]
    list_filter = ["family", "architecture", "tenant"]
    search_fields = ["name", "version"]


@admin.register(Template)
class TemplateAdmin(AuditedAdmin):
    list_display = ["name", "kind", "builtin", "tenant", "updated"]
    list_filter = ["kind", "builtin", "tenant"]
    search_fields = ["name", "description"]
    readonly_fields = ["builtin", "updated"]

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)

        class CheckedForm(form):
            # The same compile check as the portal and the API: a syntax error with its line.
            def clean_content(self):
                content = self.cleaned_data["content"]
                try:
                    check_content(content)
                except ValidationError as exc:
                    raise ValidationError(exc.message_dict["content"]) from None
                return content

        return CheckedForm


@admin.register(Profile)
class ProfileAdmin(AuditedAdmin):
    list_display = ["name", "os", "install_template", "tenant"]
    list_filter = ["os__family", "tenant"]
    search_fields = ["name"]
    autocomplete_fields = ["os"]


@admin.register(Parameter)
class ParameterAdmin(AuditedAdmin):
    list_display = ["name", "value", "tenant", "description"]
    list_filter = ["tenant"]
    search_fields = ["name", "description"]


@admin.register(ServerDeploy)
class ServerDeployAdmin(AuditedAdmin):
    list_display = ["server", "profile", "next_boot", "state", "stage", "progress", "updated"]
    list_filter = ["next_boot", "state", "profile"]
    search_fields = ["server__hostname"]
    # The build token's nonce and hash never leave the database.
    exclude = ["token_nonce", "token_hash"]
    readonly_fields = [
        "token_expires",
        "build_started",
        "booted",
        "template_fetched",
        "last_report",
        "finished",
        "job",
        "updated",
    ]
    raw_id_fields = ["server"]

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django_rq.admin import QueueAdmin
from django_rq.models import Dashboard

from dcportal import audit, rbac
from dcportal.login import LockoutMixin
from dcportal.models import (
    ApiToken,
    AuditEvent,
    Credential,
    Job,
    JobLog,
    Role,
    Tenant,
    User,
    UserPreference,
)


class AdminLoginForm(LockoutMixin, AdminAuthenticationForm):
    """Lets in whoever PortalAdminSite.has_permission lets in: the admin role, not is_staff."""

    def confirm_login_allowed(self, user):
        AuthenticationForm.confirm_login_allowed(self, user)
        if not rbac.is_global(user):
            raise ValidationError(
                self.error_messages["invalid_login"],
                code="invalid_login",
                params={"username": self.username_field.verbose_name},
            )


admin.site.login_form = AdminLoginForm


class AuditedAdmin(admin.ModelAdmin):
    """Changes made in Django admin land in the audit trail like any other."""

    def save_model(self, request, obj, form, change):
        before = audit.snapshot(type(obj).objects.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)
        request._dcportal_audit = (before, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        obj = form.instance
        before, change = request._dcportal_audit
        if change:
            after = audit.snapshot(obj)
            if audit.diff(type(obj), before, after):
                audit.record(
                    user=request.user, action="update", obj=obj, before=before, after=after
                )
        else:
            audit.created(user=request.user, obj=obj)

    def delete_model(self, request, obj):
        before, pk = audit.snapshot(obj), obj.pk
        super().delete_model(request, obj)
        obj.pk = pk
        audit.deleted(user=request.user, obj=obj, before=before)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(User)
class PortalUserAdmin(AuditedAdmin, UserAdmin):
    list_display = ["username", "email", "is_active", "is_superuser", "last_login"]


@admin.register(Tenant)
class TenantAdmin(AuditedAdmin):
    list_display = ["name", "slug", "created"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["members", "groups"]


@admin.register(Role)
class RoleAdmin(AuditedAdmin):
    list_display = ["name", "rank", "builtin", "description"]
    filter_horizontal = ["permissions", "users", "groups"]

    def get_readonly_fields(self, request, obj=None):
        # Built-in roles are kept by sync_roles; only who holds them is edited here.
        if obj is not None and obj.builtin:
            return ["name", "rank", "description", "permissions"]
        return []

    def has_delete_permission(self, request, obj=None):
        return obj is None or not obj.builtin


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    list_display = ["name", "user", "prefix", "write", "created", "expires", "last_used", "revoked"]
    list_filter = ["write"]
    search_fields = ["name", "user__username", "prefix"]
    exclude = ["key_hash"]


@admin.register(Credential)
class CredentialAdmin(AuditedAdmin):
    list_display = ["name", "tenant", "kind", "username", "updated"]
    list_filter = ["kind", "tenant"]
    search_fields = ["name", "username"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = [
        "time",
        "actor_name",
        "via",
        "action",
        "verb",
        "content_type",
        "object_repr",
        "request_id",
    ]
    list_filter = ["action", "via", "content_type"]
    search_fields = ["actor_name", "object_repr", "object_id", "request_id"]


class JobLogInline(admin.TabularInline):
    model = JobLog
    extra = 0
    can_delete = False
    readonly_fields = ["time", "level", "message"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "queue", "status", "progress", "user", "created", "finished"]
    list_filter = ["status", "queue", "kind"]
    search_fields = ["kind", "object_repr", "request_id"]
    inlines = [JobLogInline]


@admin.register(JobLog)
class JobLogAdmin(ReadOnlyAdmin):
    list_display = ["job", "time", "level", "message"]
    list_filter = ["level"]


@admin.register(UserPreference)
class UserPreferenceAdmin(ReadOnlyAdmin):
    list_display = ("user", "key", "updated")
    search_fields = ("user__username", "key")


class AdminOnlyQueueAdmin(QueueAdmin):
    """django-rq's queue dashboard with every view, its stats.json included, behind this
    site's admin check: queue counts span all tenants."""

    def get_urls(self):
        patterns = super().get_urls()
        for pattern in patterns:
            pattern.callback = self.admin_site.admin_view(pattern.callback)
        return patterns


if admin.site.is_registered(Dashboard):
    admin.site.unregister(Dashboard)
admin.site.register(Dashboard, AdminOnlyQueueAdmin)

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig


class PortalAdminSite(admin.AdminSite):
    """Django admin for admins only: it works across tenants, so tenant-scoped users stay out."""

    site_header = "dcportal administration"
    site_title = "dcportal admin"

    def has_permission(self, request):
        from dcportal.rbac import is_global

        return request.user.is_active and is_global(request.user)


class PortalAdminConfig(AdminConfig):
    default_site = "dcportal.admin_site.PortalAdminSite"

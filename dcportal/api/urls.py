from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import APIRootView, DefaultRouter

from dcportal.api import views
from dcportal.api.permissions import Authenticated


class RootView(APIRootView):
    """The API's index of links: any logged-in user (ActionPermission needs a model)."""

    permission_classes = [Authenticated]


router = DefaultRouter()
router.APIRootView = RootView
router.register("tenants", views.TenantViewSet, basename="tenant")
router.register("roles", views.RoleViewSet, basename="role")
router.register("tokens", views.ApiTokenViewSet, basename="apitoken")
router.register("credentials", views.CredentialViewSet, basename="credential")
router.register("audit", views.AuditEventViewSet, basename="auditevent")
router.register("jobs", views.JobViewSet, basename="job")

urlpatterns = [
    path("inventory/", include("inventory.api.urls")),
    path("deploy/", include("deploy.api.urls")),
    path("ca/", include("ca.api.urls")),
    path("virt/", include("virt.api.urls")),
    path("", include(router.urls)),
    path("me/", views.MeView.as_view(), name="me"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
]


def api_urlpatterns(patterns):
    """API views authenticate through DRF (session or token) and answer 401/403 in JSON
    themselves, so the portal's login redirect must not intercept them."""
    for pattern in patterns:
        if hasattr(pattern, "url_patterns"):
            api_urlpatterns(pattern.url_patterns)
        else:
            pattern.callback = login_not_required(pattern.callback)
    return patterns

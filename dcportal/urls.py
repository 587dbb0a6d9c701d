from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from dcportal import views
from dcportal.api import urls as api_urls
from dcportal.api.urls import api_urlpatterns
from dcportal.login import PortalLoginForm

# URL names reachable without login, each with its own check (boot files, install callbacks).
# A test walks every URL pattern and fails on any other that answers an anonymous client.
PUBLIC_URL_NAMES = frozenset(
    {
        # The inventory agent script: holds no secret (the token is given when it is run) and
        # must be fetchable by a bare machine with `wget -qO- …/inventory/agent.sh | sh`.
        "inventory:agent",
        # Boot: what firmware and installers fetch. Per-MAC scripts carry no secret but the
        # build token of a server in build mode; templates and callbacks need that token.
        "boot:ipxe",
        "boot:ipxe-mac",
        "boot:pxelinux",
        "boot:grub",
        "boot:file",
        "boot:template",
        "boot:progress",
        "boot:done",
        "boot:failed",
        # The CA's public face: certificates and CRLs (public by nature), and the CSR a
        # server in build mode submits with its build token.
        "pki:authority-pem",
        "pki:authority-der",
        "pki:crl-der",
        "pki:crl-pem",
        "pki:autosign",
    }
)
# The pages that log a user in are public by nature.
AUTHENTICATION_URL_NAMES = frozenset({"login", "admin:login"})

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            redirect_authenticated_user=True, authentication_form=PortalLoginForm
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("jobs/", views.job_list, name="jobs"),
    path("jobs/<int:pk>/", views.job_detail, name="job"),
    path("jobs/<int:pk>/cancel/", views.job_cancel, name="job-cancel"),
    path("audit/", views.audit_list, name="audit"),
    path("tokens/", views.token_list, name="tokens"),
    path("prefs/columns/<slug:name>/", views.table_columns, name="table-columns"),
    path("tokens/<int:pk>/revoke/", views.token_revoke, name="token-revoke"),
    path("inventory/", include("inventory.urls")),
    path("deploy/", include("deploy.urls")),
    path("virt/", include("virt.urls")),
    path("ca/", include("ca.urls")),
    path("boot/", include("deploy.boot.urls")),
    path("pki/", include("ca.public_urls")),
    path("api/", include((api_urlpatterns(api_urls.urlpatterns), "api"))),
    path("admin/", admin.site.urls),
]

handler400 = "dcportal.errors.bad_request"
handler404 = "dcportal.errors.not_found"
handler500 = "dcportal.errors.server_error"

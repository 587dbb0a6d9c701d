"""The unauthenticated boot and install-callback endpoints (each name is in PUBLIC_URL_NAMES)."""

app_name = "boot"

urlpatterns = []

"""The CA's public endpoints: certificates, CRLs and build-token autosign (PUBLIC_URL_NAMES)."""

app_name = "pki"

urlpatterns = []

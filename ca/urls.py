from django.urls import path

from dcportal.views import app_index

app_name = "ca"

urlpatterns = [
    path(
        "",
        app_index,
        {
            "app_label": "ca",
            "title": "Certificates",
            "description": (
                "Certificate authorities, host keys and CSRs, signing, revocation and CRLs."
            ),
        },
        name="index",
    ),
]

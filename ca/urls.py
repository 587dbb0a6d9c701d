from django.urls import path

from ca import views

app_name = "ca"

urlpatterns = [
    path("", views.authority_list, name="index"),
    path("authorities/new/", views.authority_create, name="authority-create"),
    path("authorities/import/", views.authority_import, name="authority-import"),
    path("authorities/<int:pk>/", views.authority_detail, name="authority"),
    path("authorities/<int:pk>/edit/", views.authority_edit, name="authority-edit"),
    path("authorities/<int:pk>/crl/", views.authority_crl, name="authority-crl"),
    path("authorities/<int:pk>/export/", views.authority_export, name="authority-export"),
    path("authorities/<int:pk>/revoke/", views.authority_revoke, name="authority-revoke"),
    path("certificates/", views.certificate_list, name="certificates"),
    path("certificates/bulk/", views.certificate_bulk, name="certificate-bulk"),
    path("certificates/<int:pk>/", views.certificate_detail, name="certificate"),
    path("certificates/<int:pk>/pem/", views.certificate_pem, name="certificate-pem"),
    path("certificates/<int:pk>/revoke/", views.certificate_revoke, name="certificate-revoke"),
    path("certificates/<int:pk>/renew/", views.certificate_renew, name="certificate-renew"),
    path("certificates/<int:pk>/key/", views.certificate_key, name="certificate-key"),
    path("requests/", views.request_list, name="requests"),
    path("requests/new/", views.request_create, name="request-create"),
    path("requests/<int:pk>/", views.request_detail, name="request"),
    path("requests/<int:pk>/sign/", views.request_sign, name="request-sign"),
    path("requests/<int:pk>/reject/", views.request_reject, name="request-reject"),
    path("expiring/", views.expiring, name="expiring"),
]

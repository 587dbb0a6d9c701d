"""The CA's public endpoints: certificates, CRLs and build-token autosign (PUBLIC_URL_NAMES)."""

from django.urls import path

from ca import public_views

app_name = "pki"

urlpatterns = [
    path("autosign/<str:token>", public_views.autosign, name="autosign"),
    path("<slug:slug>.pem", public_views.authority_pem, name="authority-pem"),
    path("<slug:slug>.crt", public_views.authority_der, name="authority-der"),
    path("<slug:slug>.crl", public_views.crl_der, name="crl-der"),
    path("<slug:slug>.crl.pem", public_views.crl_pem, name="crl-pem"),
]

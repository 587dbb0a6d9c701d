from django.urls import path

from deploy import build_views, catalogue_views, dhcp_views

app_name = "deploy"

urlpatterns = [
    path("", catalogue_views.index, name="index"),
    *catalogue_views.urlpatterns,
    *build_views.urlpatterns,
    *dhcp_views.urlpatterns,
]

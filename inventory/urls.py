from inventory import enrolment_views, ipam_views, views

app_name = "inventory"

urlpatterns = [*views.urlpatterns, *ipam_views.urlpatterns, *enrolment_views.urlpatterns]

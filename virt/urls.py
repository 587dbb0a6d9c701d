from virt import views

app_name = "virt"

urlpatterns = views.urlpatterns

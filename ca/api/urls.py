from django.urls import include, path
from rest_framework.routers import DefaultRouter

from ca.api import views

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
views.register(router)

urlpatterns = [path("", include(router.urls))]

"""Portal pages."""

urlpatterns = []

"""Portal pages (filled in by the inventory work)."""

urlpatterns = []

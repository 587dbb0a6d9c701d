"""API endpoints (filled in by the inventory work)."""

urlpatterns = []


def register(router):
    """Add this module's viewsets to the inventory API router."""

"""REST API."""

urlpatterns = []


def register(router):
    pass

"""Error pages: JSON in the API's one error shape under /api/, HTML elsewhere."""

from django.http import JsonResponse
from django.views import defaults

from dcportal.api.errors import error_body


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(404, "not_found", "Not found."), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(500, "server_error", "Internal server error."), status=500)
    return defaults.server_error(request)

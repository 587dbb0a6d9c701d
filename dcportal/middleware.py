import ipaddress
import re

from django.conf import settings

from dcportal import requestcontext

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def client_address(request):
    """The client's address; X-Forwarded-For is only believed from a configured trusted proxy."""
    remote = request.META.get("REMOTE_ADDR", "")
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if forwarded and _is_trusted_proxy(remote):
        candidate = forwarded.split(",")[-1].strip()
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            pass
    return remote


def _is_trusted_proxy(address):
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net, strict=False) for net in settings.TRUSTED_PROXIES)


class RequestContextMiddleware:
    """Gives every request an id (X-Request-ID when well formed) and records its source."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else requestcontext.new_request_id()
        path = request.path_info
        via = (
            "api" if path.startswith("/api/") else "admin" if path.startswith("/admin/") else "web"
        )
        request.request_id = request_id
        with requestcontext.bound(
            request_id=request_id, source=client_address(request), via=via, token_id=None
        ):
            response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


class ServiceUnavailableMiddleware:
    """A view that loses PostgreSQL or Redis answers 503 with Retry-After, not 500.

    Outages raised before the view (a middleware loading the session or the user) reach
    dcportal.errors.server_error, which answers the same."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        from dcportal import errors  # errors imports the API's error shape, which needs apps

        if errors.is_outage(exception):
            return errors.service_unavailable(request, exception)
        return None

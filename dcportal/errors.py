"""Error pages: JSON in the API's one error shape under /api/, plain text where firmware and
installers read (/boot/, /pki/), HTML elsewhere.

A database or Redis outage is not a bug of the portal: it answers 503 with Retry-After, in the
same three shapes, and serves again on its own once the service is back (persistent database
connections are health-checked before reuse, Redis connections are made per command).
"""

import logging
import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.utils.html import escape
from django.views import defaults
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dcportal.api.errors import error_body

logger = logging.getLogger(__name__)

# What a lost or refused connection to PostgreSQL or Redis raises; not IntegrityError and
# friends, which are bugs or bad input and stay 500 / 400.
OUTAGES = (OperationalError, InterfaceError, RedisConnectionError, RedisTimeoutError)
RETRY_AFTER_SECONDS = 30
UNAVAILABLE = "The service is temporarily unavailable. Try again in a moment."
PLAIN_TEXT_PREFIXES = ("/boot/", "/pki/")

_UNAVAILABLE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Service unavailable</title></head>
<body><h1>Service unavailable (503)</h1><p>{message}</p><p>Request {request_id}</p></body></html>
"""


def is_outage(exc):
    return isinstance(exc, OUTAGES)


def service_unavailable(request, exc=None):
    """The 503 answer for `request`; `exc` is only logged, never shown (it may name hosts)."""
    if exc is not None:
        logger.warning(
            "503 for %s %s: %s: %s", request.method, request.path, type(exc).__name__, exc
        )
    body = error_body(503, "service_unavailable", UNAVAILABLE)
    path = request.path
    if path.startswith("/api/"):
        response = JsonResponse(body, status=503)
    elif path.startswith(PLAIN_TEXT_PREFIXES):
        response = HttpResponse(
            f"{UNAVAILABLE}\n", status=503, content_type="text/plain; charset=utf-8"
        )
    else:
        # No template: rendering one could run context processors that need the database.
        page = _UNAVAILABLE_PAGE.format(
            message=escape(UNAVAILABLE), request_id=escape(body["request_id"] or "")
        )
        response = HttpResponse(page, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def bad_request(request, exception=None):
    # Django's own refusals before any view ran (too many form fields, a request body over
    # DATA_UPLOAD_MAX_MEMORY_SIZE, a malformed multipart body...) are 400s of the API too.
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(400, "bad_request", "Bad request."), status=400)
    return defaults.bad_request(request, exception)


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(404, "not_found", "Not found."), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    # Django calls this handler while the exception is being handled: an outage raised by a
    # middleware (a session or user lookup before any view ran) ends up here too.
    if is_outage(sys.exception()):
        return service_unavailable(request)
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(500, "server_error", "Internal server error."), status=500)
    return defaults.server_error(request)

"""One JSON shape for every API error:

{"error": {"status": 400, "code": "invalid", "message": "...", "fields": {...}},
 "request_id": "..."}
"""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler

from dcportal import requestcontext


def _django_validation_error(exc):
    if hasattr(exc, "error_dict"):
        return exceptions.ValidationError(exc.message_dict)
    return exceptions.ValidationError({"non_field_errors": exc.messages})


def _fields(detail):
    if isinstance(detail, dict):
        return {key: _fields(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_fields(item) for item in detail]
    return str(detail)


def error_body(status, code, message, fields=None):
    error = {"status": status, "code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error, "request_id": requestcontext.current().request_id}


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        exc = _django_validation_error(exc)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
    if isinstance(exc, exceptions.ValidationError):
        fields = _fields(detail if isinstance(detail, dict) else {"non_field_errors": detail})
        message = "Invalid input."
    else:
        fields = None
        message = str(detail)
    code = getattr(exc, "default_code", "error")
    response.data = error_body(response.status_code, code, message, fields)
    return response

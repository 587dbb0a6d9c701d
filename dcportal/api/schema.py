"""The error answers every API operation can give, in the schema.

drf-spectacular documents what a view declares (mostly its success); the errors come from the
platform (authentication, permissions, the strict filters, dcportal.api.errors, the outage and
rate-limit answers) and are the same everywhere, so they are added here, once, in the one error
shape of dcportal.api.errors. (405 is not among them: it answers a method a path does not have,
which is no documented operation.)
"""

ERROR_SCHEMA = "Error"
ERROR_DETAIL_SCHEMA = "ErrorDetail"

ERROR_COMPONENTS = {
    ERROR_DETAIL_SCHEMA: {
        "type": "object",
        "properties": {
            "status": {"type": "integer", "description": "The HTTP status, repeated."},
            "code": {"type": "string", "description": "A stable code: invalid, not_found…"},
            "message": {"type": "string"},
            "fields": {
                "type": "object",
                "description": "Input errors by field name (non_field_errors for the rest): "
                "a list of messages, or the same shape again for nested input.",
                "additionalProperties": {},
            },
        },
        "required": ["status", "code", "message"],
    },
    ERROR_SCHEMA: {
        "type": "object",
        "properties": {
            "error": {"$ref": f"#/components/schemas/{ERROR_DETAIL_SCHEMA}"},
            "request_id": {
                "type": "string",
                "nullable": True,
                "description": "Also in the X-Request-ID header; quote it when reporting.",
            },
        },
        "required": ["error", "request_id"],
    },
}

RETRY_AFTER = {
    "Retry-After": {
        "schema": {"type": "integer"},
        "description": "Seconds to wait before trying again.",
    }
}

# status: (description, headers, which operations: all (None), those with a path parameter,
# those with a request body, those that take input (a body, query parameters or a write)).
ERROR_RESPONSES = {
    "400": ("Invalid input: field errors in error.fields.", None, "input"),
    "401": ("No valid credentials (missing, invalid, expired or revoked token).", None, None),
    "403": ("Not allowed: the action, or a read-only token asked to write.", None, None),
    "404": ("No such object, or one of a tenant you do not see.", None, "path"),
    "415": ("The request body is not in a media type the operation reads.", None, "body"),
    "429": (
        "Too many refused tokens (or, where limited, requests) from this address.",
        RETRY_AFTER,
        None,
    ),
    "503": ("The database or Redis is unavailable; try again.", RETRY_AFTER, None),
}

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
WRITE_METHODS = {"put", "post", "delete", "patch"}


def _has_parameter(operation, location):
    return any(parameter.get("in") == location for parameter in operation.get("parameters", ()))


def _applies(which, method, operation):
    if which is None:
        return True
    if which == "path":
        return _has_parameter(operation, "path")
    if which == "body":
        return "requestBody" in operation
    # A DELETE's body ({"ids": [...]}) is not in the schema (OpenAPI 3.0 gives it no meaning),
    # but it is read, and refused when wrong.
    return (
        method in WRITE_METHODS or "requestBody" in operation or _has_parameter(operation, "query")
    )


def _error_response(description, headers):
    response = {
        "description": description,
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}
        },
    }
    if headers:
        response["headers"] = headers
    return response


def _in_error_shape(response):
    """An error an operation documents itself, with its own description: its body is in the one
    error shape too (a view may add keys to it, as the template preview does)."""
    error = {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}
    content = response.setdefault("content", {})
    json = content.setdefault("application/json", {})
    schema = json.get("schema")
    if schema is None:
        json["schema"] = error
    elif schema != error:
        json["schema"] = {"anyOf": [schema, error]}


def add_error_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook: document the platform's error answers on every
    operation, in the one error shape."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for name, component in ERROR_COMPONENTS.items():
        schemas.setdefault(name, component)
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in HTTP_METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for status, (description, headers, which) in ERROR_RESPONSES.items():
                if status in responses:
                    _in_error_shape(responses[status])
                elif _applies(which, method, operation):
                    responses[status] = _error_response(description, headers)
    return result

"""Helpers shared by the IPAM tests (plain functions: fixtures stay in each test module)."""

from django.core.exceptions import ValidationError


def field_errors(exc: ValidationError):
    """{field: [messages]} of a service's ValidationError (non-field ones under __all__)."""
    return exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}


def assert_api_error(response, status, field=None, contains=None):
    """The API's one error shape, with `field` among its field errors (mentioning `contains`)."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "request_id"}
    error = body["error"]
    assert error["status"] == status
    if field is not None:
        assert field in error.get("fields", {}), error
        if contains is not None:
            assert contains in " ".join(error["fields"][field]), error
    return error

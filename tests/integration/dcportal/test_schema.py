import pytest
import yaml
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_openapi_schema_is_valid_without_warnings(tmp_path):
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    paths = schema["paths"]
    for expected in (
        "/api/tenants/",
        "/api/tokens/",
        "/api/credentials/",
        "/api/audit/",
        "/api/jobs/",
        "/api/jobs/{id}/cancel/",
        "/api/roles/{id}/assign/",
        "/api/me/",
    ):
        assert expected in paths
    assert "tokenAuth" in schema["components"]["securitySchemes"]
    # Write-only secrets are in the request body but never in a response component.
    assert "secret" in schema["components"]["schemas"]["CredentialRequest"]["properties"]
    assert "secret" not in schema["components"]["schemas"]["Credential"]["properties"]


@pytest.fixture(scope="module")
def schema():
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_every_operation_documents_the_platform_errors(schema):
    error = {"$ref": "#/components/schemas/Error"}
    for path, method, operation in operations(schema):
        responses = operation["responses"]
        for status in ("401", "403", "429", "503"):
            assert status in responses, (method, path, status)
        if "{" in path:
            assert "404" in responses, (method, path)
        if "requestBody" in operation:
            assert {"400", "415"} <= set(responses), (method, path)
        if method == "delete" or any(p["in"] == "query" for p in operation.get("parameters", ())):
            assert "400" in responses, (method, path)
        assert responses["401"]["content"]["application/json"]["schema"] == error
        assert "Retry-After" in responses["429"]["headers"]
    detail = schema["components"]["schemas"]["ErrorDetail"]
    assert detail["required"] == ["status", "code", "message"]
    assert "fields" in detail["properties"]


def test_an_error_a_view_documents_itself_keeps_its_text_in_the_error_shape(schema):
    error = {"$ref": "#/components/schemas/Error"}
    responses = schema["paths"]["/api/deploy/dhcp/{dhcp_format}/"]["get"]["responses"]
    assert responses["400"]["description"].startswith("Conflicts in the inventory")
    assert responses["400"]["content"]["application/json"]["schema"] == error
    # A template that does not render: the error shape with the preview's keys added.
    responses = schema["paths"]["/api/deploy/templates/{id}/preview/"]["post"]["responses"]
    assert responses["400"]["content"]["application/json"]["schema"] == {
        "anyOf": [{"$ref": "#/components/schemas/Preview"}, error]
    }


# Read-only fields that are null (or blank) for some rows: the schema must say so, or clients
# that validate answers against it reject real ones.
NULLABLE = [
    ("Authority", "tenant"),
    ("Authority", "parent"),
    ("CertificateRequest", "requested_by"),
    ("CertificateRequest", "decided_by"),
    ("Certificate", "issued_by"),
    ("Job", "tenant"),
    ("Job", "user"),
    ("Conflict", "server"),
    ("Conflict", "other_server"),
    ("Conflict", "resolved_by"),
    ("IPAddress", "interface_name"),
    ("IPAddress", "server"),
    ("ServerDeploy", "updated"),
]


@pytest.mark.parametrize(("component", "name"), NULLABLE)
def test_read_only_fields_that_can_be_null_are_nullable(schema, component, name):
    assert schema["components"]["schemas"][component]["properties"][name]["nullable"] is True


@pytest.mark.parametrize("component", ["Authority", "Certificate"])
def test_revocation_reason_may_be_blank(schema, component):
    reason = schema["components"]["schemas"][component]["properties"]["revocation_reason"]
    assert {"$ref": "#/components/schemas/BlankEnum"} in reason["oneOf"]

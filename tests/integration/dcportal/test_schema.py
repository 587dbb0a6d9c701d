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

"""POST /api/inventory/import/dhcpd/: upload or text, dry run, line-numbered 400s, permissions
and tenants, and its place in the OpenAPI schema."""

from io import StringIO

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from dcportal.models import AuditEvent
from inventory.models import Interface, IPAddress, IPRange, Server, Subnet
from tests import dhcpd_data

pytestmark = pytest.mark.django_db

URL = "/api/inventory/import/dhcpd/"


def counts():
    return [m.objects.count() for m in (Server, Interface, Subnet, IPRange, IPAddress, AuditEvent)]


def upload(name, content=None):
    data = content if content is not None else dhcpd_data.path(name).read_bytes()
    return SimpleUploadedFile(name, data, content_type="text/plain")


@pytest.fixture
def acme(tenants):
    return tenants[0]


def test_the_url_is_the_named_route():
    assert reverse("api:inventory-import-dhcpd") == URL


def test_upload_dry_run_then_import_then_unchanged(api, admin_user, acme):
    client = api.as_user(admin_user)
    before = counts()

    dry = client.post(
        URL,
        {"file": upload("cobbler.conf"), "tenant": "acme", "dry_run": "true"},
        format="multipart",
    )

    assert dry.status_code == 200, dry.json()
    body = dry.json()
    assert (body["source"], body["tenant"], body["dry_run"], body["applied"]) == (
        "cobbler.conf",
        "acme",
        True,
        False,
    )
    assert body["summary"] == {"create": 15, "update": 0, "unchanged": 0}
    server = next(c for c in body["changes"] if c["object"] == "web01.example.com")
    assert server == {
        "kind": "server",
        "action": "create",
        "object": "web01.example.com",
        "line": 48,
        "changes": {
            "hostname": [None, "web01.example.com"],
            "attributes.dhcp": [None, {"filename": "pxelinux.0", "next_server": "192.168.122.2"}],
        },
    }
    assert {
        "line": 29,
        "column": None,
        "message": 'class declarations are not imported: class "pxeclients"',
    } in body["warnings"]
    assert counts() == before

    done = client.post(URL, {"file": upload("cobbler.conf"), "tenant": "acme"}, format="multipart")

    assert done.status_code == 200
    assert done.json()["applied"] is True
    assert Server.objects.filter(tenant=acme).count() == 4

    again = client.post(URL, {"file": upload("cobbler.conf"), "tenant": "acme"}, format="multipart")

    assert again.json()["summary"] == {"create": 0, "update": 0, "unchanged": 15}


def test_text_in_a_json_body(api, admin_user, acme):
    response = api.as_user(admin_user).post(
        URL, {"text": dhcpd_data.text("ipv6.conf"), "tenant": "acme"}, format="json"
    )

    assert response.status_code == 200, response.json()
    assert response.json()["source"] == "text"
    assert Subnet.objects.filter(network="2001:db8:40::/64", tenant=acme).exists()


def test_errors_are_400_with_file_line_messages_and_nothing_written(api, admin_user, acme):
    client = api.as_user(admin_user)
    before = counts()

    response = client.post(
        URL, {"file": upload("bad_mac.conf"), "tenant": "acme"}, format="multipart"
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert [m.split(": ")[0] for m in error["fields"]["file"]] == [
        "bad_mac.conf:9",
        "bad_mac.conf:13",
    ]
    assert "'52:54:00:4g:00:02' is not an ethernet MAC address" in error["fields"]["file"][0]
    assert counts() == before


def test_import_errors_in_text_name_the_text_field(api, admin_user, acme):
    text = "host a {\n hardware ethernet 52:54:00:00:00:01;\n fixed-address 10.1.2.3;\n}\n"

    response = api.as_user(admin_user).post(URL, {"text": text, "tenant": "acme"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"]["text"] == [
        "text:3: host a: fixed-address 10.1.2.3 is outside every subnet (declare the subnet in "
        "the file or create it first)"
    ]


@pytest.mark.parametrize(
    "data",
    [
        {"tenant": "acme"},
        {"tenant": "acme", "text": "a;", "file": "x"},
    ],
)
def test_exactly_one_of_file_and_text(api, admin_user, acme, data):
    if "file" in data:
        data = {**data, "file": upload("x.conf", b"a;")}

    response = api.as_user(admin_user).post(URL, data, format="multipart")

    assert response.status_code == 400
    assert response.json()["error"]["fields"]["non_field_errors"] == [
        "Give exactly one of file or text."
    ]


def test_not_utf8_is_read_as_latin1(api, admin_user, acme):
    content = "# Konfiguration f\xfcr das Labor\nsubnet 10.7.0.0 netmask 255.255.0.0 { }\n"

    response = api.as_user(admin_user).post(
        URL,
        {"file": upload("latin1.conf", content.encode("latin-1")), "tenant": "acme"},
        format="multipart",
    )

    assert response.status_code == 200
    assert Subnet.objects.filter(network="10.7.0.0/16").exists()


def test_uploads_beyond_the_limit_are_refused(api, admin_user, acme, monkeypatch):
    monkeypatch.setattr("inventory.api.dhcpd.MAX_BYTES", 1024)

    response = api.as_user(admin_user).post(
        URL, {"file": upload("big.conf", b"a;\n" * 1000), "tenant": "acme"}, format="multipart"
    )

    assert response.status_code == 400
    assert response.json()["error"]["fields"]["file"] == [
        "Larger than 1,024 bytes; use manage.py import_dhcpd."
    ]


# Permissions and tenants ------------------------------------------------------------------------


def test_read_only_users_and_read_only_tokens_are_refused(api, make_user, admin_user, acme):
    viewer = make_user("viewer", roles=["read-only"], tenants=[acme])
    data = {"text": dhcpd_data.text("cobbler.conf"), "tenant": "acme", "dry_run": True}

    assert api.as_user(viewer).post(URL, data, format="json").status_code == 403
    assert api.as_user(admin_user, write=False).post(URL, data, format="json").status_code == 403
    assert Server.objects.count() == 0


def test_anonymous_is_refused(client):
    response = client.post(URL, {"text": "a;"}, content_type="application/json")

    assert response.status_code in (401, 403)


def test_operator_imports_into_own_tenant_and_not_another(api, make_user, tenants):
    acme, globex = tenants
    operator = make_user("op", roles=["operator"], tenants=[acme])
    client = api.as_user(operator)
    text = dhcpd_data.text("foreman.conf")

    other = client.post(URL, {"text": text, "tenant": "globex"}, format="json")

    assert other.status_code == 400
    assert other.json()["error"]["fields"]["tenant"] == ["No tenant 'globex'."]

    own = client.post(URL, {"text": text}, format="json")  # the only tenant is the default

    assert own.status_code == 200
    assert own.json()["tenant"] == "acme"
    assert set(Server.objects.values_list("tenant", flat=True)) == {acme.pk}


def test_requests_are_audited_as_api(api, admin_user, acme):
    api.as_user(admin_user).post(
        URL, {"text": dhcpd_data.text("ipv6.conf"), "tenant": "acme"}, format="json"
    )

    vias = set(
        AuditEvent.objects.filter(content_type__app_label="inventory").values_list("via", flat=True)
    )
    assert vias == {"api"}


# Schema ------------------------------------------------------------------------------------------


def test_schema_documents_the_upload():
    out = StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    schema = yaml.safe_load(out.getvalue())

    operation = schema["paths"][URL]["post"]
    assert operation["operationId"] == "inventory_import_dhcpd"
    assert set(operation["requestBody"]["content"]) == {
        "multipart/form-data",
        "application/x-www-form-urlencoded",
        "application/json",
    }
    assert "200" in operation["responses"] and "400" in operation["responses"]

"""The catalogue pages: lists (the portal's table: filters, sort, export) scoped to the user's
tenants, forms that show the services' field errors (template syntax errors with their line) on
their page and in the dialog, edit controls only where the user may use them, the template
preview and the template editor's live preview, and list pages whose query count does not grow
with rows."""

import csv
import html as html_lib
import io
import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from deploy import defaults
from deploy.models import OperatingSystem, Parameter, Template

from .catalogue_helpers import make_os, make_profile, make_server, make_template

pytestmark = pytest.mark.django_db


def get(client, url_name, *args, status=200, **params):
    response = client.get(reverse(url_name, args=args), params)
    assert response.status_code == status, response.content[:500]
    return response.content.decode()


def field_error(html, field):
    match = re.search(rf'id="id_{field}_error">([^<]*)<', html)
    return match.group(1) if match else None


@pytest.fixture
def catalogue(tenants):
    acme, globex = tenants
    return {
        "shared_os": make_os("rocky9"),
        "acme_os": make_os("acme-os", tenant=acme),
        "globex_os": make_os("globex-os", tenant=globex),
        "acme_ks": make_template("acme-ks", "kickstart", content="text\n", tenant=acme),
        "globex_ks": make_template("globex-ks", "kickstart", content="x", tenant=globex),
    }


def test_index_and_navigation(client, operator, catalogue, tenants):
    make_server(tenants[0], "node01", parameters={"a": 1})
    make_server(tenants[1], "gnode", parameters={"a": 1})
    client.force_login(operator)
    html = get(client, "deploy:index")
    assert re.search(r"<dt>Idle</dt><dd>1<", html)  # acme's server only
    for name in (
        "deploy:builds",
        "deploy:profiles",
        "deploy:oses",
        "deploy:templates",
        "deploy:parameters",
        "deploy:dhcp",
    ):
        assert f'href="{reverse(name)}"' in html
    assert re.search(r"Operating systems</a></dt><dd>2<", html)  # shared + acme, not globex


def listed(html, plural):
    """Names linked from the rows of a catalogue table, in order."""
    return re.findall(rf'<td class=""><a href="/deploy/{plural}/\d+/">([^<]+)</a>', html)


def test_lists_show_shared_and_own_tenant_only(client, operator, catalogue):
    client.force_login(operator)
    html = get(client, "deploy:oses")
    assert listed(html, "oses") == ["acme-os", "rocky9"]
    assert "Shared by every tenant" in html
    assert "<strong>2</strong> operating systems" in html
    filtered = get(client, "deploy:oses", name="acme")
    assert listed(filtered, "oses") == ["acme-os"]
    assert f'href="{reverse("deploy:os-create")}" data-dialog="New operating system"' in html
    # The tenant filter offers the operator's tenants only.
    assert '<option value="acme">Acme</option>' in html and "globex" not in html.lower()
    # Only the acme OS is theirs to edit (in the dialog); the shared one is the admins'.
    edit = reverse("deploy:os-edit", args=[catalogue["acme_os"].pk])
    assert f'href="{edit}" data-dialog="Edit acme-os"' in html
    assert reverse("deploy:os-edit", args=[catalogue["shared_os"].pk]) not in html


def test_list_filters_sort_and_export(client, operator, catalogue, tenants):
    make_os("deb12", family="debian", tenant=tenants[0])
    client.force_login(operator)
    assert listed(get(client, "deploy:oses", family="debian"), "oses") == ["deb12"]
    assert listed(get(client, "deploy:oses", shared="true"), "oses") == ["rocky9"]
    assert listed(get(client, "deploy:oses", tenant="acme"), "oses") == ["acme-os", "deb12"]
    assert listed(get(client, "deploy:oses", q="deb"), "oses") == ["deb12"]
    html = get(client, "deploy:oses", sort="-name")
    assert listed(html, "oses") == ["rocky9", "deb12", "acme-os"]
    assert 'aria-sort="descending"' in html
    # Another tenant's slug finds nothing, it does not reveal anything either.
    assert listed(get(client, "deploy:oses", tenant="globex"), "oses") == []
    assert "Unknown filter" in get(client, "deploy:oses", colour="red")
    assert "Cannot sort by" in get(client, "deploy:oses", sort="kernel")
    kinds = get(client, "deploy:templates", kind="kickstart", tenant="acme")
    assert listed(kinds, "templates") == ["acme-ks"]
    assert listed(get(client, "deploy:templates", kind="snippet", tenant="acme"), "templates") == []

    response = client.get(reverse("deploy:oses"), {"export": "csv", "sort": "name"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:2] == ["Name", "Family"]
    assert [row[0] for row in rows[1:]] == ["acme-os", "deb12", "rocky9"]
    response = client.get(reverse("deploy:parameters"), {"export": "json"})
    assert json.loads(b"".join(response.streaming_content)) == []


def test_list_pages_are_keyset_pages(client, admin_user):
    for n in range(55):
        Parameter.objects.create(name=f"p{n:02d}", value=n)
    client.force_login(admin_user)
    text = get(client, "deploy:parameters")
    first = listed(text, "parameters")
    assert len(first) == 50 and first == sorted(first)
    next_url = re.search(r'href="(\?[^"]*after=[^"]+)" hx-get', text)[1]
    text = client.get(reverse("deploy:parameters") + html_lib.unescape(next_url)).content.decode()
    assert listed(text, "parameters") == [f"p{n}" for n in range(50, 55)]
    damaged = get(client, "deploy:parameters", after="nonsense")
    assert "The page link is damaged" in damaged and listed(damaged, "parameters") == []


def test_other_tenants_objects_are_404(client, operator, catalogue):
    client.force_login(operator)
    for name, obj in (("deploy:os", "globex_os"), ("deploy:template", "globex_ks")):
        pk = catalogue[obj].pk
        get(client, name, pk, status=404)
        get(client, name + "-edit", pk, status=404)
        response = client.post(reverse(name + "-delete", args=[pk]))
        assert response.status_code == 404
    assert OperatingSystem.objects.filter(name="globex-os").exists()


def test_shared_objects_have_no_edit_controls_for_operators(
    client, operator, admin_user, catalogue
):
    pk = catalogue["shared_os"].pk
    client.force_login(operator)
    html = get(client, "deploy:os", pk)
    assert reverse("deploy:os-edit", args=[pk]) not in html
    assert reverse("deploy:os-delete", args=[pk]) not in html
    response = client.post(reverse("deploy:os-edit", args=[pk]), {"name": "x"})
    assert response.status_code == 403
    response = client.post(reverse("deploy:os-delete", args=[pk]))
    assert response.status_code == 403
    own = catalogue["acme_os"].pk
    assert reverse("deploy:os-edit", args=[own]) in get(client, "deploy:os", own)
    client.force_login(admin_user)
    assert reverse("deploy:os-edit", args=[pk]) in get(client, "deploy:os", pk)


def test_viewer_sees_no_controls(client, viewer, catalogue):
    client.force_login(viewer)
    html = get(client, "deploy:oses")
    assert reverse("deploy:os-create") not in html
    assert "data-dialog=" not in html and ">Edit<" not in html
    assert "Actions</span></th>" not in html
    assert client.get(reverse("deploy:os-create")).status_code == 403


def test_create_os_with_field_errors_then_valid(client, operator, tenants):
    client.force_login(operator)
    url = reverse("deploy:os-create")
    form = {
        "name": "deb12",
        "family": "debian",
        "version": "12",
        "architecture": "x86_64",
        "kernel": "/etc/shadow",
        "tenant": tenants[0].pk,
    }
    html = client.post(url, form).content.decode()
    assert "boot files" in field_error(html, "kernel")
    form["kernel"] = "debian12/linux"
    response = client.post(url, form)
    assert response.status_code == 302
    os = OperatingSystem.objects.get(name="deb12")
    assert os.tenant == tenants[0] and response.url == reverse("deploy:os", args=[os.pk])
    # The tenant list offers the operator's tenants only, and no "shared" choice.
    html = get(client, "deploy:os-create")
    assert "Acme" in html and "Globex" not in html and "Shared by every tenant" not in html


def test_template_syntax_error_shows_the_line(client, operator, tenants):
    client.force_login(operator)
    form = {
        "name": "broken",
        "kind": "kickstart",
        "content": "text\nreboot\n{% for x in y %}\n",
        "tenant": tenants[0].pk,
    }
    html = client.post(reverse("deploy:template-create"), form).content.decode()
    assert field_error(html, "content").startswith("Line 3:")
    assert not Template.objects.filter(name="broken").exists()


def test_edit_profile_parameters_json(client, operator, catalogue, tenants):
    profile = make_profile("web", catalogue["acme_os"], catalogue["acme_ks"], tenant=tenants[0])
    client.force_login(operator)
    url = reverse("deploy:profile-edit", args=[profile.pk])
    html = get(client, "deploy:profile-edit", profile.pk)
    assert "globex-ks" not in html and "globex-os" not in html
    form = {
        "name": "web",
        "os": catalogue["acme_os"].pk,
        "install_template": catalogue["acme_ks"].pk,
        "parameters": '{\n  "timezone": "Europe/Paris",\n}',
        "tenant": tenants[0].pk,
    }
    html = client.post(url, form).content.decode()
    assert field_error(html, "parameters").startswith("Line 3")
    form["parameters"] = '{"timezone": "Europe/Paris"}'
    assert client.post(url, form).status_code == 302
    profile.refresh_from_db()
    assert profile.parameters == {"timezone": "Europe/Paris"}


def test_parameter_values(client, admin_user):
    client.force_login(admin_user)
    url = reverse("deploy:parameter-create")
    for name, text, value in (
        ("tz", "UTC", "UTC"),
        ("cores", "8", 8),
        ("quoted", '"8"', "8"),
        ("keys", '["a", "b"]', ["a", "b"]),
    ):
        response = client.post(url, {"name": name, "value": text})
        assert response.status_code == 302, response.content[:300]
        parameter = Parameter.objects.get(name=name)
        assert parameter.value == value and parameter.tenant is None
    html = get(client, "deploy:parameter-edit", Parameter.objects.get(name="quoted").pk)
    assert "&quot;8&quot;" in html


def test_delete_in_use_is_refused_with_a_message(client, admin_user, catalogue):
    make_profile("uses-it", catalogue["shared_os"], catalogue["acme_ks"], tenant=None)
    client.force_login(admin_user)
    pk = catalogue["shared_os"].pk
    response = client.post(reverse("deploy:os-delete", args=[pk]), follow=True)
    assert "still used by: uses-it" in response.content.decode()
    assert OperatingSystem.objects.filter(pk=pk).exists()
    response = client.post(reverse("deploy:os-delete", args=[catalogue["acme_os"].pk]))
    assert response.status_code == 302 and response.url == reverse("deploy:oses")


def test_template_preview(client, operator, catalogue, tenants):
    make_server(tenants[0], "node01")
    make_server(tenants[1], "gnode")
    template = make_template(
        "hello", "kickstart", content="# {{ server.fqdn }}\n{{ nope }}\n", tenant=tenants[0]
    )
    client.force_login(operator)
    html = get(client, "deploy:template", template.pk, server="node01")
    assert "line 2: " in html.lower() and "nope" in html
    Template.objects.filter(pk=template.pk).update(content="# {{ server.fqdn }}\ntext\n")
    html = get(client, "deploy:template", template.pk, server="node01")
    assert '<pre class="mono" id="rendered"># node01.dc1.example.net\ntext\n</pre>' in html
    html = get(client, "deploy:template", template.pk, server="gnode")
    assert "No server of that name" in html and 'id="rendered"' not in html


def test_builtin_template_detail(client, viewer):
    defaults.create_builtin_templates()
    template = Template.objects.get(name="rhel9-kickstart")
    client.force_login(viewer)
    html = get(client, "deploy:template", template.pk)
    assert "%onerror" in html and "Shipped with dcportal" in html


def test_admin_pages(client, admin_user, tenants, catalogue):
    server = make_server(tenants[0], "node01", profile=None, parameters={"a": 1})
    client.force_login(admin_user)
    for model in ("operatingsystem", "template", "profile", "parameter", "serverdeploy"):
        assert client.get(reverse(f"admin:deploy_{model}_changelist")).status_code == 200
    html = get(client, "admin:deploy_serverdeploy_change", server.deploy.pk)
    assert "token_hash" not in html and "token_nonce" not in html
    response = client.post(
        reverse("admin:deploy_template_add"),
        {"name": "t", "kind": "kickstart", "content": "ok\n{{ x }\n", "description": ""},
    )
    assert response.status_code == 200 and "Line 2:" in response.content.decode()


def _populate(count, tenant):
    for _ in range(count):
        n = OperatingSystem.objects.count()
        os = make_os(f"os{n}", tenant=tenant)
        ks = make_template(f"ks{n}", "kickstart", content="x", tenant=tenant)
        make_profile(f"p{n}", os, ks, tenant=tenant)
        Parameter.objects.create(name=f"p{n}", value=n, tenant=tenant)


@pytest.mark.parametrize(
    "name",
    ["deploy:oses", "deploy:templates", "deploy:profiles", "deploy:parameters", "deploy:index"],
)
def test_list_query_count_does_not_grow_with_rows(name, client, operator, tenants):
    client.force_login(operator)

    def queries():
        get(client, name)
        with CaptureQueriesContext(connection) as captured:
            get(client, name)
        return len(captured)

    _populate(3, tenants[0])
    few = queries()
    _populate(20, tenants[0])
    assert queries() == few


HX = {"HTTP_HX_REQUEST": "true"}


def test_profile_form_in_the_dialog(client, operator, catalogue, tenants):
    profile = make_profile("web", catalogue["acme_os"], catalogue["acme_ks"], tenant=tenants[0])
    client.force_login(operator)
    url = reverse("deploy:profile-edit", args=[profile.pk])
    listing = get(client, "deploy:profiles")
    assert f'href="{url}" data-dialog="Edit web"' in listing
    assert f'href="{reverse("deploy:profile-create")}" data-dialog="New profile"' in listing
    # The page htmx loads into the dialog carries the form the dialog takes.
    response = client.get(url, **HX)
    assert response.status_code == 200 and "data-dialog-form" in response.content.decode()
    form = {
        "name": "web",
        "os": catalogue["acme_os"].pk,
        "install_template": catalogue["acme_ks"].pk,
        "parameters": '{"timezone": }',
        "tenant": tenants[0].pk,
    }
    response = client.post(url, form, **HX)
    text = response.content.decode()
    assert response.status_code == 200 and "data-dialog-form" in text
    assert field_error(text, "parameters").startswith("Line 1")
    assert re.search(r'class="has-errors"><label for="id_parameters"', text)
    profile.refresh_from_db()
    assert profile.parameters == {}

    form["parameters"] = '{"timezone": "UTC"}'
    response = client.post(url, form, **HX)
    assert response.status_code == 204
    event = json.loads(response["HX-Trigger"])["dcportal:saved"]
    assert event["location"] == reverse("deploy:profile", args=[profile.pk])
    assert "web" in event["message"]
    profile.refresh_from_db()
    assert profile.parameters == {"timezone": "UTC"}

    # Creating in the dialog answers the same way.
    form |= {"name": "db", "parameters": ""}
    response = client.post(reverse("deploy:profile-create"), form, **HX)
    assert response.status_code == 204 and "dcportal:saved" in response["HX-Trigger"]


EXTERNAL = re.compile(r'<(?:script[^>]*\ssrc|link[^>]*\shref)="(?:https?:)?//', re.I)


def assets_of(html):
    return re.findall(r'<(?:script[^>]*\ssrc|link[^>]*\shref)="([^"]+)"', html)


def test_template_editor_page(client, operator, catalogue, tenants):
    make_server(tenants[0], "node01")
    make_server(tenants[1], "gnode")
    client.force_login(operator)
    for url in (
        reverse("deploy:template-create"),
        reverse("deploy:template-edit", args=[catalogue["acme_ks"].pk]),
    ):
        html = client.get(url).content.decode()
        # The textarea stays the form's field; the editor is loaded on this page only.
        assert re.search(r'<form method="post" id="template-form"[^>]*data-guard', html)
        assert re.search(r'<textarea name="content"[^>]*id="id_content"', html)
        assert '<label for="id_content" id="id_content-label">' in html
        assert "/static/vendor/codemirror/codemirror.js" in html
        assert "/static/vendor/codemirror/mode/jinja2/jinja2.js" in html
        assert "/static/deploy/template-editor.js" in html
        assert not EXTERNAL.search(html), EXTERNAL.search(html)
        # The server picker suggests the servers the user may see, by host name.
        assert '<option value="node01"></option>' in html and "gnode" not in html
        assert '<label for="preview-server">Server</label>' in html
        # Every script and stylesheet it names is served by the portal itself.
        for asset in assets_of(html):
            assert asset.startswith("/static/"), asset
            response = client.get(asset)
            assert response.status_code == 200, asset
            if hasattr(response, "streaming_content"):
                b"".join(response.streaming_content)
    # Other pages do not load the editor.
    assert "codemirror" not in get(client, "deploy:templates")
    edit = reverse("deploy:template-edit", args=[catalogue["acme_ks"].pk])
    detail = get(client, "deploy:template", catalogue["acme_ks"].pk)
    # The template's Edit leads to the editor's page, not to the dialog.
    assert f'href="{edit}">Edit</a>' in detail and "codemirror" not in detail


def test_server_picker_suggestions(client, operator, tenants):
    make_server(tenants[0], "node01")
    make_server(tenants[0], "web01")
    make_server(tenants[1], "node99")
    client.force_login(operator)
    html = get(client, "deploy:template-servers", server="NO")
    assert html.strip() == '<option value="node01"></option>'


def preview(client, url, status, **data):
    response = client.post(url, {"fragment": "1", **data})
    assert response.status_code == status, response.content[:500]
    return response.content.decode()


def test_editor_preview_of_unsaved_content(client, operator, catalogue, tenants):
    make_server(tenants[0], "node01")
    make_server(tenants[1], "gnode")
    template = catalogue["acme_ks"]
    client.force_login(operator)
    url = reverse("deploy:template-preview", args=[template.pk])
    content = "# {{ server.fqdn }}\ntext\n"
    html = preview(client, url, 200, server="node01", content=content)
    assert '<pre class="mono" id="rendered"># node01.dc1.example.net\ntext\n</pre>' in html
    assert 'data-summary="Rendered for node01: 2 lines."' in html
    template.refresh_from_db()
    assert template.content == "text\n"  # a preview saves nothing
    # A template error: its message and line, for the editor to mark.
    html = preview(client, url, 200, server="node01", content="text\n{{ nope }}\n")
    assert 'data-error-line="2"' in html and "line 2: " in html and "nope" in html
    assert 'data-goto-line="2"' in html
    html = preview(client, url, 200, server="node01", content="a\nb\n{% for x in y %}\n")
    assert 'data-error-line="3"' in html and 'id="rendered"' not in html
    # Another tenant's server, or an unknown one, is not found; nothing of it shows.
    html = preview(client, url, 404, server="gnode", content=content)
    assert "No server of that name that you may see." in html and "gnode." not in html
    preview(client, url, 404, server="nothere", content=content)
    assert "Choose a server" in preview(client, url, 400, server="", content=content)
    # Another tenant's template is not found either.
    other = reverse("deploy:template-preview", args=[catalogue["globex_ks"].pk])
    preview(client, other, 404, server="node01", content=content)
    # Without scripts, the Preview button opens the same as a page.
    response = client.post(url, {"server": "node01", "content": content})
    assert response.status_code == 200
    page = response.content.decode()
    assert "<h1>Preview of acme-ks <small>for node01</small></h1>" in page
    assert "# node01.dc1.example.net" in page


def test_editor_preview_on_the_create_page(client, operator, admin_user, tenants):
    make_server(tenants[0], "node01")
    stored = Template.objects.count()
    client.force_login(operator)
    url = reverse("deploy:template-preview-new")
    form = {"server": "node01", "kind": "snippet", "tenant": tenants[0].pk}
    html = preview(client, url, 200, content="host {{ server.hostname }}\n", **form)
    assert '<pre class="mono" id="rendered">host node01\n</pre>' in html
    html = preview(client, url, 200, content="ok\n{{ x }\n", **form)
    assert 'data-error-line="2"' in html
    assert Template.objects.count() == stored
    # A template of another tenant than the server's cannot be previewed for it.
    client.force_login(admin_user)
    globex = {**form, "tenant": tenants[1].pk}
    html = preview(client, url, 400, content="{{ server.hostname }}", **globex)
    assert "not the one of node01" in html and 'id="rendered"' not in html
    shared = {**form, "tenant": ""}
    assert "node01" in preview(client, url, 200, content="{{ server.hostname }}", **shared)


def test_preview_needs_the_permission(client, make_user, tenants):
    make_server(tenants[0], "node01")
    nobody = make_user("nobody", tenants=[tenants[0]])
    client.force_login(nobody)
    response = client.post(reverse("deploy:template-preview-new"), {"server": "node01"})
    assert response.status_code == 403
    assert client.get(reverse("deploy:template-servers")).status_code == 403


def test_template_editor_saves_and_keeps_errors(client, operator, tenants):
    client.force_login(operator)
    url = reverse("deploy:template-create")
    form = {"name": "ks", "kind": "kickstart", "content": "a\n{% if %}\n", "tenant": tenants[0].pk}
    html = client.post(url, form).content.decode()
    assert field_error(html, "content").startswith("Line 2:")
    assert "a\n{% if %}\n</textarea>" in html.replace("&#x27;", "'").replace("&quot;", '"')
    form["content"] = "text\n"
    response = client.post(url, form)
    template = Template.objects.get(name="ks")
    assert response.status_code == 302
    assert response.url == reverse("deploy:template", args=[template.pk])

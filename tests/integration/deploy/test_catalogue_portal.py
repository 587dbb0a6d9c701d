"""The catalogue pages: lists scoped to the user's tenants, forms that show the services' field
errors (template syntax errors with their line), edit controls only where the user may use them,
the template preview, and list pages whose query count does not grow with rows."""

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
    match = re.search(rf'id="id_{field}-errors">([^<]*)<', html)
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


def test_lists_show_shared_and_own_tenant_only(client, operator, catalogue):
    client.force_login(operator)
    html = get(client, "deploy:oses")
    assert "rocky9" in html and "acme-os" in html and "globex-os" not in html
    assert "Shared by every tenant" in html
    filtered = get(client, "deploy:oses", name="acme")
    assert "acme-os" in filtered and "rocky9" not in filtered
    assert f'href="{reverse("deploy:os-create")}"' in html


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

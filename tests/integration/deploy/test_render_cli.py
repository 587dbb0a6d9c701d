"""`manage.py render NODE TEMPLATE`: the rendering on stdout, `TEMPLATE:LINE: message` and exit
status 1 on a template error, and the acting user's scope."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from deploy import defaults

from .catalogue_helpers import make_os, make_profile, make_server, make_template

pytestmark = pytest.mark.django_db


def render(*args, user):
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("render", *args, "--user", user.username, stdout=out, stderr=err)
    except SystemExit as exc:
        return exc.code, out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


@pytest.fixture
def node(tenants):
    defaults.create_builtin_templates()
    from deploy.models import Template

    profile = make_profile("rocky", make_os(), Template.objects.get(name="rhel9-kickstart"))
    return make_server(tenants[0], "node01", profile=profile)


def test_prints_the_rendering(node, operator):
    code, out, err = render(
        "node01", "rhel9-kickstart", "--base-url", "http://10.9.9.9:8000/", user=operator
    )
    assert code == 0 and err == ""
    assert out.startswith("# node01.dc1.example.net: rocky9 9.4")
    assert "http://10.9.9.9:8000/boot/build/PREVIEW-TOKEN/done" in out


def test_template_error_prints_name_and_line(node, operator, tenants):
    make_template("broken", "kickstart", content="text\n\n{{ params.nope }}\n", tenant=tenants[0])
    code, out, err = render("NODE01.", "broken", user=operator)
    assert code == 1 and out == ""
    assert err.startswith("broken:3: ") and "nope" in err


def test_error_in_a_snippet_names_the_snippet(node, operator, tenants):
    make_template("snippet-bad", "snippet", content="ok\n{{ 1 / 0 }}", tenant=tenants[0])
    make_template("uses-bad", "kickstart", content="{% include 'snippet-bad' %}", tenant=tenants[0])
    code, _, err = render("node01", "uses-bad", user=operator)
    assert code == 1 and err.startswith("snippet-bad:2: ZeroDivisionError")


def test_scope_of_the_acting_user(node, make_user, tenants):
    outsider = make_user("gop", roles=["operator"], tenants=[tenants[1]])
    with pytest.raises(CommandError, match="no server 'node01'"):
        render("node01", "rhel9-kickstart", user=outsider)
    make_template("globex-ks", "kickstart", content="x", tenant=tenants[1])
    admin = make_user("boss", roles=["admin"])
    with pytest.raises(CommandError, match="another tenant"):
        render("node01", "globex-ks", user=admin)
    with pytest.raises(CommandError, match="no template 'nope'"):
        render("node01", "nope", user=admin)

"""The sandbox stored templates render in (dcportal.templating): what a template may not do
fails cleanly with a TemplateError, never with another exception or a leak."""

import json

import pytest

from dcportal import templating
from dcportal.templating import TemplateError

CONTEXT = {
    "server": {"hostname": "node01", "attributes": {"cpu": {"cores": 8}}},
    "params": {"motd": 'it\'s "quoted"; rm -rf /', "packages": ["vim", "curl"]},
}


def render(source, snippets=None):
    return templating.render(source, CONTEXT, snippets=snippets)


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ server.__class__ }}",
        "{{ ''|attr('__class__') }}",
        "{{ '{0.__class__}'.format(1) }}",
        "{{ self._TemplateReference__context }}",
        "{{ self.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ joiner.__init__.__globals__['os'] }}",
        "{{ lipsum.__globals__['os'].popen('id').read() }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ range.__call__ }}",
        "{% set packages = params.packages %}{{ packages.append('nc') }}",
        "{{ params.update({'motd': 'x'}) }}",
        "{{ params.pop('motd') }}",
    ],
)
def test_python_internals_and_mutation_are_refused(source):
    with pytest.raises(TemplateError, match="Not allowed"):
        render(source)


@pytest.mark.parametrize(
    "source",
    [
        "{{ settings.SECRET_KEY }}",
        "{{ config }}",
        "{{ request }}",
        "{{ os.environ }}",
        "{{ __import__('os').system('id') }}",
        "{{ open('/etc/passwd').read() }}",
    ],
)
def test_settings_os_and_builtins_are_not_reachable(source):
    with pytest.raises(TemplateError, match="undefined"):
        render(source)


@pytest.mark.parametrize(
    "source",
    [
        "{% import 'os' as os %}",
        "{% from 'django.conf' import settings %}",
        "{% include '/etc/passwd' %}",
        "{% include '../../dcportal/settings.py' %}",
        "{% extends 'dcportal/base.html' %}",
    ],
)
def test_files_and_modules_cannot_be_loaded(source):
    with pytest.raises(TemplateError, match="No snippet named"):
        render(source)


def test_strict_undefined_names_the_line():
    with pytest.raises(TemplateError) as caught:
        render("line one\n{{ server.hostname }}\n{{ server.hostnmae }}\n")
    assert caught.value.lineno == 3
    assert "hostnmae" in caught.value.message


@pytest.mark.parametrize(
    "source",
    [
        "{% for i in range(100000) %}{% for j in range(100) %}0123456789{% endfor %}{% endfor %}",
        "{{ 'x' * 100000000 }}",
        "{{ ['x'] * 100000000 }}",
        "{% for i in range(10 ** 9) %}x{% endfor %}",
        "{{ 2 ** 100000 }}",
    ],
)
def test_huge_output_and_values_are_refused(source):
    with pytest.raises(TemplateError):
        render(source)


@pytest.mark.parametrize(
    "source",
    [
        "{% set ns = namespace(s='x') %}{% for i in range(22) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
        "{{ ('x\n' * 500000)|indent(100)|length }}",
        "{% set ns = namespace(s='x') %}{% for i in range(22) %}"
        "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
        "{{ ('x' * 1000000)|replace('x', 'yyyyy')|length }}",
        "{{ (['x' * 1000000] * 1000)|join|length }}",
        "{{ range(10)|batch(1000000000, 'x')|list|length }}",
        "{{ '%1000000000d' % 1 }}",
        "{{ '{:>1000000000}'.format(1) }}",
        "{{ '%1000000000d'|format(1) }}",
        "{{ 'x'|center(1000000000) }}",
    ],
)
def test_values_grown_without_output_are_refused(source):
    with pytest.raises(TemplateError):
        render(source)


def test_missing_snippet_names_the_including_line():
    with pytest.raises(TemplateError) as caught:
        render("a\nb\n{% include 'snippet-nope' %}\n")
    assert "snippet-nope" in caught.value.message
    assert caught.value.lineno == 3


def test_error_inside_a_snippet_names_the_snippet():
    with pytest.raises(TemplateError) as caught:
        render("{% include 'snippet-a' %}", snippets={"snippet-a": "ok\n{{ nope }}"})
    assert caught.value.name == "snippet-a"
    assert caught.value.lineno == 2


@pytest.mark.parametrize(
    "snippets",
    [{"a": "{% include 'a' %}"}, {"a": "{% include 'b' %}", "b": "{% include 'a' %}"}],
)
def test_include_recursion_is_refused(snippets):
    with pytest.raises(TemplateError, match="without end"):
        render("{% include 'a' %}", snippets=snippets)


def test_snippets_see_the_context():
    out = render("{% include 'hello' %}!", snippets={"hello": "hello {{ server.hostname }}"})
    assert out == "hello node01!"


def test_syntax_error_has_a_line_number():
    with pytest.raises(TemplateError) as caught:
        templating.check("ok\n{% if x %}\nno end\n")
    assert caught.value.lineno is not None
    with pytest.raises(TemplateError) as caught:
        templating.check("one\ntwo {{ x }\n")
    assert caught.value.lineno == 2


def test_shell_quote():
    out = render("echo {{ params.motd | shell_quote }}")
    assert out == "echo 'it'\"'\"'s \"quoted\"; rm -rf /'"
    assert render("{{ '' | shell_quote }}") == "''"
    assert render("{{ 42 | shell_quote }}") == "42"


def test_to_json():
    out = render("{{ server.attributes | to_json }}|{{ params.packages | to_json }}")
    attributes, packages = out.split("|")
    assert json.loads(attributes) == {"cpu": {"cores": 8}}
    assert json.loads(packages) == ["vim", "curl"]
    assert render("{{ params.motd | to_json }}") == json.dumps(CONTEXT["params"]["motd"])
    assert render("{{ {'b': 1, 'a': [1, 2]} | to_json(2) }}") == (
        '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}'
    )

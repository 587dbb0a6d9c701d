"""Nothing answers an anonymous client but the login pages (and the allowlisted boot endpoints).

The walk covers every URL pattern of the root urlconf, so a view added later without its own
check fails here instead of in production. Also: the portal pages render for those allowed to
see them, and Django admin is kept to admins.
"""

import re
import uuid
from urllib.parse import urlsplit

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse
from django.urls.resolvers import RoutePattern

from dcportal import rbac, services, urls
from dcportal.models import ApiToken, Job, Tenant

APPS = ("dcportal", "inventory", "deploy", "virt", "ca")
# Values tried, in order, for each URL parameter; the first one its regex accepts is used.
SAMPLES = ("1", "x", str(uuid.UUID(int=1)))
# A format suffix must name a real renderer, or DRF answers 404 before it authenticates.
PREFERRED = {"format": ("json", ".json")}
NAMED_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>")
ROUTE_PARAMETER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>\w+)>")


def sample_for(name, regex):
    # Alternatives such as `auth|dcportal` (admin's app_list) offer their own first word.
    candidates = (*PREFERRED.get(name, ()), *SAMPLES, regex.split("|")[0].strip("()"))
    for candidate in candidates:
        if re.fullmatch(regex, candidate):
            return candidate
    raise AssertionError(f"no sample value for <{name}> matches the regex {regex!r}")


def _group_end(regex, start):
    """Index just past the parenthesis that closes the group opened at `start`."""
    depth, index, in_class = 0, start, False
    while index < len(regex):
        char = regex[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    raise AssertionError(f"unbalanced group in {regex!r}")


def regex_sample(regex):
    """A concrete path for a (DRF router style) regex: named groups take a sample value."""
    out, index = [], 0
    for match in NAMED_GROUP.finditer(regex):
        if match.start() < index:
            continue  # a group nested in one already replaced
        end = _group_end(regex, match.start())
        out.append(regex[index : match.start()])
        out.append(sample_for(match["name"], regex[match.end() : end - 1]))
        # An optional group gets a value too; its "?" must not end up in the path.
        index = end + 1 if regex[end : end + 1] == "?" else end
    out.append(regex[index:])
    text = "".join(out)
    text = re.sub(r"^\^|\$$|\\Z$", "", text)
    return text.replace("/?", "/").replace("\\.", ".")


def route_sample(pattern):
    def value(match):
        return sample_for(match["name"], pattern.converters[match["name"]].regex)

    return ROUTE_PARAMETER.sub(value, str(pattern))


def piece(pattern):
    if isinstance(pattern, RoutePattern):
        return route_sample(pattern)
    return regex_sample(pattern.regex.pattern)


def all_urls(resolver=None, prefix="", route="", namespaces=()):
    """(path, full name or None, URLPattern, route) for every pattern, through every include."""
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        # Joined as ResolverMatch.route joins them, so the two can be compared.
        pattern_route = (
            route + str(entry.pattern).removeprefix("^") if route else str(entry.pattern)
        )
        here = prefix + piece(entry.pattern)
        if isinstance(entry, URLResolver):
            spaces = (*namespaces, entry.namespace) if entry.namespace else namespaces
            yield from all_urls(entry, here, pattern_route, spaces)
        else:
            assert isinstance(entry, URLPattern)
            name = ":".join((*namespaces, entry.name)) if entry.name else None
            yield "/" + here, name, entry, pattern_route


WALK = list(all_urls())
URLS = [(path, name, entry) for path, name, entry, _ in WALK]
ROUTES = {id(entry): route for _, _, entry, route in WALK}
EXEMPT = urls.PUBLIC_URL_NAMES | urls.AUTHENTICATION_URL_NAMES


def test_the_walk_sees_every_part_of_the_site():
    names = {name for _, name, _ in URLS}
    for expected in (
        "dashboard",
        "job",
        "api:credential-detail",
        "api:api-root",
        "admin:index",
        "inventory:index",
        "ca:index",
    ):
        assert expected in names
    # DRF's format-suffix and regex patterns are in the walk too, not only plain routes.
    assert any(path.endswith(".json") or ".json/" in path for path, _, _ in URLS)


@pytest.mark.parametrize(("path", "name", "entry"), URLS, ids=[p for p, _, _ in URLS])
def test_sample_path_resolves_to_its_own_pattern(path, name, entry):
    # Guards the walk itself: a wrong sample would test some other view.
    match = resolve(path)
    if match.route == ROUTES[id(entry)] and match.func != entry.callback:
        return  # shadowed by an earlier pattern of the same route: no request can reach it
    assert match.func == entry.callback
    if name:
        assert match.view_name == name


def test_only_the_allowlisted_urls_are_public():
    # Boot and install callbacks (and the agent script) are the only public URLs; each must be
    # added on purpose, here as in dcportal.urls.PUBLIC_URL_NAMES.
    assert set(urls.PUBLIC_URL_NAMES) == {
        "inventory:agent",
        "boot:ipxe",
        "boot:ipxe-mac",
        "boot:pxelinux",
        "boot:grub",
        "boot:file",
        "boot:template",
        "boot:progress",
        "boot:done",
        "boot:failed",
        "pki:authority-pem",
        "pki:authority-der",
        "pki:crl-der",
        "pki:crl-pem",
        "pki:autosign",
    }


def test_exempt_names_exist():
    names = {name for _, name, _ in URLS}
    assert not EXEMPT - names


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post"])
def test_anonymous_client_is_turned_away_everywhere(method, client):
    refused, checked = [], 0
    for path, name, _ in URLS:
        if name in EXEMPT:
            continue
        checked += 1
        response = getattr(client, method)(path)
        verdict = _refusal(path, response)
        if verdict:
            refused.append(f"{method.upper()} {path} ({name}): {verdict}")
    assert checked > 50
    assert not refused, "answered an anonymous client:\n" + "\n".join(refused)


def _refusal(path, response):
    """'' when the response turns the anonymous client away properly, else what is wrong."""
    if path.startswith("/api/"):
        if response.status_code in (401, 403):
            return ""
        return f"status {response.status_code}, expected 401/403"
    if response.status_code != 302:
        return f"status {response.status_code}, expected a redirect to the login page"
    target = urlsplit(response["Location"])
    logins = {reverse("login")}
    if path.startswith("/admin/"):
        logins.add(reverse("admin:login"))
    if target.path not in logins:
        return f"redirects to {response['Location']}"
    return ""


@pytest.mark.parametrize("name", sorted(urls.AUTHENTICATION_URL_NAMES | {"inventory:agent"}))
def test_login_pages_answer_anonymously(name, client, db):
    assert client.get(reverse(name)).status_code == 200


PUBLIC_SAMPLES = [(path, name) for path, name, _ in URLS if name in urls.PUBLIC_URL_NAMES]


@pytest.mark.parametrize(("path", "name"), PUBLIC_SAMPLES, ids=[p for p, _ in PUBLIC_SAMPLES])
def test_public_urls_make_their_own_check_not_a_login(path, name, client, db):
    # A boot or PKI URL answers for itself (the file, 403 for a bad token, 404, 405 for the
    # wrong method), never with the login page.
    for method in (client.get, client.post):
        response = method(path)
        assert response.status_code not in (401, 500), name
        location = response.get("Location", "")
        assert not (response.status_code == 302 and "login" in location), name


def test_static_files_need_no_login(client, db):
    # The login page itself needs its stylesheet.
    response = client.get("/static/dcportal/portal.css")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "model",
    [m for label in APPS for m in apps.get_app_config(label).get_models()],
    ids=lambda m: m._meta.label,
)
def test_every_model_is_in_admin_and_declares_tenancy(model):
    assert admin.site.is_registered(model)
    path = rbac.tenancy_of(model)
    if path in (None, "self"):
        return
    # The declared path must lead to Tenant, or restrict() would filter on nonsense.
    current = model
    for part in path.split("__"):
        current = current._meta.get_field(part).related_model
    assert current is Tenant


# Logged-in portal pages ----------------------------------------------------------------------

PAGES = (
    "dashboard",
    "jobs",
    "audit",
    "tokens",
    "inventory:index",
    "deploy:index",
    "virt:index",
    "ca:index",
)


@pytest.mark.django_db
@pytest.mark.parametrize("name", PAGES)
def test_portal_pages_render_for_admin(name, client, admin_user):
    client.force_login(admin_user)
    response = client.get(reverse(name))
    assert response.status_code == 200
    assert b"<html" in response.content.lower()


@pytest.mark.django_db
def test_job_detail_renders_within_scope_and_404_outside(client, make_user, tenants):
    acme, globex = tenants
    viewer = make_user("viewer", roles=["read-only"], tenants=[acme])
    mine = Job.objects.create(kind="test.noop", queue="default", tenant=acme)
    theirs = Job.objects.create(kind="test.noop", queue="default", tenant=globex)
    client.force_login(viewer)
    assert client.get(reverse("job", args=[mine.pk])).status_code == 200
    assert client.get(reverse("job", args=[theirs.pk])).status_code == 404


@pytest.mark.django_db
def test_read_only_cannot_cancel_someone_elses_job(client, make_user, tenants):
    acme = tenants[0]
    starter = make_user("starter", roles=["operator"], tenants=[acme])
    viewer = make_user("viewer", roles=["read-only"], tenants=[acme])
    job = Job.objects.create(kind="test.noop", queue="default", tenant=acme, user=starter)
    client.force_login(viewer)
    response = client.post(reverse("job-cancel", args=[job.pk]))
    assert response.status_code == 403
    job.refresh_from_db()
    assert not job.cancel_requested
    assert job.status == Job.Status.QUEUED


@pytest.mark.django_db
def test_audit_page_needs_view_auditevent(client, make_user, tenants):
    nobody = make_user("nobody", tenants=[tenants[0]])
    client.force_login(nobody)
    assert client.get(reverse("audit")).status_code == 403
    # The navigation does not offer what the page would refuse.
    assert reverse("audit").encode() not in client.get(reverse("dashboard")).content

    viewer = make_user("viewer", roles=["read-only"], tenants=[tenants[0]])
    client.force_login(viewer)
    assert client.get(reverse("audit")).status_code == 200


@pytest.mark.django_db
def test_token_page_shows_a_new_key_once(client, make_user):
    user = make_user("alice")
    client.force_login(user)
    response = client.post(reverse("tokens"), {"name": "laptop", "write": "on"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    token = ApiToken.objects.get(user=user, name="laptop")
    key = re.search(rb'id="new-key">([^<]+)<', response.content).group(1).decode()
    assert services.authenticate_token(key) == token
    again = client.get(reverse("tokens"))
    assert b"laptop" in again.content
    assert key.encode() not in again.content
    assert token.key_hash.encode() not in again.content


@pytest.mark.django_db
def test_token_page_cannot_revoke_another_users_token(client, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    token, _ = services.create_token(user=bob, name="bobs")
    client.force_login(alice)
    assert client.post(reverse("token-revoke", args=[token.pk])).status_code == 404
    token.refresh_from_db()
    assert token.revoked is None

    client.force_login(bob)
    assert client.post(reverse("token-revoke", args=[token.pk])).status_code == 302
    token.refresh_from_db()
    assert token.revoked is not None


# Django admin ---------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("is_staff", [False, True])
def test_admin_site_refuses_a_tenant_operator(client, make_user, tenants, is_staff):
    # is_staff alone must not open a site that works across every tenant.
    operator = make_user("op", roles=["operator"], tenants=[tenants[0]], is_staff=is_staff)
    client.force_login(operator)
    for path in (reverse("admin:index"), reverse("admin:dcportal_credential_changelist")):
        response = client.get(path)
        assert response.status_code == 302
        assert urlsplit(response["Location"]).path == reverse("admin:login")


@pytest.mark.django_db
def test_admin_site_opens_for_admins(client, admin_user):
    client.force_login(admin_user)
    assert client.get(reverse("admin:index")).status_code == 200
    for model in admin.site._registry:
        if model._meta.app_label not in APPS:
            continue
        info = (model._meta.app_label, model._meta.model_name)
        response = client.get(reverse("admin:{}_{}_changelist".format(*info)))
        assert response.status_code == 200, model._meta.label


@pytest.mark.django_db
def test_admin_role_can_log_in_on_the_admin_login_page(client, make_user):
    # Admin access follows the admin role (PortalAdminSite.has_permission), not is_staff.
    make_user("chief", roles=[rbac.ADMIN], password="correct horse battery")
    response = client.post(
        reverse("admin:login"),
        {"username": "chief", "password": "correct horse battery", "next": "/admin/"},
    )
    assert response.status_code == 302
    assert client.get(reverse("admin:index")).status_code == 200


@pytest.mark.django_db
def test_staff_operator_cannot_log_in_on_the_admin_login_page(client, make_user, tenants):
    make_user("op", roles=["operator"], tenants=[tenants[0]], is_staff=True)
    client.post(reverse("admin:login"), {"username": "op", "password": "correct horse battery"})
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302
    assert urlsplit(response["Location"]).path == reverse("admin:login")


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["api:api-root", "api:me", "api:schema", "api:docs"])
def test_api_index_pages_answer_any_logged_in_user(name, api, make_user):
    # Views without a model of their own must not trip the model-based ActionPermission.
    client = api.as_user(make_user("plain"))
    assert client.get(reverse(name)).status_code == 200

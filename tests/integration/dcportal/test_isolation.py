"""Object-level tenant isolation, generated from the app registry, the API routers and the URL
patterns: another tenant's object answers 404 everywhere and never shows up in a list, an
export, a count, a filter's choices, a picker or a bulk action.

Every test works as an operator of acme (the role that may do the most inside a tenant) with
one object of each model in acme and one in globex (tests/isolation.py makes them). A model
with tenancy but no factory, a viewset, a portal page with an id in its URL or a list table
that none of these tests reaches fails the suite rather than being skipped.
"""

import json
import re
from io import StringIO

import django_filters
import pytest
from django.apps import apps
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.viewsets import ViewSetMixin

from ca.api import urls as ca_api_urls
from dcportal import rbac, tables
from dcportal.api import urls as dcportal_api_urls
from dcportal.api.filters import StrictFilterBackend
from dcportal.models import AuditEvent, Job, Tenant
from deploy.api import urls as deploy_api_urls
from inventory.api import urls as inventory_api_urls
from tests.isolation import FACTORIES, shared_world, snapshot, tenancy_models
from virt.api import urls as virt_api_urls

pytestmark = pytest.mark.django_db

MISSING = 999999
ROUTERS = (
    dcportal_api_urls.router,
    inventory_api_urls.router,
    deploy_api_urls.router,
    virt_api_urls.router,
    ca_api_urls.router,
)


def viewset_model(viewset):
    """The model a viewset serves, read from its class (no request needed); the tests check
    it against the queryset the viewset really answers from."""
    for source in (getattr(viewset, "model", None), getattr(viewset, "base_queryset", None)):
        if source is not None:
            return getattr(source, "model", source)
    return viewset.serializer_class.Meta.model


VIEWSETS = sorted(
    (
        (basename, viewset)
        for router in ROUTERS
        for _, viewset, basename in router.registry
        if rbac.tenancy_of(viewset_model(viewset)) is not None
    ),
    key=lambda item: item[0],
)
GLOBAL_VIEWSETS = sorted(
    basename
    for router in ROUTERS
    for _, viewset, basename in router.registry
    if rbac.tenancy_of(viewset_model(viewset)) is None
)

# Models no viewset lists on its own; each is reached through the endpoint named here, which
# the tests below exercise with the parent.
REACHED_THROUGH_PARENT = {
    "dcportal.JobLog": "api:job-log",
    "virt.Vif": "api:virt-vm-detail",
    "ca.RevocationList": "api:authority-detail",
}


@pytest.fixture(scope="module")
def shared(django_db_setup, django_db_blocker):
    """One object of every model in acme and in globex, built once for the module."""
    members = {"root": (rbac.ADMIN, ()), "op": ("operator", ("acme",))}
    with shared_world(django_db_blocker, members) as (world, tenants, users):
        yield world, tenants["acme"], tenants["globex"], users["op"]


@pytest.fixture
def world(shared):
    return shared[0]


@pytest.fixture
def acme(shared):
    return shared[1]


@pytest.fixture
def globex(shared):
    return shared[2]


@pytest.fixture
def operator(shared):
    """An operator of acme only: the role that may do the most inside one tenant."""
    user = type(shared[3]).objects.get(pk=shared[3].pk)
    return user


def build(world, tenant):
    for model in tenancy_models():
        world.get(model, tenant)


def tenant_of(obj):
    path = rbac.tenancy_of(type(obj))
    if path == "self":
        return obj
    for part in path.split("__"):
        obj = getattr(obj, part)
        if obj is None:
            return None
    return obj


def follow(obj, path):
    """The value at a django-filter field path ("server__tenant__slug") of obj, or None."""
    for part in path.split("__"):
        if obj is None:
            return None
        obj = getattr(obj, part, None)
        if hasattr(obj, "all") and callable(obj.all):
            obj = obj.all().first()
    if isinstance(obj, list):
        obj = obj[0] if obj else None
    if hasattr(obj, "pk") and hasattr(obj, "_meta"):
        return obj.pk
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    return obj


def matching_values(filter_, obj):
    """Query values of a filter that would pick obj (were it in scope)."""
    if isinstance(filter_, django_filters.OrderingFilter):
        return []
    if isinstance(filter_, django_filters.BooleanFilter):
        return ["true", "false"]
    values = []
    if filter_.field_name and not filter_.method:
        value = follow(obj, filter_.field_name)
        if value not in (None, "", []):
            values.append(str(value).lower() if isinstance(value, bool) else str(value))
    # Free-text and method filters: every globex object's name holds its tenant's slug.
    values.append(tenant_of(obj).slug if tenant_of(obj) else "globex")
    return values


def filterset_of(viewset, model):
    return StrictFilterBackend().get_filterset_class(viewset(), model._default_manager.all())


def assert_nothing_changed(objects, before):
    after = {key: snapshot(obj) for key, obj in objects.items()}
    assert after == before, "a refused request changed another tenant's object"


# The registry ---------------------------------------------------------------------------------


@pytest.mark.parametrize("model", tenancy_models(), ids=lambda m: m._meta.label)
def test_every_model_with_tenancy_has_a_factory_and_restrict_hides_it(
    model, world, operator, acme, globex
):
    assert model in FACTORIES, f"add a factory for {model._meta.label} to tests/isolation.py"
    mine, theirs = world.get(model, acme), world.get(model, globex)
    assert tenant_of(theirs) == globex and tenant_of(mine) == acme
    visible = rbac.restrict(model._default_manager.all(), operator, "view")
    assert visible.filter(pk=mine.pk).exists()
    assert not visible.filter(pk=theirs.pk).exists()
    for action in ("change", "delete"):
        assert not rbac.restrict(model._default_manager.all(), operator, action).filter(
            pk=theirs.pk
        )


def test_every_model_with_tenancy_is_reached_by_the_api():
    reached = {viewset_model(viewset)._meta.label for _, viewset in VIEWSETS}
    labels = {model._meta.label for model in tenancy_models()}
    missing = labels - reached - set(REACHED_THROUGH_PARENT)
    assert not missing, f"no API endpoint is checked for {sorted(missing)}"
    # And the ones without a viewset of their own really have none (or move them out).
    assert not reached & set(REACHED_THROUGH_PARENT)


def test_the_routers_are_all_walked():
    # A router added for a new app must be added to ROUTERS, or its viewsets escape the walk.
    registered = {basename for basename, _ in VIEWSETS} | set(GLOBAL_VIEWSETS)
    names = set()
    for entry in _walk(get_resolver()):
        callback = entry.callback
        if getattr(callback, "cls", None) and issubclass(callback.cls, ViewSetMixin):
            names.add(callback.initkwargs.get("basename"))
    assert names - {None} <= registered
    assert GLOBAL_VIEWSETS == ["apitoken", "rack", "role", "site"]


def _walk(resolver):
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry)
        elif isinstance(entry, URLPattern):
            yield entry


# The API: every registered viewset ------------------------------------------------------------


def _ids(response, key):
    assert response.status_code == 200, response.content[:500]
    body = response.json()
    items = body["results"] if isinstance(body, dict) else body
    return {item[key] for item in items}


@pytest.mark.parametrize(("basename", "viewset"), VIEWSETS, ids=[b for b, _ in VIEWSETS])
def test_api_lists_and_filters_never_show_another_tenants_object(
    basename, viewset, world, api, operator, acme, globex
):
    model = viewset_model(viewset)
    mine, theirs = world.get(model, acme), world.get(model, globex)
    lookup = viewset.lookup_field
    key = "id" if lookup == "pk" else lookup
    mine_id, theirs_id = mine.serializable_value(lookup), theirs.serializable_value(lookup)
    client = api.as_user(operator)
    url = reverse(f"api:{basename}-list")

    listed = _ids(client.get(url, {"page_size": 1000}), key)
    assert mine_id in listed
    assert theirs_id not in listed

    # Every filter, with a value that would match the other tenant's object.
    filterset = filterset_of(viewset, model)
    tried = 0
    for name, filter_ in (filterset.base_filters if filterset else {}).items():
        for value in matching_values(filter_, theirs):
            response = client.get(url, {name: value, "page_size": 1000})
            tried += 1
            if response.status_code == 400:
                continue  # refused outright: nothing shown
            assert theirs_id not in _ids(response, key), f"?{name}={value}"
        if isinstance(
            filter_, django_filters.ModelChoiceFilter | django_filters.ModelMultipleChoiceFilter
        ):
            # A related object of another tenant must read like one that does not exist.
            related = follow(theirs, filter_.field_name)
            if related is None:
                continue
            found = client.get(url, {name: related})
            missing = client.get(url, {name: MISSING})
            assert found.status_code == missing.status_code, f"?{name}= tells globex ids apart"
    assert tried or filterset is None
    # Every ordering, both ways.
    for field in getattr(viewset, "ordering_fields", None) or []:
        for sign in ("", "-"):
            response = client.get(url, {"ordering": sign + field, "page_size": 1000})
            assert theirs_id not in _ids(response, key), f"?ordering={sign}{field}"


def _detail_methods(viewset):
    mapping = {"get": "retrieve", "put": "update", "patch": "partial_update", "delete": "destroy"}
    return [method for method, action in mapping.items() if hasattr(viewset, action)]


@pytest.mark.parametrize(("basename", "viewset"), VIEWSETS, ids=[b for b, _ in VIEWSETS])
def test_api_detail_and_every_detail_action_answer_404(
    basename, viewset, world, api, operator, acme, globex
):
    model = viewset_model(viewset)
    mine, theirs = world.get(model, acme), world.get(model, globex)
    lookup = viewset.lookup_field
    client = api.as_user(operator)
    theirs_id = theirs.serializable_value(lookup)
    assert client.get(reverse(f"api:{basename}-detail", args=[mine.serializable_value(lookup)]))
    objects = {"theirs": theirs}
    before = {"theirs": snapshot(theirs)}
    counts = (Job.objects.count(), AuditEvent.objects.count(), model._default_manager.count())

    requests = [
        (method, reverse(f"api:{basename}-detail", args=[theirs_id]))
        for method in _detail_methods(viewset)
    ]
    for extra in viewset.get_extra_actions():
        if extra.detail:
            target = reverse(f"api:{basename}-{extra.url_name}", args=[theirs_id])
            requests += [(method, target) for method in extra.mapping]
    assert requests
    statuses = set()
    for method, target in requests:
        response = getattr(client, method)(target, {}, format="json")
        missing = getattr(client, method)(
            target.replace(f"/{theirs_id}/", f"/{MISSING}/"), {}, format="json"
        )
        # 404, or the 403 an operator gets for an action it lacks whatever the id (tenants).
        assert response.status_code in (403, 404), (method, target, response.content[:300])
        assert b"globex" not in response.content.lower()
        assert response.status_code == missing.status_code, (method, target)
        assert response.json()["error"]["message"] == missing.json()["error"]["message"]
        statuses.add(response.status_code)
    assert 404 in statuses
    assert_nothing_changed(objects, before)
    assert counts == (
        Job.objects.count(),
        AuditEvent.objects.count(),
        model._default_manager.count(),
    )


@pytest.mark.parametrize(
    ("label", "name"), sorted(REACHED_THROUGH_PARENT.items()), ids=sorted(REACHED_THROUGH_PARENT)
)
def test_api_children_without_a_viewset_stay_hidden(label, name, world, api, operator, globex):
    child = world.get(apps.get_model(label), globex)
    parent = {"dcportal.JobLog": "job", "virt.Vif": "vm", "ca.RevocationList": "authority"}
    target = getattr(child, parent[label])
    client = api.as_user(operator)
    assert client.get(reverse(name, args=[target.pk])).status_code == 404


# The API: endpoints that take server ids outside the routers ---------------------------------


def test_api_bulk_and_id_taking_endpoints_refuse_another_tenants_servers(
    world, api, operator, acme, globex
):
    from inventory.models import Server

    theirs = world.get(Server, globex)
    world.get(apps.get_model("deploy.ServerDeploy"), globex)
    world.get(apps.get_model("inventory.Bmc"), globex)
    mine = world.get(Server, acme)
    client = api.as_user(operator)
    before = {"server": snapshot(theirs), "deploy": snapshot(theirs.deploy)}
    jobs = Job.objects.count()

    response = client.post(
        reverse("api:server-power", args=[theirs.pk]), {"action": "off"}, format="json"
    )
    assert response.status_code == 404
    for body in (
        {"servers": [theirs.pk], "action": "off"},
        {"noderange": theirs.hostname, "action": "off"},
    ):
        response = client.post(reverse("api:power"), body, format="json")
        assert response.status_code == 400, response.content
        assert b"globex" not in response.content.replace(theirs.hostname.encode(), b"")
    for name, extra in (
        ("api:deploy-nodeset", {"next_boot": "localboot"}),
        ("api:deploy-rinstall", {}),
    ):
        for targets in ({"servers": [theirs.pk]}, {"noderange": theirs.hostname}):
            response = client.post(reverse(name), {**targets, **extra}, format="json")
            assert response.status_code == 400, (name, response.content)
    bulk = reverse("api:server-bulk")
    response = client.patch(bulk, [{"id": theirs.pk, "status": "retired"}], format="json")
    assert response.status_code == 400
    response = client.delete(bulk, {"ids": [theirs.pk]}, format="json")
    assert response.status_code in (400, 404)
    # The DHCP configuration lists only what the caller sees.
    world.get(apps.get_model("inventory.IPAddress"), globex)
    world.get(apps.get_model("inventory.IPAddress"), acme)
    config = client.get(
        reverse("api:deploy-dhcp", args=["isc"]),
        {"next_server": "10.0.0.1", "boot_url": "http://10.0.0.1:8000"},
    )
    assert config.status_code == 200, config.content
    assert mine.hostname.encode() in config.content
    assert b"globex" not in config.content
    assert Server.objects.filter(pk=theirs.pk).exists()
    assert before == {"server": snapshot(theirs), "deploy": snapshot(theirs.deploy)}
    assert Job.objects.count() == jobs


# The portal ------------------------------------------------------------------------------------

# Each portal URL with an object id in it, and the model of that id. A new one must be added
# here (the walk below fails until it is), so its 404 for another tenant is checked.
PORTAL_OBJECT_URLS = {
    "job": "dcportal.Job",
    "job-cancel": "dcportal.Job",
    "inventory:server": "inventory.Server",
    "inventory:server-edit": "inventory.Server",
    "inventory:server-delete": "inventory.Server",
    "inventory:server-power": "inventory.Server",
    "inventory:server-bmc": "inventory.Server",
    "inventory:server-bmc-delete": "inventory.Server",
    "inventory:interface-boot": "inventory.Interface",
    "inventory:interface-edit": "inventory.Interface",
    "inventory:subnet": "inventory.Subnet",
    "inventory:subnet-edit": "inventory.Subnet",
    "inventory:subnet-delete": "inventory.Subnet",
    "inventory:subnet-allocate": "inventory.Subnet",
    "inventory:subnet-range-create": "inventory.Subnet",
    "inventory:subnet-address-create": "inventory.Subnet",
    "inventory:subnet-range-edit": "inventory.IPRange",
    "inventory:subnet-range-delete": "inventory.IPRange",
    "inventory:subnet-address-edit": "inventory.IPAddress",
    "inventory:subnet-address-delete": "inventory.IPAddress",
    "inventory:conflict": "inventory.Conflict",
    "inventory:conflict-resolve": "inventory.Conflict",
    "inventory:enrolment-token-revoke": "inventory.EnrolmentToken",
    "deploy:template": "deploy.Template",
    "deploy:template-edit": "deploy.Template",
    "deploy:template-delete": "deploy.Template",
    "deploy:template-preview": "deploy.Template",
    "deploy:profile": "deploy.Profile",
    "deploy:profile-edit": "deploy.Profile",
    "deploy:profile-delete": "deploy.Profile",
    "deploy:os": "deploy.OperatingSystem",
    "deploy:os-edit": "deploy.OperatingSystem",
    "deploy:os-delete": "deploy.OperatingSystem",
    "deploy:parameter": "deploy.Parameter",
    "deploy:parameter-edit": "deploy.Parameter",
    "deploy:parameter-delete": "deploy.Parameter",
    "deploy:server-deploy": "inventory.Server",
    "deploy:server-nodeset": "inventory.Server",
    "deploy:server-rinstall": "inventory.Server",
    "virt:pool": "virt.Pool",
    "virt:pool-edit": "virt.Pool",
    "virt:pool-delete": "virt.Pool",
    "virt:pool-sync": "virt.Pool",
    "virt:vm": "virt.Vm",
    "virt:vm-action": "virt.Vm",
    "virt:vm-install": "virt.Vm",
    "virt:vm-migrate": "virt.Vm",
    "virt:vm-destroy": "virt.Vm",
    "ca:authority": "ca.Authority",
    "ca:authority-edit": "ca.Authority",
    "ca:authority-crl": "ca.Authority",
    "ca:authority-export": "ca.Authority",
    "ca:authority-revoke": "ca.Authority",
    "ca:certificate": "ca.Certificate",
    "ca:certificate-pem": "ca.Certificate",
    "ca:certificate-revoke": "ca.Certificate",
    "ca:certificate-renew": "ca.Certificate",
    "ca:certificate-key": "ca.Certificate",
    "ca:request": "ca.CertificateRequest",
    "ca:request-sign": "ca.CertificateRequest",
    "ca:request-reject": "ca.CertificateRequest",
}
# Object URLs of per-user (not per-tenant) objects, checked by their own tests.
PER_USER_URLS = {"token-revoke", "table-columns"}
# Pages that are not the portal's own (admin, API, boot and PKI files, logging in and out).
NOT_PORTAL = ("/admin/", "/api/", "/boot/", "/pki/", "/login/", "/logout/")


def _portal_patterns():
    from dcportal import urls
    from tests.integration.dcportal.test_login_required import WALK

    seen = set()
    for path, name, entry, _ in WALK:
        if path.startswith(NOT_PORTAL) or name in urls.PUBLIC_URL_NAMES or name in seen:
            continue
        seen.add(name)
        yield name, bool(entry.pattern.converters if hasattr(entry.pattern, "converters") else 0)


PORTAL = list(_portal_patterns())
PORTAL_PAGES = sorted(name for name, has_parameter in PORTAL if not has_parameter)
PORTAL_OBJECT_NAMES = sorted(name for name, has_parameter in PORTAL if has_parameter)


def test_every_portal_object_url_is_mapped_to_its_model():
    unmapped = set(PORTAL_OBJECT_NAMES) - set(PORTAL_OBJECT_URLS) - PER_USER_URLS
    assert not unmapped, f"add these to PORTAL_OBJECT_URLS: {sorted(unmapped)}"
    assert not set(PORTAL_OBJECT_URLS) - set(PORTAL_OBJECT_NAMES)
    assert len(PORTAL_PAGES) > 20


def _fetch(client, url):
    response = client.get(url, follow=True)
    table = response.context.get("table") if response.context else None
    exports = ()
    if table is not None:
        final = response.redirect_chain[-1][0] if response.redirect_chain else url
        exports = tuple(
            b"".join(
                client.get(f"{final}{'&' if '?' in final else '?'}export={kind}").streaming_content
            )
            for kind in ("csv", "json")
        )
    return response, table, exports


def _content(response):
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return response.content


# Lists whose page shows only some rows unless asked for all.
SHOW_ALL = {"deploy:builds": {"state": "all"}}
CSRF = re.compile(rb'name="csrfmiddlewaretoken" value="[^"]*"|"X-CSRFToken": "[^"]*"')


def same_page(one, other):
    """Equal but for the CSRF tokens; a difference is shown line by line."""
    import difflib

    lines = [CSRF.sub(b"", _content(r)).decode().splitlines() for r in (one, other)]
    diff = "\n".join(difflib.unified_diff(*lines, lineterm="", n=1))
    assert not diff, diff


@pytest.mark.parametrize("name", PORTAL_PAGES)
def test_portal_page_lists_counts_and_exports_nothing_of_another_tenant(
    name, world, client, operator, acme, globex
):
    client.force_login(operator)
    url = reverse(name)
    response, table, exports = _fetch(client, url)
    assert response.status_code in (200, 405), response.status_code
    # Not in a row, a count, a picker of a filter form or a dialog, nor a link.
    assert b"globex" not in _content(response).lower()
    if table is None:
        return
    for export in exports:
        assert b"globex" not in export.lower()
    # The count counts what the rows and the export show, nothing more.
    exported = json.loads(exports[1])
    assert table.count == str(len(exported))
    assert len(table.rows) == min(len(exported), table.page_size)
    model = table.queryset.model
    theirs = world.get(model, globex) if model in FACTORIES else None
    if theirs is not None and not response.redirect_chain:
        # The check can fail: acme's own object is listed on the same page (with every state
        # where the page shows only some by default).
        mine = world.get(model, acme)
        listed = client.get(url, SHOW_ALL.get(name, {})).context["table"].rows
        assert mine.pk in {row.pk for row in listed}, name
    # Filters and the search box with values that would pick the other tenant's objects.
    filterset = table.filterset_class
    for param, filter_ in (filterset.base_filters if filterset else {}).items():
        for value in matching_values(filter_, theirs) if theirs else ["globex"]:
            shown = client.get(url, {param: value}, follow=True).context["table"]
            assert not [row for row in shown.rows if tenant_of(row.obj) == globex], param
    searched = client.get(url, {"q": "globex"}, follow=True).context["table"]
    assert not [row for row in searched.rows if tenant_of(row.obj) == globex]


def test_counts_figures_and_exports_do_not_move_when_another_tenant_grows(world, client, operator):
    # Every page (the dashboard's figures, each list's count and exports) as it is, then
    # again once a third tenant holds one of everything: nothing may differ.
    client.force_login(operator)
    before = {name: _fetch(client, reverse(name)) for name in PORTAL_PAGES}
    build(world, Tenant.objects.create(name="Umbrella", slug="umbrella"))
    for name in PORTAL_PAGES:
        response, table, exports = _fetch(client, reverse(name))
        if table is not None:
            assert table.count == before[name][1].count, name
        assert exports == before[name][2], name
        same_page(before[name][0], response)


@pytest.mark.parametrize("name", PORTAL_PAGES)
def test_portal_bulk_actions_refuse_another_tenants_ids(name, world, client, operator, globex):
    client.force_login(operator)
    url = reverse(name)
    response = client.get(url, follow=True)
    table = response.context.get("table") if response.context else None
    actions = table.actions if table is not None else []
    model = table.queryset.model if table is not None else None
    if not actions or rbac.tenancy_of(model) is None:
        return  # no bulk action, or a per-user list (tokens)
    theirs = world.get(model, globex)
    before = {"theirs": snapshot(theirs)}
    jobs = Job.objects.count()
    for action in actions:
        data = {"ids": [theirs.pk], "action": action.name, "confirm": "1", "next": url}
        for field, _, choices in action.fields:
            data[field] = choices[0][0] if choices else "x"
        response = client.post(action.url, data, follow=True)
        assert response.status_code in (200, 400, 403, 404), (action.name, response.status_code)
        assert b"globex" not in response.content.lower(), action.name
        assert_nothing_changed({"theirs": theirs}, before)
    assert Job.objects.count() == jobs


def test_every_list_table_is_checked(client, operator, world, acme):
    client.force_login(operator)
    reached = set()
    for name in PORTAL_PAGES:
        response = client.get(reverse(name), follow=True)
        if response.context and response.context.get("table") is not None:
            reached.add(response.context["table"].name)
    subnet = world.get(apps.get_model("inventory.Subnet"), acme)
    response = client.get(reverse("inventory:subnet", args=[subnet.pk]))
    reached.add(response.context["table"].name)
    # Every Table subclass of the portal is the list of a page walked above (tables.py keeps
    # the registry), so none escapes the list, count, export and bulk checks.
    assert set(tables._TABLES) - {""} <= reached


@pytest.mark.parametrize("name", sorted(PORTAL_OBJECT_URLS))
def test_portal_object_pages_answer_404_for_another_tenant(
    name, world, client, operator, acme, globex
):
    model = apps.get_model(PORTAL_OBJECT_URLS[name])
    mine, theirs = world.get(model, acme), world.get(model, globex)
    world.get(apps.get_model("deploy.ServerDeploy"), globex)
    client.force_login(operator)
    before = {"theirs": snapshot(theirs)}
    jobs = Job.objects.count()
    statuses = set()
    for method in ("get", "post"):
        response = getattr(client, method)(reverse(name, args=[theirs.pk]))
        missing = getattr(client, method)(reverse(name, args=[MISSING]))
        assert response.status_code == missing.status_code, (method, response.status_code)
        assert response.status_code in (403, 404, 405), (method, response.status_code)
        assert b"globex" not in _content(response).lower()
        statuses.add(response.status_code)
    assert statuses & {403, 404}
    assert_nothing_changed({"theirs": theirs}, before)
    assert Job.objects.count() == jobs
    # The page of one's own object (an edit dialog with its pickers) shows nothing of globex.
    response = client.get(reverse(name, args=[mine.pk]))
    assert response.status_code in (200, 302, 403, 405)
    assert b"globex" not in _content(response).lower()


def test_template_editor_server_picker_offers_only_own_servers(
    world, client, operator, acme, globex
):
    mine, theirs = (world.get(apps.get_model("inventory.Server"), t) for t in (acme, globex))
    client.force_login(operator)
    url = reverse("deploy:template-servers")
    assert mine.hostname.encode() in client.get(url, {"server": "acme"}).content
    for typed in ("", "acme", "node", "globex", theirs.hostname):
        response = client.get(url, {"server": typed})
        assert response.status_code == 200
        assert theirs.hostname.encode() not in response.content


# The CLI ---------------------------------------------------------------------------------------


def _command(*args):
    out, err = StringIO(), StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
    except Exception as exc:  # a refusal is a CommandError; its text is checked like output
        return f"{out.getvalue()}{err.getvalue()}{exc}"
    return out.getvalue() + err.getvalue()


def test_cli_lists_and_names_only_own_servers_and_vms(world, operator, acme, globex):
    server = world.get(apps.get_model("inventory.Server"), globex)
    vm = world.get(apps.get_model("virt.Vm"), globex)
    listing = _command("nodels", "--user", operator.username, "-o", "json")
    assert "acme-node" in listing and "globex" not in listing
    # Another tenant's name is refused in the very words of a name that does not exist.
    for command, name in (("nodels", server.hostname), ("lsvm", vm.server.hostname)):
        theirs = _command(command, name, "--user", operator.username)
        missing = _command(command, "nosuch-node", "--user", operator.username)
        assert theirs.replace(name, "X") == missing.replace("nosuch-node", "X")
    vms = _command("lsvm", "--user", operator.username, "--json")
    assert "acme-vm" in vms and "globex" not in vms
    assert "globex-vm" not in _command("lsvm", "--user", operator.username, "--pool", "globex-pool")
    assert "globex-vm" not in _command("lsvm", "--user", operator.username, "--tenant", "globex")
    assert Tenant.objects.filter(slug="globex").exists()

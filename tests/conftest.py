"""Shared fixtures. The database is the real PostgreSQL of DATABASE_URL (pytest-django makes a
test_ database beside it); queues are the real Redis of REDIS_URL."""

import django_rq
import pytest
from django.conf import settings
from rest_framework.test import APIClient

from dcportal import ratelimit, rbac, services
from dcportal.models import Role, Tenant

pytest_plugins = ["tests.peers.bmc"]  # ipmi_bmcs, redfish_bmcs: real BMC simulators


@pytest.fixture(autouse=True)
def _empty_queues(request):
    """Each test starts with empty RQ queues and registries (only tests that touch the database
    use Redis): a failed or started entry another test left must not count as this one's."""
    if "django_db" in {m.name for m in request.node.iter_markers()}:
        for name in settings.JOB_QUEUES:
            queue = django_rq.get_queue(name)
            queue.empty()
            registries = (
                queue.started_job_registry,
                queue.finished_job_registry,
                queue.failed_job_registry,
                queue.deferred_job_registry,
                queue.scheduled_job_registry,
                queue.canceled_job_registry,
            )
            queue.connection.delete(*(registry.key for registry in registries))
    yield


@pytest.fixture(autouse=True)
def _fresh_rate_limits(request):
    """Rate limits and lockouts are counted in Redis, which outlives a test: each test that
    makes requests (they need the database) starts with none."""
    marked = "django_db" in {m.name for m in request.node.iter_markers()}
    if marked or {"db", "transactional_db"} & set(request.fixturenames):
        ratelimit.clear()


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """The production hasher costs ~1 s per user on purpose; tests hash many users."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def make_user(django_user_model):
    def make(username, *, roles=(), tenants=(), password="correct horse battery", **extra):
        user = django_user_model.objects.create_user(username=username, password=password, **extra)
        for name in roles:
            Role.objects.get(name=name).users.add(user)
        for tenant in tenants:
            tenant.members.add(user)
        rbac.forget(user)
        return user

    return make


@pytest.fixture
def admin_user(make_user):
    return make_user("root", roles=[rbac.ADMIN])


@pytest.fixture
def operator(make_user, tenants):
    """An operator of the first tenant (acme) only."""
    return make_user("op", roles=["operator"], tenants=[tenants[0]])


@pytest.fixture
def viewer(make_user, tenants):
    """A read-only user of the first tenant (acme) only."""
    return make_user("viewer", roles=["read-only"], tenants=[tenants[0]])


@pytest.fixture
def tenants(db):
    return (
        Tenant.objects.create(name="Acme", slug="acme"),
        Tenant.objects.create(name="Globex", slug="globex"),
    )


@pytest.fixture
def api():
    """An API client; `api.as_user(u)` authenticates with a fresh token of that user."""
    client = APIClient()

    def as_user(user, write=True):
        _, key = services.create_token(
            user=user,
            name=f"t{Tenant.objects.count()}-{user.pk}-{user.api_tokens.count()}",
            write=write,
        )
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        return client

    client.as_user = as_user
    return client

"""Every operation of the API schema the portal serves (/api/schema/), fuzzed by schemathesis with
an admin's API token: no answer is a 5xx, and every answer (status, content type, headers, body)
is one the schema documents; a method an operation lacks answers 405.

The portal runs in-process (WSGI) inside the test's transaction; the database holds two tenants of
realistic rows so that generated ids and filters sometimes find something. No worker runs: power,
deploy, virt and CA jobs are only created (inside the test's transaction their push to Redis
never happens), and no API call contacts a BMC or a hypervisor synchronously; the device timeouts
are set short all the same, so a change that made one would fail quickly instead of hanging.

The run is bounded and reproducible: Hypothesis is derandomized with a fixed number of examples
per operation (positive and negative); schemathesis' coverage phase (boundary and wrong-type
values of every parameter, undocumented methods) runs on the GET and DELETE operations, whose
input is their query and path: the bodies of the writes get the fuzzing examples only, which
keeps the whole run within a few minutes on two cores. Nothing is excluded.
"""

import ipaddress

import hypothesis
import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections, transaction
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from ca import services as ca_services
from ca.models import Certificate
from dcportal import jobs, services
from dcportal.models import Credential
from inventory import power_services, registration
from inventory.models import Conflict, IPRange, Server
from tests.integration.deploy.catalogue_helpers import (
    make_os,
    make_profile,
    make_server,
    make_template,
    set_param,
)
from tests.integration.virt.api_helpers import make_pool, make_vms

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

EXAMPLES = 25  # per operation, positive and negative together
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    unsupported_method,
]


def seed(admin, tenants):
    """Rows of every kind in both tenants: servers with interfaces and addresses in a subnet with
    a range, a BMC with a credential, deploy OS/profile/template/parameter and a build, a
    registration conflict and an enrolment token, certificate requests (one signed) under a
    shared CA, a XenAPI pool with hosts, storage, networks and VMs, and a job."""
    root = ca_services.create_authority(
        user=admin, name="Fleet root", slug="root", key_type="ec-p256"
    )
    ca_services.create_authority(
        user=admin, name="Hosts", slug="hosts", parent=root, key_type="ec-p256"
    )
    for n, tenant in enumerate(tenants, start=1):
        template = make_template(f"ks-{tenant.slug}", "kickstart", content="text\n", tenant=tenant)
        os_row = make_os(name=f"rocky9-{tenant.slug}", tenant=tenant)
        profile = make_profile(f"web-{tenant.slug}", os_row, template, tenant=tenant)
        set_param("ntp", "10.0.0.123", tenant=tenant)
        servers = [
            make_server(tenant, f"{tenant.slug}{i:02d}", profile=profile if i == 1 else None)
            for i in range(1, 4)
        ]
        subnet = servers[0].interfaces.first().addresses.first().subnet
        IPRange.objects.create(
            subnet=subnet,
            start=subnet.network.network_address + 100,
            end=subnet.network.network_address + 150,
            kind=IPRange.Kind.DHCP,
        )
        credential = Credential.objects.create(
            tenant=tenant, name=f"bmc-{tenant.slug}", username="ADMIN", secret="secret"
        )
        power_services.create_bmc(
            user=admin,
            server=servers[0],
            driver="ipmi",
            address=str(ipaddress.ip_address("192.0.2.10") + n),  # TEST-NET-1: nobody answers
            credential=credential,
        )
        Conflict.objects.create(
            tenant=tenant, kind=Conflict.Kind.HOSTNAME, server=servers[1], detail="Name taken"
        )
        registration.create_enrolment_token(user=admin, tenant=tenant, name="rack-1")
        ca_services.generate_request(user=admin, authority=root, server=servers[0], sign=True)
        ca_services.generate_request(
            user=admin, authority=root, tenant=tenant, names=[f"api.{tenant.slug}.example.com"]
        )
        pool = make_pool(f"xen-{tenant.slug}", tenant)
        make_vms(pool, tenant, 2, prefix=f"{tenant.slug}-vm")
        jobs.enqueue("dcportal.ping", user=admin, obj=servers[0], params={"seconds": 0})
    services.create_token(user=admin, name="other")
    assert Certificate.objects.count() == 2
    assert Server.objects.count() == 10


@pytest.fixture
def api_schema(request, settings, admin_user, tenants):
    # schemathesis' lazy schema reads (and rewrites, to name the operation in reports) the node's
    # `_nodeid`, which pytest 9 keeps under another name.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid
    settings.ALLOWED_HOSTS = ["localhost"]  # the host schemathesis' WSGI client sends
    settings.POWER_TIMEOUT = 1
    settings.VIRT_TIMEOUT = 1
    seed(admin_user, tenants)
    _, key = services.create_token(user=admin_user, name="fuzz")
    headers = {"Authorization": f"Bearer {key}"}
    config = schemathesis.Config.from_dict(
        {
            "headers": headers,
            "generation": {
                "mode": "all",
                "max-examples": EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
            "operations": [
                {"include-method": ["GET", "DELETE"], "phases": {"coverage": {"enabled": True}}}
            ],
        }
    )
    # The portal runs inside the test's transaction, as under Django's test client: the handler
    # must not close the connection at the end of each request.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi(
            "/api/schema/", WSGIHandler(), config=config, headers=headers
        )
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


fuzzed = schemathesis.pytest.from_fixture("api_schema")


@fuzzed.parametrize()
@hypothesis.settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_api_operation(case):
    # Each request in a savepoint of its own: what one case writes (or a database error it
    # causes) is undone before the next, so every case meets the seeded rows.
    with transaction.atomic():
        response = case.call()
        transaction.set_rollback(True)
    case.validate_response(response, checks=CHECKS)

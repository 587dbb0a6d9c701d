"""Fixtures and report builders shared by the registration tests (imported by name)."""

import copy

import pytest
from rest_framework.test import APIClient

from inventory import registration

UUID_A = "4c4c4544-0042-3510-8052-b7c04f333232"
UUID_B = "4c4c4544-0042-3510-8052-b7c04f339999"


def make_report(**changes):
    """A typical report of one machine; keyword arguments replace or add keys."""
    report = {
        "uuid": UUID_A.upper(),
        "serial": "SRV-0042",
        "sys_vendor": "Dell Inc.",
        "product_name": "PowerEdge R640",
        "cpu": {"count": 8, "model": "Xeon Gold 6130"},
        "memory": {"total_bytes": 201326592000},
        "disks": [{"name": "sda", "size_bytes": 480103981056}],
        "interfaces": [
            {"name": "eno1", "mac": "AA:BB:CC:00:00:01", "boot": True, "speed_mbps": 10000},
            {"name": "eno2", "mac": "aa:bb:cc:00:00:02"},
        ],
    }
    report.update(copy.deepcopy(changes))
    return {k: v for k, v in report.items() if v is not ...}


@pytest.fixture
def acme(tenants):
    return tenants[0]


@pytest.fixture
def globex(tenants):
    return tenants[1]


@pytest.fixture
def operator(make_user, acme):
    return make_user("op", roles=["operator"], tenants=[acme])


@pytest.fixture
def enrolment(admin_user, acme):
    """(token, key) of an enrolment token of acme."""
    return registration.create_enrolment_token(user=admin_user, tenant=acme, name="rack-1")


@pytest.fixture
def agent_client(enrolment):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {enrolment[1]}")
    return client


def register_as_agent(enrolment, report):
    token, _ = enrolment
    return registration.register(report=report, tenant=token.tenant, token=token)

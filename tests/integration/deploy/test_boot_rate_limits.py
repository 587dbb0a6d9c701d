"""Rate limits and token lockouts of the public endpoints, through the real views, Redis and
database: per source (X-Forwarded-For only from a trusted proxy), per MAC, per build token;
brute force of build, enrolment and API tokens locks the source out even for a valid token;
without Redis, machines still boot."""

import itertools
import logging

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from dcportal import ratelimit
from dcportal.urls import PUBLIC_URL_NAMES
from deploy import services
from inventory import registration

from .build_helpers import mac_of, make_profile, make_servers, token_of

pytestmark = pytest.mark.django_db

WRONG_BUILD_TOKEN = "dcb_" + "x" * 43
WRONG_ENROLMENT_TOKEN = "dce_0123456789ab_" + "x" * 43
WRONG_API_TOKEN = "dcp_0123456789ab_" + "x" * 43
_addresses = (f"10.77.{i // 250}.{i % 250 + 1}" for i in itertools.count())


def hyphens(mac):
    return mac.replace(":", "-")


@pytest.fixture
def source():
    """A client with a source address of its own (REMOTE_ADDR), like a machine of its own."""
    return lambda: Client(REMOTE_ADDR=next(_addresses))


@pytest.fixture
def installing(tenants, admin_user):
    """Two servers in build mode."""
    servers = make_servers(tenants[0], 2)
    services.nodeset(user=admin_user, servers=servers, next_boot="install", profile=make_profile())
    return servers


def limited(response):
    assert response.status_code == 429, response.content
    assert 0 < int(response["Retry-After"]) <= 900
    return response


def locked_out_logs(caplog):
    return [r for r in caplog.records if "locked out" in r.getMessage()]


# Per source -------------------------------------------------------------------------------------


def _requests():
    """One request to every public URL name: (method, path)."""
    mac = "52-54-00-aa-00-01"
    slug = "hosts"
    get = "get"
    return {
        "inventory:agent": (get, reverse("inventory:agent")),
        "boot:ipxe": (get, reverse("boot:ipxe")),
        "boot:ipxe-mac": (get, reverse("boot:ipxe-mac", args=[mac])),
        "boot:pxelinux": (get, reverse("boot:pxelinux", args=[f"01-{mac}"])),
        "boot:grub": (get, reverse("boot:grub", args=[f"grub.cfg-01-{mac}"])),
        "boot:file": (get, reverse("boot:file", args=["rocky9/vmlinuz"])),
        "boot:template": (get, reverse("boot:template", args=[WRONG_BUILD_TOKEN, "install"])),
        "boot:progress": ("post", reverse("boot:progress", args=[WRONG_BUILD_TOKEN])),
        "boot:done": ("post", reverse("boot:done", args=[WRONG_BUILD_TOKEN])),
        "boot:failed": ("post", reverse("boot:failed", args=[WRONG_BUILD_TOKEN])),
        "pki:authority-pem": (get, reverse("pki:authority-pem", args=[slug])),
        "pki:authority-der": (get, reverse("pki:authority-der", args=[slug])),
        "pki:crl-der": (get, reverse("pki:crl-der", args=[slug])),
        "pki:crl-pem": (get, reverse("pki:crl-pem", args=[slug])),
        "pki:autosign": ("post", reverse("pki:autosign", args=[WRONG_BUILD_TOKEN])),
    }


def test_every_public_endpoint_is_limited_per_source(settings, source):
    settings.BOOT_RATE_PER_SOURCE = 2
    requests = _requests()
    assert set(requests) == PUBLIC_URL_NAMES  # a new public endpoint needs its line here
    for name, (method, path) in requests.items():
        client = source()
        for _ in range(2):
            assert getattr(client, method)(path).status_code != 429, name
        limited(getattr(client, method)(path))
        # The same request from another address is not limited.
        assert getattr(source(), method)(path).status_code != 429, name


def test_another_source_behind_the_trusted_proxy_is_unaffected(settings, installing):
    settings.BOOT_RATE_PER_SOURCE = 3
    settings.TRUSTED_PROXIES = ["127.0.0.1/32"]
    proxy = Client(REMOTE_ADDR="127.0.0.1")
    url = f"/boot/ipxe/{hyphens(mac_of(installing[0]))}"
    for _ in range(3):
        assert proxy.get(url, HTTP_X_FORWARDED_FOR="10.1.0.1").status_code == 200
    limited(proxy.get(url, HTTP_X_FORWARDED_FOR="10.1.0.1"))
    assert proxy.get(url, HTTP_X_FORWARDED_FOR="10.1.0.2").status_code == 200
    # An address that is not a trusted proxy cannot escape its limit with X-Forwarded-For.
    stranger = Client(REMOTE_ADDR="10.2.0.1")
    for n in range(3):
        assert stranger.get("/boot/ipxe", HTTP_X_FORWARDED_FOR=f"10.3.0.{n}").status_code == 200
    limited(stranger.get("/boot/ipxe", HTTP_X_FORWARDED_FOR="10.3.0.9"))


def test_zero_turns_the_source_limit_off(settings, source):
    settings.BOOT_RATE_PER_SOURCE = 0
    client = source()
    assert all(client.get("/boot/ipxe").status_code == 200 for _ in range(5))


# Per MAC and per build --------------------------------------------------------------------------


def test_the_per_mac_limit_holds_whatever_the_source_and_the_script(settings, source):
    settings.BOOT_RATE_PER_MAC = 3
    mac = "52-54-00-aa-00-02"
    # iPXE, PXELinux and GRUB names of the same MAC count together, from any address.
    assert source().get(f"/boot/ipxe/{mac}").status_code == 200
    assert source().get(f"/boot/pxelinux.cfg/01-{mac}").status_code == 200
    assert source().get(f"/boot/grub/grub.cfg-01-{mac.replace('-', ':')}").status_code == 200
    limited(source().get(f"/boot/ipxe/{mac.upper()}"))
    limited(source().get(f"/boot/pxelinux.cfg/01-{mac}"))
    # Another MAC, and names without one, are not limited by it.
    assert source().get("/boot/ipxe/52-54-00-aa-00-03").status_code == 200
    assert source().get("/boot/pxelinux.cfg/default").status_code == 200


def test_the_per_build_limit_holds_whatever_the_source(settings, source, installing):
    settings.BOOT_RATE_PER_MAC = 2
    first, second = (token_of(server) for server in installing)
    for _ in range(2):
        assert source().get(f"/boot/build/{first}/install").status_code == 200
    limited(source().post(f"/boot/build/{first}/progress", {"percent": 5}))
    assert source().get(f"/boot/build/{second}/install").status_code == 200


# Token brute force ------------------------------------------------------------------------------


def test_build_token_brute_force_locks_the_source_out(settings, source, installing, caplog):
    settings.TOKEN_MAX_FAILURES = 3
    token = token_of(installing[0])
    attacker, bystander = source(), source()
    address = attacker.defaults["REMOTE_ADDR"]
    with caplog.at_level(logging.WARNING, logger="dcportal.ratelimit"):
        assert attacker.get(f"/boot/build/{WRONG_BUILD_TOKEN}/install").status_code == 403
        assert attacker.post(f"/boot/build/{WRONG_BUILD_TOKEN}/progress").status_code == 403
        assert attacker.post(f"/boot/build/{WRONG_BUILD_TOKEN[:-1]}y/done").status_code == 403
        # Locked: now even the valid token is refused, on every token-bound endpoint.
        limited(attacker.get(f"/boot/build/{token}/install"))
        limited(attacker.post(f"/boot/build/{token}/progress", {"percent": 10}))
        limited(attacker.post(f"/boot/build/{WRONG_BUILD_TOKEN}/failed"))
        autosign = reverse("pki:autosign", args=[token])
        limited(attacker.post(autosign, "csr", content_type="application/x-pem-file"))
    (record,) = locked_out_logs(caplog)  # logged once, not per request
    assert address in record.getMessage()
    # Other machines go on; so do the locked source's boot scripts, which take no token.
    assert bystander.get(f"/boot/build/{token}/install").status_code == 200
    assert attacker.get(f"/boot/ipxe/{hyphens(mac_of(installing[0]))}").status_code == 200
    # When the lockout's window has passed, the valid token works again.
    ratelimit.reset(ratelimit.REFUSALS, address)
    assert attacker.get(f"/boot/build/{token}/install").status_code == 200


def test_a_valid_token_counts_no_failure(settings, source, installing):
    settings.TOKEN_MAX_FAILURES = 2
    token = token_of(installing[0])
    client = source()
    for _ in range(4):
        assert client.get(f"/boot/build/{token}/install").status_code == 200


@pytest.fixture
def enrolment(admin_user, tenants):
    return registration.create_enrolment_token(user=admin_user, tenant=tenants[0], name="rack")


def _agent(key):
    client = APIClient(REMOTE_ADDR=next(_addresses))
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def _register(client):
    report = {"uuid": "4c4c4544-0042-3510-8052-b7c04f333232", "serial": "SRV-RL-1"}
    return client.post(reverse("api:inventory-register"), report, format="json")


def test_enrolment_token_brute_force_locks_the_source_out(settings, enrolment, caplog):
    settings.TOKEN_MAX_FAILURES = 3
    _, key = enrolment
    attacker = _agent(WRONG_ENROLMENT_TOKEN)
    with caplog.at_level(logging.WARNING, logger="dcportal.ratelimit"):
        for _ in range(3):
            assert _register(attacker).status_code == 401
        attacker.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        limited(_register(attacker))
        limited(_register(attacker))
    assert len(locked_out_logs(caplog)) == 1
    assert _register(_agent(key)).status_code == 201


def test_the_register_call_is_limited_per_source(settings, enrolment):
    settings.BOOT_RATE_PER_SOURCE = 2
    agent = _agent(enrolment[1])
    assert _register(agent).status_code == 201
    assert _register(agent).status_code == 200
    limited(_register(agent))
    assert _register(_agent(enrolment[1])).status_code == 200


def test_api_token_brute_force_locks_the_source_out(settings, admin_user):
    from dcportal import services as portal_services

    settings.TOKEN_MAX_FAILURES = 3
    _, key = portal_services.create_token(user=admin_user, name="ci")
    attacker = _agent(WRONG_API_TOKEN)
    for _ in range(2):
        assert attacker.get("/api/inventory/servers/").status_code == 401
    # Refused tokens of every kind count together: a wrong build token is the third.
    same_address = Client(REMOTE_ADDR=attacker.defaults["REMOTE_ADDR"])
    assert same_address.post(f"/boot/build/{WRONG_BUILD_TOKEN}/done").status_code == 403
    attacker.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    response = limited(attacker.get("/api/inventory/servers/"))
    assert response.json()["error"]["status"] == 429
    assert _agent(key).get("/api/inventory/servers/").status_code == 200


# Without Redis ----------------------------------------------------------------------------------


def test_without_redis_machines_still_boot(settings, source, installing, caplog):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    settings.BOOT_RATE_PER_SOURCE = settings.BOOT_RATE_PER_MAC = settings.TOKEN_MAX_FAILURES = 1
    client = source()
    token = token_of(installing[0])
    with caplog.at_level(logging.WARNING, logger="dcportal.ratelimit"):
        for _ in range(3):
            assert client.get(f"/boot/ipxe/{hyphens(mac_of(installing[0]))}").status_code == 200
            assert client.get(f"/boot/build/{WRONG_BUILD_TOKEN}/install").status_code == 403
            assert client.get(f"/boot/build/{token}/install").status_code == 200
    assert any("Redis does not answer" in r.getMessage() for r in caplog.records)

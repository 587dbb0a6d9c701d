"""The unauthenticated boot endpoints, as an anonymous client (firmware) sees them: the chain
script, per-MAC iPXE scripts in every mode and MAC form, PXELinux and GRUB configs, boot files,
and install templates that only a live build token opens."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django.utils.http import http_date

from dcportal.models import AuditEvent
from deploy import services, tokens
from deploy.models import ServerDeploy, Template

from .build_helpers import deploy_row, mac_of, make_profile, make_servers, token_of

pytestmark = pytest.mark.django_db

BASE = "http://testserver"


@pytest.fixture
def client():
    # Firmware has no session and no CSRF cookie.
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def profile():
    return make_profile()


@pytest.fixture
def node(tenants):
    (server,) = make_servers(tenants[0], 1)
    return server


@pytest.fixture
def installing(node, admin_user, profile):
    services.nodeset(user=admin_user, servers=[node], next_boot="install", profile=profile)
    return node


def text(response, status=200):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def hyphens(mac):
    return mac.replace(":", "-")


def test_the_chain_script(client, settings):
    script = text(client.get("/boot/ipxe"))
    assert script.startswith("#!ipxe\n")
    assert f"chain --autofree {BASE}/boot/ipxe/${{net0/mac:hexhyp}}?uuid=${{uuid}}" in script
    settings.BOOT_URL = "http://10.0.0.1:8000"
    assert "http://10.0.0.1:8000/boot/ipxe/${net0/mac:hexhyp}" in text(client.get("/boot/ipxe"))
    assert Client().post("/boot/ipxe").status_code == 405


@pytest.mark.parametrize(
    "form",
    [
        hyphens,
        str,
        str.upper,
        lambda mac: mac.replace(":", "%3A"),
        lambda mac: mac.replace(":", ""),
    ],
    ids=["hexhyp", "colons", "upper", "percent", "bare"],
)
def test_install_script_in_every_mac_form(client, installing, form):
    mac = mac_of(installing)
    script = text(client.get(f"/boot/ipxe/{form(mac)}"))
    token = token_of(installing)
    assert script.startswith("#!ipxe")
    assert f"kernel {BASE}/boot/files/rocky9/vmlinuz initrd=initrd" in script
    assert f"inst.ks={BASE}/boot/build/{token}/install" in script
    assert f"initrd --name initrd {BASE}/boot/files/rocky9/initrd.img" in script
    assert "console=ttyS0" in script
    assert response_cache(client, f"/boot/ipxe/{hyphens(mac)}") == "no-store"


def response_cache(client, url):
    return client.get(url)["Cache-Control"]


def test_fetching_the_install_script_records_the_boot_once(client, installing):
    url = f"/boot/ipxe/{hyphens(mac_of(installing))}"
    text(client.get(url))
    row = deploy_row(installing)
    assert (row.stage, row.state) == ("booted", "building") and row.booted is not None
    text(client.get(url))
    events = AuditEvent.objects.filter(verb="build-booted")
    assert events.count() == 1
    event = events.get()
    assert (event.actor, event.via, event.object_repr) == (None, "boot", "node01")
    assert event.changes["stage"] == ["waiting", "booted"]


def test_localboot(client, node, admin_user):
    # No deployment row at all: the local disk.
    script = text(client.get(f"/boot/ipxe/{hyphens(mac_of(node))}"))
    assert "\nexit" in script and "kernel" not in script
    services.nodeset(user=admin_user, servers=[node], next_boot="localboot")
    assert "\nexit" in text(client.get(f"/boot/ipxe/{mac_of(node)}"))
    assert not ServerDeploy.objects.exclude(stage="").exists()


def test_rescue(client, node, admin_user, settings):
    settings.RESCUE_KERNEL, settings.RESCUE_ARGS = "rescue/vmlinuz", "rescue.mode=1"
    services.nodeset(user=admin_user, servers=[node], next_boot="rescue")
    script = text(client.get(f"/boot/ipxe/{hyphens(mac_of(node))}"))
    assert f"kernel {BASE}/boot/files/rescue/vmlinuz initrd=initrd rescue.mode=1" in script
    assert "/boot/build/" not in script


def test_unknown_machines_boot_discovery(client, node, admin_user, settings):
    settings.DISCOVERY_KERNEL = "discovery/vmlinuz"
    script = text(client.get("/boot/ipxe/02-00-00-00-00-01"))
    assert f"kernel {BASE}/boot/files/discovery/vmlinuz" in script
    assert f"dcportal.url={BASE}" in script
    assert "/boot/build/" not in script
    services.nodeset(user=admin_user, servers=[node], next_boot="discovery")
    assert "discovery/vmlinuz" in text(client.get(f"/boot/ipxe/{hyphens(mac_of(node))}"))


def test_a_known_uuid_finds_its_server_from_another_nic(client, installing):
    installing.uuid = "11111111-2222-3333-4444-555555555555"
    installing.save(update_fields=["uuid"])
    url = "/boot/ipxe/02-00-00-00-00-09?uuid=11111111-2222-3333-4444-555555555555&serial=x"
    assert "inst.ks=" in text(client.get(url))
    # A placeholder UUID identifies nothing.
    url = "/boot/ipxe/02-00-00-00-00-09?uuid=00000000-0000-0000-0000-000000000000"
    assert "discovery" in text(client.get(url)).lower()


@pytest.mark.parametrize("mac", ["nonsense", "52-54-00-12-34", "..", "01-52-54-00-12-34-56"])
def test_not_a_mac(client, mac):
    assert client.get(f"/boot/ipxe/{mac}").status_code == 404


def test_expired_token_boots_the_disk(client, installing):
    ServerDeploy.objects.filter(server=installing).update(
        token_expires=timezone.now() - timedelta(seconds=1)
    )
    script = text(client.get(f"/boot/ipxe/{hyphens(mac_of(installing))}"))
    assert "\nexit" in script and "inst.ks" not in script
    assert deploy_row(installing).stage == "waiting"


# PXELinux and GRUB ----------------------------------------------------------------------------


def test_pxelinux(client, installing, node, tenants, admin_user):
    token = token_of(installing)
    config = text(client.get(f"/boot/pxelinux.cfg/01-{hyphens(mac_of(installing))}"))
    assert "DEFAULT install" in config
    assert f"KERNEL {BASE}/boot/files/rocky9/vmlinuz" in config
    assert f"inst.ks={BASE}/boot/build/{token}/install" in config
    assert deploy_row(installing).stage == "booted"

    assert "LOCALBOOT 0" in text(client.get("/boot/pxelinux.cfg/default"))
    # PXELinux asks for its UUID first: known, its own config; unknown, not found, so that it
    # goes on to 01-<mac>. Hexadecimal IP names: not found, on to "default".
    (other,) = make_servers(tenants[0], 1, prefix="uuid")
    other.uuid = "11111111-2222-3333-4444-555555555555"
    other.save(update_fields=["uuid"])
    services.nodeset(user=admin_user, servers=[other], next_boot="rescue")
    assert "DEFAULT rescue" in text(
        client.get("/boot/pxelinux.cfg/11111111-2222-3333-4444-555555555555")
    )
    for name in ("99999999-2222-3333-4444-555555555555", "C0A80001", "C0A8", "x" * 300):
        assert client.get(f"/boot/pxelinux.cfg/{name}").status_code == 404
    assert "DEFAULT discovery" in text(client.get("/boot/pxelinux.cfg/01-02-00-00-00-00-07"))


def test_grub(client, installing):
    token = token_of(installing)
    mac = mac_of(installing)
    for name in (f"grub.cfg-01-{hyphens(mac)}", f"grub.cfg-{mac}"):
        config = text(client.get(f"/boot/grub/{name}"))
        assert "linux (http,testserver)/boot/files/rocky9/vmlinuz" in config
        assert f"inst.ks={BASE}/boot/build/{token}/install" in config
    for name in ("grub.cfg", "grub.cfg-0A000001"):
        assert "chainloader" in text(client.get(f"/boot/grub/{name}"))
    assert client.get("/boot/grub/other.cfg").status_code == 404


# Boot files -----------------------------------------------------------------------------------


@pytest.fixture
def boot_files(tmp_path, settings):
    root = tmp_path / "boot"
    (root / "rocky9").mkdir(parents=True)
    (root / "rocky9" / "vmlinuz").write_bytes(b"\x7fKERNEL" * 1000)
    (tmp_path / "secret").write_text("outside")
    (root / "escape").symlink_to(tmp_path / "secret")
    settings.BOOT_FILES_DIR = root
    return root


def test_boot_files(client, boot_files):
    response = client.get("/boot/files/rocky9/vmlinuz")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"\x7fKERNEL" * 1000
    assert response["Content-Length"] == "7000"
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Cache-Control"] == "public, max-age=3600"
    modified = response["Last-Modified"]
    assert modified == http_date((boot_files / "rocky9" / "vmlinuz").stat().st_mtime)
    again = client.get("/boot/files/rocky9/vmlinuz", HTTP_IF_MODIFIED_SINCE=modified)
    assert again.status_code == 304
    assert client.head("/boot/files/rocky9/vmlinuz").status_code == 200
    for name in ("escape", "rocky9/../escape", "rocky9", "missing", "%2e%2e/secret"):
        assert client.get(f"/boot/files/{name}").status_code == 404


# Install templates ----------------------------------------------------------------------------


def test_the_template_opens_with_the_token_only(client, installing):
    token = token_of(installing)
    kickstart = text(client.get(f"/boot/build/{token}/install"))
    assert kickstart.startswith("# kickstart of node01\n")
    assert f"curl -X POST {BASE}/boot/build/{token}/done" in kickstart
    row = deploy_row(installing)
    assert row.stage == "template" and row.template_fetched is not None
    assert AuditEvent.objects.filter(verb="build-template").count() == 1
    meta = text(client.get(f"/boot/build/{token}/meta-data"))
    assert "local-hostname: node01" in meta
    assert AuditEvent.objects.filter(verb="build-template").count() == 1
    assert client.get(f"/boot/build/{token}/other").status_code == 404
    # A redhat profile has no cloud-init user-data.
    assert client.get(f"/boot/build/{token}/user-data").status_code == 404


def snapshot(server):
    return {
        key: value
        for key, value in ServerDeploy.objects.filter(server=server).values().get().items()
        if key != "updated"
    }


def test_wrong_expired_and_used_tokens_answer_403_and_change_nothing(
    client, installing, admin_user
):
    token = token_of(installing)
    unknown = tokens.MARKER + "_" + "A" * 43
    before = snapshot(installing)
    for bad in (unknown, "garbage", token[:-1] + ("A" if token[-1] != "A" else "B")):
        response = client.get(f"/boot/build/{bad}/install")
        assert text(response, 403).startswith("Forbidden")
    assert snapshot(installing) == before

    ServerDeploy.objects.filter(server=installing).update(
        token_expires=timezone.now() - timedelta(seconds=1)
    )
    before = snapshot(installing)
    text(client.get(f"/boot/build/{token}/install"), 403)
    assert snapshot(installing) == before

    # Out of build mode, the template is gone with the token.
    services.nodeset(user=admin_user, servers=[installing], next_boot="install", profile="rocky9")
    fresh = token_of(installing)
    services.report_done(fresh)
    before = snapshot(installing)
    text(client.get(f"/boot/build/{fresh}/install"), 403)
    assert snapshot(installing) == before
    assert not AuditEvent.objects.filter(verb="build-template").exists()


def test_a_template_that_fails_answers_503_not_500(client, installing, profile, caplog):
    Template.objects.filter(pk=profile.install_template_id).update(content="{{ nope }}\n")
    response = client.get(f"/boot/build/{token_of(installing)}/install")
    assert "unavailable" in text(response, 503)
    assert deploy_row(installing).stage == "waiting"  # nothing recorded
    broken = Template.objects.create(name="broken-ipxe", kind="ipxe", content="{% if %}")
    profile.ipxe_template = broken
    profile.save()
    response = client.get(f"/boot/ipxe/{hyphens(mac_of(installing))}")
    assert "unavailable" in text(response, 503)
    assert deploy_row(installing).stage == "waiting"
    assert any("could not be rendered" in record.message for record in caplog.records)


def test_boot_urls_need_no_session_and_are_cheap(client, installing, django_assert_max_num_queries):
    url = f"/boot/ipxe/{hyphens(mac_of(installing))}"
    with django_assert_max_num_queries(12):
        text(client.get(url))
    token = re.search(r"/boot/build/(dcb_[A-Za-z0-9_-]+)/install", text(client.get(url))).group(1)
    with django_assert_max_num_queries(12):
        text(client.get(f"/boot/build/{token}/install"))

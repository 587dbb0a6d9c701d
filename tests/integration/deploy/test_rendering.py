"""deploy.rendering: the documented context, parameter inheritance, snippets, boot scripts."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dcportal.templating import TemplateError
from deploy import rendering
from deploy.models import Template
from inventory.models import Interface, IPAddress

from .catalogue_helpers import (
    BASE,
    TOKEN,
    make_os,
    make_profile,
    make_server,
    make_template,
    set_param,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def install_template():
    return make_template("ks-test", Template.Kind.KICKSTART, content="ks for {{ server.fqdn }}\n")


@pytest.fixture
def profile(install_template):
    return make_profile(
        "rocky9-web",
        make_os(),
        install_template,
        partitioning="autopart --type=lvm",
        parameters={"timezone": "Europe/Paris", "level": "profile"},
    )


@pytest.fixture
def server(tenants, profile):
    return make_server(tenants[0], profile=profile, parameters={"level": "server"})


def test_context_describes_the_server(server, settings):
    settings.CA_HOST_AUTHORITY = "hosts"
    context = rendering.server_context(server, base_url=BASE + "/", token=TOKEN)
    assert context["server"] == {
        "hostname": "node01",
        "short_name": "node01",
        "domain": "dc1.example.net",
        "fqdn": "node01.dc1.example.net",
        "uuid": "11111111-2222-3333-4444-555555555555",
        "serial": "SN-NODE01",
        "vendor": "Dell Inc.",
        "model": "PowerEdge R650",
        "kind": "physical",
        "status": "new",
        "tenant": "acme",
        "site": "par1",
        "rack": "r12",
        "tags": ["web", "prod"],
        "attributes": {"cpu": {"cores": 32}, "disks": [{"name": "sda", "size_gb": 480}]},
    }
    net = str(server.interfaces.get(name="eno2").addresses.get().subnet.network)
    eno2 = server.interfaces.get(name="eno2")
    assert [i["name"] for i in context["interfaces"]] == ["eno1", "eno2"]
    assert context["interfaces"][1]["boot"] is True
    assert context["interfaces"][1]["addresses"][0]["network"] == net
    primary = context["primary"]
    assert primary["name"] == "eno2"
    assert primary["mac"] == eno2.mac
    assert primary["address"] == str(eno2.addresses.get().address)
    assert primary["netmask"] == "255.255.255.0"
    assert primary["prefixlen"] == 24
    assert primary["gateway"].endswith(".0.1")
    assert primary["dns_servers"] == ["10.0.0.53", "10.0.1.53"]
    assert primary["domain"] == "dc1.example.net"
    assert primary["vlan"] == 120
    assert context["subnet"]["network"] == net
    assert context["subnet"]["name"] == "prov"
    assert context["os"] == {
        "name": "rocky9",
        "family": "redhat",
        "version": "9.4",
        "architecture": "x86_64",
        "kernel_url": BASE + "/boot/files/rocky9/vmlinuz",
        "initrd_url": BASE + "/boot/files/rocky9/initrd.img",
        "install_url": "http://mirror.example.net/rocky/9/BaseOS/x86_64/os/",
        "boot_args": "console=ttyS0,115200",
    }
    assert context["profile"] == {"name": "rocky9-web", "partitioning": "autopart --type=lvm"}
    build = f"{BASE}/boot/build/{TOKEN}"
    assert context["urls"] == {
        "portal": BASE,
        "template": build + "/install",
        "userdata_dir": build + "/",
        "progress": build + "/progress",
        "done": build + "/done",
        "failed": build + "/failed",
        "csr": f"{BASE}/pki/autosign/{TOKEN}",
        "ca_certificate": BASE + "/pki/hosts.pem",
        "crl": BASE + "/pki/hosts.crl",
    }
    assert context["token"] == TOKEN


def test_preview_uses_a_placeholder_token(server):
    context = rendering.server_context(server, base_url=BASE)
    assert context["token"] == "PREVIEW-TOKEN"
    assert context["urls"]["done"] == f"{BASE}/boot/build/PREVIEW-TOKEN/done"


def test_http_kernel_is_kept(tenants, install_template):
    os = make_os("remote", kernel="https://mirror.example.net/vmlinuz", initrd="")
    server = make_server(tenants[0], profile=make_profile("remote", os, install_template))
    context = rendering.server_context(server, base_url=BASE)
    assert context["os"]["kernel_url"] == "https://mirror.example.net/vmlinuz"
    assert context["os"]["initrd_url"] is None


def test_parameters_inherit_global_tenant_profile_server(server, tenants):
    for name in ("level", "from_global", "tenant_over_global"):
        set_param(name, f"global-{name}")
    set_param("level", "tenant", tenant=tenants[0])
    set_param("tenant_over_global", "tenant", tenant=tenants[0])
    set_param("tenant_over_global", "other tenant", tenant=tenants[1])
    set_param("only_globex", "x", tenant=tenants[1])
    params = rendering.server_context(server, base_url=BASE)["params"]
    assert params["from_global"] == "global-from_global"
    assert params["tenant_over_global"] == "tenant"
    assert params["timezone"] == "Europe/Paris"
    assert params["level"] == "server"
    assert "only_globex" not in params
    server.deploy.parameters = {}
    server.deploy.save()
    server.refresh_from_db()
    assert rendering.server_context(server, base_url=BASE)["params"]["level"] == "profile"


def test_server_without_deploy_or_addresses(tenants):
    server = make_server(tenants[0], "bare")
    IPAddress.objects.filter(interface__server=server).delete()
    Interface.objects.filter(server=server).delete()
    context = rendering.server_context(server, base_url=BASE)
    assert context["os"] is None and context["profile"] is None
    assert context["interfaces"] == []
    assert context["primary"]["mac"] is None and context["primary"]["address"] is None
    assert context["subnet"]["gateway"] is None
    assert context["server"]["domain"] is None
    assert context["server"]["fqdn"] == "bare"


def test_query_count_does_not_grow_with_interfaces(tenants, profile):
    small = make_server(tenants[0], "small", profile=profile)
    big = make_server(tenants[0], "big", profile=profile)
    for i in range(6):
        iface = Interface.objects.create(server=big, name=f"p{i}", mac=f"02:00:00:00:01:{i:02x}")
        subnet = IPAddress.objects.filter(interface__server=big).first().subnet
        IPAddress.objects.create(
            address=subnet.network.network_address + 100 + i, subnet=subnet, interface=iface
        )
    counts = []
    for server in (small, big):
        with CaptureQueriesContext(connection) as captured:
            rendering.render_template(profile.install_template, server, base_url=BASE)
        counts.append(len(captured))
    assert counts[0] == counts[1]
    assert counts[0] <= 6


def test_render_template_includes_tenant_snippets(server, tenants):
    make_template("snippet-hello", Template.Kind.SNIPPET, content="hello {{ server.short_name }}")
    make_template("snippet-acme", Template.Kind.SNIPPET, content="acme", tenant=tenants[0])
    make_template("snippet-globex", Template.Kind.SNIPPET, content="globex", tenant=tenants[1])
    template = Template(
        name="t",
        kind="kickstart",
        content='{% include "snippet-hello" %}/{% include "snippet-acme" %}',
    )
    assert rendering.render_template(template, server, base_url=BASE) == "hello node01/acme"
    template.content = '{% include "snippet-globex" %}'
    with pytest.raises(TemplateError, match="snippet-globex"):
        rendering.render_template(template, server, base_url=BASE)


def test_render_install_names(server):
    text, content_type = rendering.render_install(server, base_url=BASE, token=TOKEN)
    assert text == "ks for node01.dc1.example.net\n"
    assert content_type.startswith("text/plain")
    meta, _ = rendering.render_install(server, base_url=BASE, token=TOKEN, name="meta-data")
    assert meta == ("instance-id: 11111111-2222-3333-4444-555555555555\nlocal-hostname: node01\n")
    assert rendering.render_install(server, base_url=BASE, token=TOKEN, name="vendor-data")[0] == ""
    with pytest.raises(LookupError):
        rendering.render_install(server, base_url=BASE, token=TOKEN, name="user-data")
    with pytest.raises(LookupError):
        rendering.render_install(server, base_url=BASE, token=TOKEN, name="../etc/passwd")


def test_render_install_without_profile(tenants):
    server = make_server(tenants[0], "noprofile")
    with pytest.raises(LookupError):
        rendering.render_install(server, base_url=BASE, token=TOKEN)


def test_boot_install_ipxe(server):
    script = rendering.render_boot(
        "ipxe", mode="install", base_url=BASE, mac="52:54:00:00:00:02", server=server, token=TOKEN
    )
    lines = script.splitlines()
    assert lines[0] == "#!ipxe"
    kernel = next(line for line in lines if line.startswith("kernel "))
    assert kernel.split()[1] == BASE + "/boot/files/rocky9/vmlinuz"
    assert "initrd=initrd" in kernel.split()
    assert f"inst.ks={BASE}/boot/build/{TOKEN}/install" in kernel.split()
    assert "inst.repo=http://mirror.example.net/rocky/9/BaseOS/x86_64/os/" in kernel.split()
    assert kernel.endswith("console=ttyS0,115200")
    assert f"initrd --name initrd {BASE}/boot/files/rocky9/initrd.img" in lines
    assert lines[-1] == "boot"


def test_boot_discovery_without_server(settings):
    settings.DISCOVERY_KERNEL = "discovery/vmlinuz"
    settings.DISCOVERY_INITRD = "http://files.example.net/discovery.img"
    settings.DISCOVERY_ARGS = "console=ttyS0"
    for kind in rendering.BOOT_KINDS:
        text = rendering.render_boot(kind, mode="discovery", base_url=BASE, mac="52:54:00:aa:bb:cc")
        assert f"dcportal.url={BASE}" in text
        assert "console=ttyS0" in text


def test_install_needs_a_server():
    with pytest.raises(LookupError):
        rendering.render_boot("ipxe", mode="install", base_url=BASE, mac="52:54:00:aa:bb:cc")

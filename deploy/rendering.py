"""Rendering of install and boot templates for a server.

This module reads the database (server, interfaces, addresses, subnets, deploy profile,
parameters, snippets), turns it into plain data and renders stored templates through
dcportal.templating, the one sandboxed Jinja2 environment. A server costs a handful of queries
however many interfaces and addresses it has.

The context every template receives (docs/templates.md is the user-facing version):

``server``
    hostname, short_name (first label), domain (the rest of the host name, else the primary
    subnet's domain, else None), fqdn, uuid (str or None), serial, vendor, model, kind, status,
    tenant (slug), site (slug or None), rack (name or None), tags (list), attributes (dict:
    the inventory facts).
``interfaces``
    [{name, mac, boot, addresses: [{address, prefixlen, netmask, gateway, dns_servers, domain,
    network, vlan}]}], by name; addresses by address.
``primary``
    The boot interface (else the first one) and its first IPv4 address (else its first):
    name, mac, address, netmask, prefixlen, gateway, dns_servers, domain, network, vlan.
    Every value is None when unknown (dns_servers is then []).
``subnet``
    The subnet of the primary address: name, network, prefixlen, netmask, gateway,
    dns_servers, domain, vlan; values None when there is no primary address.
``os``
    The profile's operating system: name, family, version, architecture, kernel_url,
    initrd_url, install_url, boot_args; None without a profile. A kernel or initrd given as a
    path inside the boot files directory becomes <portal>/boot/files/<path>.
``profile``
    name, partitioning; None without a profile.
``params``
    Parameters merged in this order, later ones winning: global Parameter rows (no tenant),
    the server's tenant's Parameter rows, the profile's parameters, the server's own
    (ServerDeploy.parameters). Use ``params.get("name", default)`` for optional ones.
``urls``
    portal; template (<portal>/boot/build/<token>/install); userdata_dir
    (<portal>/boot/build/<token>/, the cloud-init nocloud seed); progress, done, failed
    (<portal>/boot/build/<token>/<event>); csr (<portal>/pki/autosign/<token>);
    ca_certificate (<portal>/pki/<host authority>.pem); crl (<portal>/pki/<host authority>.crl).
``token``
    The build token. Previews use the placeholder "PREVIEW-TOKEN" instead.

Boot templates (iPXE, PXELinux, GRUB) also get ``mode`` (install, localboot, rescue,
discovery), ``mac`` and ``boot`` {kernel_url, initrd_url, args, grub_kernel, grub_initrd}; for
an unknown machine (discovery) there is no server: ``server``, ``os`` and ``profile`` are None,
``interfaces`` is empty and the token-bound URLs are None.
"""

import copy
import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Prefetch, Q

from dcportal import templating
from dcportal.templating import TemplateError
from deploy.models import Parameter, Template
from inventory.models import Interface, IPAddress, Server

__all__ = [
    "BOOT_KINDS",
    "BOOT_MODES",
    "PREVIEW_TOKEN",
    "TemplateError",
    "builtin_source",
    "render_boot",
    "render_install",
    "render_template",
    "server_context",
    "servers_for_rendering",
]

PREVIEW_TOKEN = "PREVIEW-TOKEN"  # noqa: S105 (a visible placeholder, not a secret)
BOOT_KINDS = ("ipxe", "pxelinux", "grub")
BOOT_MODES = ("install", "localboot", "rescue", "discovery")
DEFAULT_TEMPLATES_DIR = Path(__file__).resolve().parent / "default_templates"
TEXT = "text/plain; charset=utf-8"

_PROFILE_PATHS = (
    "deploy__profile__os",
    "deploy__profile__install_template",
    "deploy__profile__ipxe_template",
    "deploy__profile__pxelinux_template",
    "deploy__profile__grub_template",
)


def servers_for_rendering():
    """Servers loaded with everything server_context() reads (3 queries for any number of
    interfaces). Callers that already hold such a server save one query."""
    addresses = IPAddress.objects.select_related("subnet").order_by("address")
    interfaces = Interface.objects.order_by("name").prefetch_related(
        Prefetch("addresses", queryset=addresses)
    )
    return Server.objects.select_related("tenant", "rack__site", *_PROFILE_PATHS).prefetch_related(
        Prefetch("interfaces", queryset=interfaces)
    )


def _loaded(server):
    """`server` itself when it came from servers_for_rendering(), else a fresh load of it."""
    cached = getattr(server, "_prefetched_objects_cache", {})
    if "interfaces" in cached and "tenant" in server._state.fields_cache:
        return server
    return servers_for_rendering().get(pk=server.pk)


def _deploy_of(server):
    try:
        return server.deploy
    except ObjectDoesNotExist:
        return None


def _profile_of(server):
    deploy = _deploy_of(server)
    return None if deploy is None else deploy.profile


def boot_file_url(value, base_url):
    """An http(s) kernel/initrd stays as it is; a path is served from <base>/boot/files/."""
    if not value:
        return None
    if value.startswith(("http://", "https://")):
        return value
    return f"{base_url}/boot/files/{value.lstrip('/')}"


def grub_path(url):
    """GRUB names files on an HTTP server as (http,host[,port])/path."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return url
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    device = f"http,{host}" if parts.port in (None, 80) else f"http,{host},{parts.port}"
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return f"({device}){path}"


def _subnet_data(subnet):
    if subnet is None:
        return dict.fromkeys(
            ("name", "network", "prefixlen", "netmask", "gateway", "domain", "vlan")
        ) | {"dns_servers": []}
    network = subnet.network
    return {
        "name": subnet.name or None,
        "network": str(network),
        "prefixlen": network.prefixlen,
        "netmask": str(network.netmask),
        "gateway": None if subnet.gateway is None else str(subnet.gateway),
        "dns_servers": [str(dns) for dns in subnet.dns_servers],
        "domain": subnet.domain or None,
        "vlan": subnet.vlan,
    }


def _address_data(address):
    subnet = _subnet_data(address.subnet)
    return {
        "address": str(address.address),
        "prefixlen": subnet["prefixlen"],
        "netmask": subnet["netmask"],
        "gateway": subnet["gateway"],
        "dns_servers": subnet["dns_servers"],
        "domain": subnet["domain"],
        "network": subnet["network"],
        "vlan": subnet["vlan"],
    }


def _primary(interfaces):
    """(interface, address) the server installs over: the boot interface, else the first."""
    if not interfaces:
        return None, None
    interface = next((i for i in interfaces if i.boot), interfaces[0])
    addresses = list(interface.addresses.all())
    v4 = [a for a in addresses if isinstance(a.address, ipaddress.IPv4Address)]
    address = (v4 or addresses or [None])[0]
    return interface, address


def _os_data(os, base_url):
    if os is None:
        return None
    return {
        "name": os.name,
        "family": os.family,
        "version": os.version,
        "architecture": os.architecture,
        "kernel_url": boot_file_url(os.kernel, base_url),
        "initrd_url": boot_file_url(os.initrd, base_url),
        "install_url": os.install_url or None,
        "boot_args": os.boot_args,
    }


def _params(tenant_id, profile, deploy):
    merged = {}
    rows = Parameter.objects.filter(Q(tenant__isnull=True) | Q(tenant_id=tenant_id))
    # Global rows first, so that a tenant's row of the same name wins.
    for row in sorted(rows.values("name", "value", "tenant_id"), key=lambda r: r["tenant_id"] or 0):
        merged[row["name"]] = row["value"]
    if profile is not None:
        merged.update(profile.parameters or {})
    if deploy is not None:
        merged.update(deploy.parameters or {})
    return copy.deepcopy(merged)


def _urls(base_url, token):
    authority = settings.CA_HOST_AUTHORITY
    urls = {
        "portal": base_url,
        "ca_certificate": f"{base_url}/pki/{authority}.pem",
        "crl": f"{base_url}/pki/{authority}.crl",
    }
    if token is None:
        return urls | dict.fromkeys(
            ("template", "userdata_dir", "progress", "done", "failed", "csr")
        )
    build = f"{base_url}/boot/build/{token}"
    return urls | {
        "template": f"{build}/install",
        "userdata_dir": f"{build}/",
        "progress": f"{build}/progress",
        "done": f"{build}/done",
        "failed": f"{build}/failed",
        "csr": f"{base_url}/pki/autosign/{token}",
    }


def server_context(server, *, base_url, token=None):
    """The documented template context for `server` (see the module docstring)."""
    base_url = base_url.rstrip("/")
    token = token or PREVIEW_TOKEN
    server = _loaded(server)
    deploy = _deploy_of(server)
    profile = None if deploy is None else deploy.profile
    interfaces = list(server.interfaces.all())
    primary_interface, primary_address = _primary(interfaces)
    subnet = _subnet_data(None if primary_address is None else primary_address.subnet)

    short_name, _, domain = server.hostname.partition(".")
    domain = domain or subnet["domain"]
    fqdn = f"{short_name}.{domain}" if domain else server.hostname
    rack = server.rack
    primary = {
        "name": getattr(primary_interface, "name", None),
        "mac": getattr(primary_interface, "mac", None),
        "address": None,
    } | {key: subnet[key] for key in subnet if key != "name"}
    if primary_address is not None:
        primary["address"] = str(primary_address.address)

    return {
        "server": {
            "hostname": server.hostname,
            "short_name": short_name,
            "domain": domain,
            "fqdn": fqdn,
            "uuid": None if server.uuid is None else str(server.uuid),
            "serial": server.serial,
            "vendor": server.vendor,
            "model": server.model,
            "kind": server.kind,
            "status": server.status,
            "tenant": server.tenant.slug,
            "site": rack.site.slug if rack else None,
            "rack": rack.name if rack else None,
            "tags": list(server.tags),
            "attributes": copy.deepcopy(server.attributes or {}),
        },
        "interfaces": [
            {
                "name": interface.name,
                "mac": interface.mac,
                "boot": interface.boot,
                "addresses": [_address_data(a) for a in interface.addresses.all()],
            }
            for interface in interfaces
        ],
        "primary": primary,
        "subnet": subnet,
        "os": _os_data(None if profile is None else profile.os, base_url),
        "profile": None
        if profile is None
        else {"name": profile.name, "partitioning": profile.partitioning},
        "params": _params(server.tenant_id, profile, deploy),
        "urls": _urls(base_url, token),
        "token": token,
    }


def _anonymous_context(base_url):
    """The context of a machine the portal does not know (discovery)."""
    subnet = _subnet_data(None)
    return {
        "server": None,
        "interfaces": [],
        "primary": {"name": None, "mac": None, "address": None}
        | {key: subnet[key] for key in subnet if key != "name"},
        "subnet": subnet,
        "os": None,
        "profile": None,
        "params": _params(None, None, None),
        "urls": _urls(base_url, None),
        "token": None,
    }


def snippets_for(tenant_id):
    """{name: source} of the snippets a server of this tenant may include."""
    rows = Template.objects.usable_by_tenant(tenant_id).filter(kind=Template.Kind.SNIPPET)
    return dict(rows.values_list("name", "content"))


def render_template(template, server, *, base_url, token=None):
    """Render a stored Template for `server`; raises TemplateError."""
    context = server_context(server, base_url=base_url, token=token)
    return templating.render(template.content, context, snippets=snippets_for(server.tenant_id))


def render_install(server, *, base_url, token, name="install"):
    """(text, content type) of what an installer fetches with its build token.

    `name`: "install" (the profile's install template), "user-data" (the same, for a
    cloud-init profile), "meta-data" (nocloud meta-data), "vendor-data" (empty). Any other
    name, or a server without a profile, raises LookupError."""
    server = _loaded(server)
    if name == "vendor-data":
        return "", TEXT
    if name == "meta-data":
        instance_id = str(server.uuid) if server.uuid else f"dcportal-{server.pk}"
        short_name = server.hostname.partition(".")[0]
        return f"instance-id: {instance_id}\nlocal-hostname: {short_name}\n", TEXT
    if name not in ("install", "user-data"):
        raise LookupError(f"No install file named {name!r}.")
    profile = _profile_of(server)
    if profile is None:
        raise LookupError(f"{server} has no deploy profile.")
    template = profile.install_template
    if name == "user-data" and template.kind != Template.Kind.CLOUD_INIT:
        raise LookupError(f"The profile {profile} does not install with cloud-init.")
    return render_template(template, server, base_url=base_url, token=token), TEXT


def builtin_source(name):
    """The shipped source of a builtin template (deploy/default_templates/<name>.j2)."""
    return (DEFAULT_TEMPLATES_DIR / f"{name}.j2").read_text()


def _boot_template(kind, profile):
    """Source of the boot template: the profile's, else the builtin row, else the shipped file."""
    if profile is not None:
        template = getattr(profile, f"{kind}_template")
        if template is not None:
            return template.content
    name = f"default-{kind}"
    content = (
        Template.objects.filter(name=name, tenant__isnull=True)
        .values_list("content", flat=True)
        .first()
    )
    return content if content is not None else builtin_source(name)


def _boot_files(mode, base_url, os_data):
    if mode == "install":
        kernel, initrd, args = os_data["kernel_url"], os_data["initrd_url"], os_data["boot_args"]
    elif mode == "rescue":
        kernel = boot_file_url(settings.RESCUE_KERNEL, base_url)
        initrd = boot_file_url(settings.RESCUE_INITRD, base_url)
        args = settings.RESCUE_ARGS
    elif mode == "discovery":
        kernel = boot_file_url(settings.DISCOVERY_KERNEL, base_url)
        initrd = boot_file_url(settings.DISCOVERY_INITRD, base_url)
        args = " ".join(filter(None, [settings.DISCOVERY_ARGS, f"dcportal.url={base_url}"]))
    else:
        kernel = initrd = None
        args = ""
    return {
        "kernel_url": kernel,
        "initrd_url": initrd,
        "args": args or "",
        "grub_kernel": grub_path(kernel),
        "grub_initrd": grub_path(initrd),
    }


def render_boot(kind, *, mode, base_url, mac, server=None, token=None):
    """The boot script or config (iPXE, PXELinux, GRUB) a machine gets for `mode`.

    Install needs a server with a profile (LookupError otherwise); discovery works without a
    server. Raises TemplateError when the template fails."""
    kind, mode = str(kind), str(mode)  # plain strings, also when given TextChoices members
    if kind not in BOOT_KINDS:
        raise ValueError(f"Unknown boot template kind {kind!r}.")
    if mode not in BOOT_MODES:
        raise ValueError(f"Unknown boot mode {mode!r}.")
    base_url = base_url.rstrip("/")
    if server is None:
        if mode == "install":
            raise LookupError("An install needs a known server.")
        context, profile, snippets = _anonymous_context(base_url), None, snippets_for(None)
    else:
        server = _loaded(server)
        profile = _profile_of(server)
        if mode == "install" and profile is None:
            raise LookupError(f"{server} has no deploy profile.")
        context = server_context(server, base_url=base_url, token=token)
        snippets = snippets_for(server.tenant_id)
    context |= {
        "mode": mode,
        "mac": mac,
        "boot": _boot_files(mode, base_url, context["os"]),
    }
    return templating.render(_boot_template(kind, profile), context, snippets=snippets)

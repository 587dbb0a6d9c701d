"""DhcpConfig values the renderer tests share: two subnets, pools and reservations."""

import ipaddress

from deploy.dhcp.model import BootOptions, DhcpConfig, DhcpHost, DhcpPool, DhcpSubnet

BOOT_URL = "http://10.0.0.2:8000/boot/ipxe"
# Host names written to break the syntax of each format if a renderer pasted them as they are.
HOSTILE_NAMES = (
    'evil"; } host pwn { hardware ethernet 00:00:00:00:00:01; fixed-address 10.0.0.99; }',
    "back\\slash\\",
    "new\nline option routers 6.6.6.6;",
    "tab\there",
    "# a comment",
    "{braces}",
    'esc\\"aped',
    "nul\x00byte",
    "octal\x017digit",
    "ünïcödé",
    "comma,dhcp-boot=pwn",
)


def ip(text):
    return ipaddress.ip_address(text)


def host(n, subnet_prefix="10.0.0", hostname=None, name=None):
    return DhcpHost(
        name=name or f"node{n:02d}.example.com:eth0",
        mac=f"52:54:00:00:00:{n:02x}",
        address=ip(f"{subnet_prefix}.{10 + n}"),
        hostname=hostname or f"node{n:02d}.example.com",
    )


def boot(mode="ipxe", **kwargs):
    return BootOptions(
        next_server=ip("10.0.0.2"),
        mode=mode,
        ipxe_script_url=BOOT_URL if mode == "ipxe" else "",
        **kwargs,
    )


def config(*, mode="ipxe", hosts=None, interfaces=("*",), **boot_kwargs):
    first = DhcpSubnet(
        id=7,
        network=ipaddress.ip_network("10.0.0.0/24"),
        gateway=ip("10.0.0.1"),
        dns=(ip("10.0.0.53"), ip("10.0.0.54")),
        domain="example.com",
        pools=(
            DhcpPool(ip("10.0.0.100"), ip("10.0.0.149")),
            DhcpPool(ip("10.0.0.200"), ip("10.0.0.250")),
        ),
        hosts=tuple(hosts if hosts is not None else [host(n) for n in range(3)]),
        name="provisioning",
    )
    second = DhcpSubnet(
        id=9,
        network=ipaddress.ip_network("10.0.1.0/24"),
        gateway=ip("10.0.1.1"),
        hosts=(
            DhcpHost(
                name="node00.example.com:eth1",
                mac="52:54:00:00:01:00",
                address=ip("10.0.1.10"),
                hostname="node00-eth1.example.com",
            ),
        ),
    )
    return DhcpConfig(
        subnets=(first, second), boot=boot(mode, **boot_kwargs), interfaces=interfaces
    )


def hostile_config(mode="ipxe"):
    hosts = [
        DhcpHost(
            name=name,
            mac=f"52:54:00:00:02:{n:02x}",
            address=ip(f"10.0.0.{20 + n}"),
            hostname=name,
        )
        for n, name in enumerate(HOSTILE_NAMES)
    ]
    return config(mode=mode, hosts=hosts)

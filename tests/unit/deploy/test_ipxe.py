"""deploy.boot.ipxe: the MAC forms firmware sends, config names, and the chain script."""

import pytest

from deploy.boot import ipxe

MAC = "52:54:00:12:ab:cd"


@pytest.mark.parametrize(
    "text",
    [
        "52:54:00:12:ab:cd",
        "52-54-00-12-AB-CD",
        "52540012abcd",
        "52540012ABCD",
        "5254.0012.abcd",
        "52%3A54%3A00%3A12%3Aab%3Acd",
        "52%253A54%253A00%253A12%253Aab%253Acd",
        " 52:54:00:12:ab:cd ",
    ],
)
def test_mac_forms(text):
    assert ipxe.parse_mac(text) == MAC


def test_single_digit_octets_are_padded():
    assert ipxe.parse_mac("2:4:0:1:a:c") == "02:04:00:01:0a:0c"


@pytest.mark.parametrize(
    "text",
    [
        "",
        None,
        "52:54:00:12:ab",
        "52:54:00:12:ab:cd:ef",
        "52:54-00:12:ab:cd",  # mixed separators
        "52:54:00:12:ab:cg",
        "52540012abc",
        "../../etc/passwd",
        "x" * 100,
        "01-52-54-00-12-ab-cd",
    ],
)
def test_not_macs(text):
    assert ipxe.parse_mac(text) is None


def test_pxelinux_names():
    assert ipxe.pxelinux_request("01-52-54-00-12-ab-cd") == ipxe.ConfigRequest("pxelinux", MAC)
    uuid = "11111111-2222-3333-4444-555555555555"
    assert ipxe.pxelinux_request(uuid.upper()) == ipxe.ConfigRequest("pxelinux", uuid=uuid)
    default = ipxe.pxelinux_request("default")
    assert default == ipxe.ConfigRequest("pxelinux") and default.generic
    # PXELinux's hexadecimal IP names answer "not found" so that it goes on to "default".
    for name in ("C0A80001", "C0A8", "C", "02-52-54-00-12-ab-cd", "01-zz", ""):
        assert ipxe.pxelinux_request(name) is None


def test_grub_names():
    by_mac = ipxe.ConfigRequest("grub", MAC)
    assert ipxe.grub_request("grub.cfg-01-52-54-00-12-ab-cd") == by_mac
    assert ipxe.grub_request("grub.cfg-52:54:00:12:ab:cd") == by_mac
    for generic in ("grub.cfg", "grub.cfg-0A000001", "grub.cfg-0A00"):
        assert ipxe.grub_request(generic) == ipxe.ConfigRequest("grub")
    assert ipxe.grub_request("grubx64.efi") is None
    assert ipxe.grub_request("pxelinux.0") is None


def test_tftp_paths():
    assert ipxe.tftp_request("pxelinux.cfg/01-52-54-00-12-ab-cd").mac == MAC
    assert ipxe.tftp_request("/pxelinux.cfg/default").generic
    assert ipxe.tftp_request("grub/grub.cfg-01-52-54-00-12-ab-cd").mac == MAC
    assert ipxe.tftp_request("grub.cfg-01-52-54-00-12-ab-cd").kind == "grub"
    assert ipxe.tftp_request("boot/grub/grub.cfg").generic
    for plain in ("pxelinux.0", "ldlinux.c32", "rocky9/vmlinuz", "pxelinux.cfg/C0A80001"):
        assert ipxe.tftp_request(plain) is None


def test_chain_script_asks_for_the_per_mac_script_with_uuid_and_serial():
    script = ipxe.chain_script("http://10.0.0.1:8000/")
    assert script.startswith("#!ipxe\n")
    chain = next(line for line in script.splitlines() if line.startswith("chain "))
    assert chain == (
        "chain --autofree http://10.0.0.1:8000/boot/ipxe/${net0/mac:hexhyp}"
        "?uuid=${uuid}&serial=${serial:uristring} || goto failed"
    )
    # A portal that does not answer leaves the machine to its local disk, not stuck.
    assert script.rstrip().endswith("exit")
    assert ":failed" in script

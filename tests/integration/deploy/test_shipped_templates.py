"""The shipped templates, rendered for a realistic server, pass the real validators:
ksvalidator (RHEL 9), debconf-set-selections -c, cloud-init schema; boot templates are checked
for every mode."""

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deploy import defaults, rendering
from deploy.models import Template

from .catalogue_helpers import BASE, TOKEN, make_os, make_profile, make_server, set_param

pytestmark = pytest.mark.django_db

KSVALIDATOR = Path(sys.executable).with_name("ksvalidator")
PARAMS = {
    "root_password_hash": "$6$rounds=4096$saltsalt$3GBvX6n1rQ2mJ3xj5b0TQZpG7D0cEo5hTzF1w0aJc9.",
    "admin_password_hash": "$6$saltsalt$Zr6m0uTq1oOQ2YkV0fC9f3cE4Bq1iZ5n2Gq0Yg1Lr7.",
    "ssh_authorized_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB7y ops@example.net"],
    "packages": ["vim-enhanced", "tmux"],
    "timezone": "Europe/Paris",
}


def unavailable(what):
    """A missing validator: a failure under CI, a skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and {what} is not installed", pytrace=False)
    pytest.skip(f"{what} is not installed")


def program(name):
    path = KSVALIDATOR if name == "ksvalidator" else shutil.which(name)
    if path is None or not Path(path).exists():
        unavailable(name)
    return str(path)


def run(args):
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def builtins():
    # The rows post_migrate creates; a flushed database gets them back the same way.
    defaults.create_builtin_templates()
    return {t.name: t for t in Template.objects.filter(builtin=True)}


@pytest.fixture
def server_for(tenants, builtins):
    set_param("timezone", "UTC")
    set_param("keyboard", "fr", tenant=tenants[0])

    def make(family, install, hostname, **os_fields):
        os = make_os(f"os-{hostname}", family=family, **os_fields)
        profile = make_profile(f"p-{hostname}", os, builtins[install], parameters=PARAMS)
        return make_server(tenants[0], hostname, profile=profile, parameters={"packages": ["htop"]})

    return make


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_migrate_created_the_builtin_rows():
    # No fixture here: the rows come from the post_migrate hook of the test database's migrate.
    assert set(Template.objects.filter(builtin=True).values_list("name", flat=True)) == set(
        defaults.BUILTINS
    )


def test_every_builtin_row_exists_and_matches_its_file(builtins):
    assert set(builtins) == set(defaults.BUILTINS)
    for name, (kind, _) in defaults.BUILTINS.items():
        assert builtins[name].kind == kind
        assert builtins[name].tenant_id is None
        assert builtins[name].content == rendering.builtin_source(name)


def test_migrate_never_overwrites_an_edited_builtin(builtins):
    Template.objects.filter(name="rhel9-kickstart").update(content="# edited by an admin\n")
    Template.objects.filter(name="default-grub").delete()
    assert defaults.create_builtin_templates() == ["default-grub"]
    assert Template.objects.get(name="rhel9-kickstart").content == "# edited by an admin\n"
    assert Template.objects.get(name="default-grub").builtin is True


# Install templates -----------------------------------------------------------------------------


def test_kickstart_passes_ksvalidator_rhel9(server_for, tmp_path):
    validator = program("ksvalidator")
    server = server_for("redhat", "rhel9-kickstart", "rocky01")
    text, _ = rendering.render_install(server, base_url=BASE, token=TOKEN)
    path = write(tmp_path, "ks.cfg", text)
    result = run([validator, "-v", "RHEL9", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "deprecated" not in (result.stdout + result.stderr).lower()
    lines = text.splitlines()
    assert f"rootpw --iscrypted {PARAMS['root_password_hash']}" in lines
    assert "timezone Europe/Paris --utc" in lines
    assert "keyboard --xlayouts=fr" in lines
    assert "htop" in lines and "tmux" not in lines  # the server's list replaces the profile's
    assert any(
        line.startswith("network --device=52:54:00:") and "--bootproto=static" in line
        for line in lines
    )
    assert f"{BASE}/boot/build/{TOKEN}/done" in text
    assert f"{BASE}/boot/build/{TOKEN}/failed" in text
    assert any(line.startswith("%onerror") for line in lines)

    # The validator really validates: a broken rendering is refused.
    broken = write(tmp_path, "broken.cfg", text.replace("autopart --type=lvm", "autopart --bogus"))
    assert run([validator, "-v", "RHEL9", str(broken)]).returncode != 0


def test_kickstart_defaults_without_parameters(tenants, builtins, tmp_path):
    validator = program("ksvalidator")
    profile = make_profile(
        "bare-ks", make_os("bare-os", install_url=""), builtins["rhel9-kickstart"]
    )
    server = make_server(tenants[0], "plain", profile=profile)
    text, _ = rendering.render_install(server, base_url=BASE, token=TOKEN)
    assert "rootpw --lock" in text.splitlines()
    result = run([validator, "-v", "RHEL9", str(write(tmp_path, "ks.cfg", text))])
    assert result.returncode == 0, result.stdout + result.stderr


def test_preseed_passes_debconf_set_selections(server_for, tmp_path):
    checker = program("debconf-set-selections")
    server = server_for(
        "debian", "debian-preseed", "deb01", install_url="http://deb.example.net/debian/"
    )
    text, _ = rendering.render_install(server, base_url=BASE, token=TOKEN)
    result = run([checker, "-c", str(write(tmp_path, "preseed.cfg", text))])
    assert result.returncode == 0 and not result.stderr, result.stderr
    assert "d-i mirror/http/hostname string deb.example.net" in text
    assert "d-i mirror/http/directory string /debian" in text
    assert "d-i netcfg/get_hostname string deb01" in text
    assert f"d-i passwd/root-password-crypted password {PARAMS['root_password_hash']}" in text
    late = next(line for line in text.splitlines() if "preseed/late_command" in line)
    assert f"{BASE}/boot/build/{TOKEN}/done" in late

    broken = write(tmp_path, "broken.cfg", text + "d-i this-line-has-no-type\n")
    result = run([checker, "-c", str(broken)])
    assert result.returncode != 0 or result.stderr


def test_autoinstall_passes_cloud_init_schema(server_for, tmp_path):
    checker = program("cloud-init")
    server = server_for("ubuntu", "ubuntu-autoinstall", "ubu01")
    text, _ = rendering.render_install(server, base_url=BASE, token=TOKEN, name="user-data")
    result = run([checker, "schema", "--config-file", str(write(tmp_path, "user-data", text))])
    assert result.returncode == 0, result.stdout + result.stderr
    data = yaml.safe_load(text)["autoinstall"]
    assert data["version"] == 1
    assert data["identity"]["hostname"] == "ubu01"
    assert data["identity"]["password"] == PARAMS["admin_password_hash"]
    assert data["ssh"]["authorized-keys"] == PARAMS["ssh_authorized_keys"]
    ethernet = data["network"]["ethernets"]["primary"]
    assert ethernet["match"]["macaddress"].startswith("52:54:00:")
    assert ethernet["addresses"][0].endswith("/24")
    assert any(f"{BASE}/boot/build/{TOKEN}/done" in c for c in data["late-commands"])
    assert any(f"{BASE}/boot/build/{TOKEN}/failed" in c for c in data["error-commands"])
    assert data["packages"] == ["curl", "ca-certificates", "htop"]

    broken = write(
        tmp_path, "broken", text.replace("#cloud-config\n", "#cloud-config\nruncmd: 5\n")
    )
    assert run([checker, "schema", "--config-file", str(broken)]).returncode != 0


def test_nocloud_meta_data(server_for):
    server = server_for("ubuntu", "ubuntu-autoinstall", "ubu02")
    text, _ = rendering.render_install(server, base_url=BASE, token=TOKEN, name="meta-data")
    assert yaml.safe_load(text) == {
        "instance-id": f"dcportal-{server.pk}",
        "local-hostname": "ubu02",
    }


def test_esxi_kickstart(server_for):
    server = server_for("esxi", "esxi-kickstart", "esx01")
    text, _ = rendering.render_install(server, base_url=BASE, token=TOKEN)
    lines = text.splitlines()
    assert lines[1] == "vmaccepteula"
    assert "install --firstdisk --overwritevmfs" in lines
    assert f"rootpw --iscrypted {PARAMS['root_password_hash']}" in lines
    network = next(line for line in lines if line.startswith("network "))
    assert "--bootproto=static" in network and "--hostname=esx01.dc1.example.net" in network
    # The %pre and %post sections are Python the installer runs: they must compile.
    sections = re.split(r"^%(\w+).*$", text, flags=re.M)
    bodies = dict(zip(sections[1::2], sections[2::2], strict=True))
    for name in ("pre", "post"):
        ast.parse(bodies[name])
    assert f"{BASE}/boot/build/{TOKEN}/done" in bodies["post"]


def test_fai_classes(server_for):
    server = server_for("debian", "fai-classes", "fai01")
    text, _ = rendering.render_install(server, base_url=BASE, token=TOKEN)
    classes = text.split()
    assert classes[:5] == ["DEFAULT", "FAIBASE", "DEBIAN", "X86_64", "TENANT_ACME"]
    assert classes[-1] == "FAI01"
    assert all(re.fullmatch(r"[A-Z0-9_]+", c) for c in classes)


def test_snippets_are_valid_shell(server_for, tmp_path):
    sh = program("sh")
    server = server_for("redhat", "rhel9-kickstart", "rocky02")
    snippet = Template.objects.get(name="snippet-callbacks")
    text = rendering.render_template(snippet, server, base_url=BASE, token=TOKEN)
    assert run([sh, "-n", str(write(tmp_path, "callbacks.sh", text))]).returncode == 0


# Boot templates --------------------------------------------------------------------------------


@pytest.fixture
def rocky(server_for):
    return server_for("redhat", "rhel9-kickstart", "rocky03")


def boot(kind, mode, server, mac="52:54:00:12:34:56"):
    return rendering.render_boot(
        kind, mode=mode, base_url=BASE, mac=mac, server=server, token=TOKEN
    )


FAMILY_ARGS = {
    "redhat": [
        f"inst.ks={BASE}/boot/build/{TOKEN}/install",
        "inst.repo=http://mirror.example.net/rocky/9/BaseOS/x86_64/os/",
        "ip=dhcp",
    ],
    "debian": [
        "auto=true",
        "priority=critical",
        f"url={BASE}/boot/build/{TOKEN}/install",
        "interface=auto",
    ],
    "ubuntu": ["autoinstall", f"ds=nocloud-net;s={BASE}/boot/build/{TOKEN}/", "ip=dhcp"],
    "esxi": [f"ks={BASE}/boot/build/{TOKEN}/install"],
    "suse": [f"autoyast={BASE}/boot/build/{TOKEN}/install"],
}


@pytest.mark.parametrize("family", sorted(FAMILY_ARGS))
def test_ipxe_install_per_family(family, server_for):
    server = server_for(family, "rhel9-kickstart", f"n-{family}")
    lines = boot("ipxe", "install", server).splitlines()
    assert lines[0] == "#!ipxe"
    kernel = next(line for line in lines if line.startswith("kernel ")).split()
    assert kernel[1] == f"{BASE}/boot/files/rocky9/vmlinuz"
    assert kernel[2] == "initrd=initrd"
    for arg in FAMILY_ARGS[family]:
        assert arg in kernel
    assert kernel[-1] == "console=ttyS0,115200"  # the OS boot_args come last
    # iPXE ends a command at a token that is exactly ";" or starts with "#": none may appear.
    assert not any(token == ";" or token.startswith("#") for token in kernel)
    assert f"initrd --name initrd {BASE}/boot/files/rocky9/initrd.img" in lines
    assert lines[-1] == "boot"


@pytest.mark.parametrize("family", sorted(FAMILY_ARGS))
def test_pxelinux_and_grub_install_per_family(family, server_for):
    server = server_for(family, "rhel9-kickstart", f"m-{family}")
    pxelinux = boot("pxelinux", "install", server).splitlines()
    assert "DEFAULT install" in pxelinux and "LABEL install" in pxelinux
    assert f"  KERNEL {BASE}/boot/files/rocky9/vmlinuz" in pxelinux
    append = next(line for line in pxelinux if line.startswith("  APPEND ")).split()
    assert append[1] == f"initrd={BASE}/boot/files/rocky9/initrd.img"
    for arg in FAMILY_ARGS[family]:
        assert arg in append

    grub = boot("grub", "install", server)
    linux = next(line for line in grub.splitlines() if line.strip().startswith("linux "))
    assert linux.split()[1] == "(http,10.0.0.1,8000)/boot/files/rocky9/vmlinuz"
    for arg in FAMILY_ARGS[family]:
        # ';' separates GRUB commands: such an argument must be quoted.
        assert (f"'{arg}'" if ";" in arg else arg) in linux.split()
    assert "  initrd (http,10.0.0.1,8000)/boot/files/rocky9/initrd.img" in grub.splitlines()
    assert grub.count("{") == grub.count("}")


def test_localboot(rocky):
    ipxe = boot("ipxe", "localboot", rocky).splitlines()
    assert ipxe[0] == "#!ipxe" and "exit" in ipxe
    assert not any(line.startswith(("kernel", "boot")) for line in ipxe)
    assert any("sanboot --no-describe --drive 0x80" in line for line in ipxe)
    pxelinux = boot("pxelinux", "localboot", rocky).splitlines()
    assert "DEFAULT localboot" in pxelinux and "  LOCALBOOT 0" in pxelinux
    grub = boot("grub", "localboot", rocky)
    assert "chainloader +1" in grub and "exit" in grub and "linux " not in grub


@pytest.mark.parametrize("mode", ["rescue", "discovery"])
def test_rescue_and_discovery(mode, rocky, settings):
    prefix = mode.upper()
    setattr(settings, f"{prefix}_KERNEL", f"{mode}/vmlinuz")
    setattr(settings, f"{prefix}_INITRD", f"https://files.example.net/{mode}.img")
    setattr(settings, f"{prefix}_ARGS", "console=ttyS0 quiet")
    for server in (rocky, None) if mode == "discovery" else (rocky,):
        ipxe = boot("ipxe", mode, server).splitlines()
        kernel = next(line for line in ipxe if line.startswith("kernel ")).split()
        assert kernel[1] == f"{BASE}/boot/files/{mode}/vmlinuz"
        assert "console=ttyS0" in kernel and "quiet" in kernel
        assert ("dcportal.url=" + BASE in kernel) == (mode == "discovery")
        assert f"initrd --name initrd https://files.example.net/{mode}.img" in ipxe
        pxelinux = boot("pxelinux", mode, server)
        assert (
            f"DEFAULT {mode}" in pxelinux
            and f"  KERNEL {BASE}/boot/files/{mode}/vmlinuz" in pxelinux
        )
        grub = boot("grub", mode, server)
        assert f"linux (http,10.0.0.1,8000)/boot/files/{mode}/vmlinuz console=ttyS0 quiet" in grub
        assert "inst.ks" not in ipxe and "inst.ks" not in grub


def test_profile_boot_template_wins(rocky, builtins):
    custom = Template.objects.create(
        name="my-ipxe", kind="ipxe", content="#!ipxe\necho {{ mode }} {{ mac }}\nexit\n"
    )
    profile = rocky.deploy.profile
    profile.ipxe_template = custom
    profile.save()
    assert boot("ipxe", "install", rocky) == "#!ipxe\necho install 52:54:00:12:34:56\nexit\n"
    assert boot("pxelinux", "install", rocky).startswith("# dcportal: install")


def test_edited_builtin_is_used(rocky, builtins):
    Template.objects.filter(name="default-ipxe").update(content="#!ipxe\necho site default\n")
    assert boot("ipxe", "localboot", rocky) == "#!ipxe\necho site default\n"

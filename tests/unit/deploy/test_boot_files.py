"""deploy.boot.files: boot files stay inside their directory, links included."""

import pytest

from deploy.boot import files


@pytest.fixture
def root(tmp_path):
    base = tmp_path / "boot"
    (base / "rocky9").mkdir(parents=True)
    (base / "rocky9" / "vmlinuz-9.4").write_bytes(b"KERNEL")
    (base / "rocky9" / "vmlinuz").symlink_to("vmlinuz-9.4")
    (base / "pxelinux.0").write_bytes(b"PXE")
    (tmp_path / "secret").write_text("outside")
    (base / "escape").symlink_to(tmp_path / "secret")
    (base / "escape-dir").symlink_to(tmp_path)
    return base


def read(root, name):
    file, size, mtime = files.open_boot_file(root, name)
    with file:
        data = file.read()
    assert size == len(data) and mtime > 0
    return data


def test_files_and_links_inside(root):
    assert read(root, "pxelinux.0") == b"PXE"
    assert read(root, "/pxelinux.0") == b"PXE"
    assert read(root, "rocky9/vmlinuz") == b"KERNEL"


@pytest.mark.parametrize(
    "name",
    [
        "../secret",
        "rocky9/../../secret",
        "rocky9/../pxelinux.0",
        "escape",
        "escape-dir/secret",
        "/etc/passwd",
        "//etc/passwd",
        "rocky9",
        "rocky9/",
        "missing",
        "",
        "a\0b",
        "x" * 2000,
        "..\\secret",
    ],
)
def test_refused(root, name):
    with pytest.raises(files.BootFileNotFound):
        files.open_boot_file(root, name)


def test_missing_root(tmp_path):
    with pytest.raises(files.BootFileNotFound):
        files.open_boot_file(tmp_path / "nowhere", "pxelinux.0")

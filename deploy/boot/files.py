"""Kernels, initrds and bootloaders from the boot files directory, for HTTP and TFTP alike.

A name is a relative path inside the directory. Anything that would leave it is refused: '..',
absolute paths, and symbolic links that point outside (a link inside to another file inside is
fine: distributions ship their kernels as vmlinuz -> vmlinuz-6.1.0).
"""

import os
from pathlib import Path

MAX_NAME = 1024


class BootFileNotFound(Exception):
    """No such file, or a name that is not allowed: both answer "not found"."""


def resolve(root, name):
    """The real path of `name` inside `root`, or BootFileNotFound."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME or "\0" in name:
        raise BootFileNotFound(name)
    parts = name.replace("\\", "/").split("/")
    if parts[0] == "":
        parts = parts[1:]  # TFTP clients often ask for "/pxelinux.0"
    if not parts or any(part in ("", ".", "..") for part in parts):
        raise BootFileNotFound(name)
    try:
        base = Path(root).resolve(strict=True)
        path = base.joinpath(*parts).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a symlink loop
        raise BootFileNotFound(name) from None
    if not path.is_relative_to(base) or not path.is_file():
        raise BootFileNotFound(name)
    return path


def open_boot_file(root, name):
    """(binary file object, size, mtime) of `name` inside `root`, or BootFileNotFound.

    Opened with O_NOFOLLOW on the resolved path, so a link swapped in after the check is not
    followed either."""
    path = resolve(root, name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        raise BootFileNotFound(name) from None
    file = os.fdopen(fd, "rb")
    stat = os.fstat(fd)
    return file, stat.st_size, stat.st_mtime

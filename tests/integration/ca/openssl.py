"""The real OpenSSL as the judge of what the CA issues: CSRs from `openssl req`, chains checked
by `openssl verify -crl_check_all`, CRLs parsed by `openssl crl`."""

import os
import shutil
import subprocess

import pytest


def unavailable(what):
    """A missing peer: a failure under CI (a skipped test would hide a missing install step),
    a skip elsewhere."""
    message = f"{what}; install the Debian package openssl"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and {message}", pytrace=False)
    pytest.skip(message)


def binary():
    path = shutil.which("openssl")
    if path is None:
        unavailable("openssl is not installed")
    return path


def run(*args, input=None):
    """openssl with an argument list; the CompletedProcess (text), whatever its exit status."""
    return subprocess.run(
        [binary(), *map(str, args)],
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run_bytes(*args, input=b""):
    """openssl on bytes in and out (DER)."""
    return subprocess.run(
        [binary(), *map(str, args)], input=input, capture_output=True, timeout=120, check=False
    )


def req(directory, name, *, cn, sans=(), key="rsa:2048", digest=None):
    """A CSR made by `openssl req`; returns (CSR PEM text, key path)."""
    key_path, csr_path = directory / f"{name}.key", directory / f"{name}.csr"
    args = ["req", "-new", "-nodes", "-keyout", key_path, "-out", csr_path, "-subj", f"/CN={cn}"]
    if key == "ec":
        args += ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    else:
        args += ["-newkey", key]
    if sans:
        args += ["-addext", "subjectAltName=" + ",".join(sans)]
    if digest:
        args += [f"-{digest}"]
    result = run(*args)
    assert result.returncode == 0, result.stderr
    return csr_path.read_text(), key_path


def verify(directory, *, leaf, chain, crls):
    """`openssl verify -CAfile chain -CRLfile crls -crl_check_all leaf`."""
    paths = {}
    for label, text in (("leaf", leaf), ("chain", chain), ("crls", crls)):
        paths[label] = directory / f"verify-{label}.pem"
        paths[label].write_text(text)
    return run(
        "verify",
        "-CAfile",
        paths["chain"],
        "-CRLfile",
        paths["crls"],
        "-crl_check_all",
        paths["leaf"],
    )


def split_pem(text):
    """The PEM blocks of a bundle, in order."""
    blocks, current = [], []
    for line in text.splitlines(keepends=True):
        current.append(line)
        if line.startswith("-----END "):
            blocks.append("".join(current))
            current = []
    return blocks

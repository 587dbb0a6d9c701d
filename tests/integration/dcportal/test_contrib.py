"""The production files under contrib/ (docs/production.md): the nginx configuration checked and
run by nginx itself in front of the portal, the systemd units checked by systemd-analyze, the
environment file example against every setting the code reads, and a backup restored into a
new database whose secrets still decrypt with the restored keys."""

import ast
import hashlib
import importlib.machinery
import importlib.util
import os
import re
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg2
import pytest
from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings
from django.core.management import get_commands

from dcportal import secrets
from dcportal.models import Credential
from tests.peers.bmc import missing_peer

ROOT = Path(__file__).resolve().parents[3]
CONTRIB = ROOT / "contrib"
PRODUCT_PACKAGES = ("dcportal", "inventory", "deploy", "virt", "ca")
SETTING_NAME = re.compile(r"^(DCPORTAL_[A-Z0-9_]+|DATABASE_URL|REDIS_URL)$")


def _load(path, name):
    loader = importlib.machinery.SourceFileLoader(name, str(path))
    spec = importlib.util.spec_from_loader(name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


render = _load(CONTRIB / "nginx" / "render.py", "dcportal_contrib_render")
manage_wrapper = _load(CONTRIB / "dcportal-manage", "dcportal_contrib_manage")


def _program(name):
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        missing_peer(f"{name} is not installed")
    return path


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- nginx ---------------------------------------------------------------------------------


def _nginx_site(tmp_path, upstream):
    """contrib/nginx/dcportal.conf rendered into a private nginx prefix; (main conf, values)."""
    for name in ("static", "boot", "cache", "logs", "temp"):
        (tmp_path / name).mkdir()
    key, cert = tmp_path / "tls.key", tmp_path / "tls.pem"
    subprocess.run(
        [_program("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    https, http = _free_port(), _free_port()
    values = {
        "SERVER_NAME": "localhost",
        "PORTAL_URL": f"https://localhost:{https}",
        "HTTPS_LISTEN": f"127.0.0.1:{https}",
        "HTTP_LISTEN": f"127.0.0.1:{http}",
        "TLS_CERT": str(cert),
        "TLS_KEY": str(key),
        "UPSTREAM": upstream,
        "STATIC_ROOT": str(tmp_path / "static"),
        "BOOT_FILES_DIR": str(tmp_path / "boot"),
        "CACHE_DIR": str(tmp_path / "cache"),
        "LOG_DIR": str(tmp_path / "logs"),
    }
    site = tmp_path / "dcportal.conf"
    site.write_text(render.render((CONTRIB / "nginx" / "dcportal.conf").read_text(), values))
    temp = tmp_path / "temp"
    main = tmp_path / "nginx.conf"
    # What Debian's /etc/nginx/nginx.conf gives the site, with every path private to the test.
    # Started by root, nginx's workers would run as nobody, who cannot enter the test's
    # private directories.
    user = "user root;\n" if os.geteuid() == 0 else ""
    main.write_text(
        f"{user}pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\nhttp {{\n"
        f"    include /etc/nginx/mime.types;\n    default_type application/octet-stream;\n"
        f"    client_body_temp_path {temp}/body;\n    proxy_temp_path {temp}/proxy;\n"
        f"    fastcgi_temp_path {temp}/fastcgi;\n    uwsgi_temp_path {temp}/uwsgi;\n"
        f"    scgi_temp_path {temp}/scgi;\n    include {site};\n}}\n"
    )
    return main, values, https, http


def test_render_refuses_missing_unknown_and_unsafe_values():
    text = "server_name @SERVER_NAME@;\nroot @STATIC_ROOT@;\n"
    assert render.render(text, {"SERVER_NAME": "a.example", "STATIC_ROOT": "/srv/s"}) == (
        "server_name a.example;\nroot /srv/s;\n"
    )
    with pytest.raises(render.RenderError, match="missing: STATIC_ROOT"):
        render.render(text, {"SERVER_NAME": "a.example"})
    with pytest.raises(render.RenderError, match="unknown: TYPO"):
        render.render(text, {"SERVER_NAME": "a", "STATIC_ROOT": "/s", "TYPO": "x"})
    with pytest.raises(render.RenderError, match="not allowed"):
        render.render(text, {"SERVER_NAME": "a; include /etc/shadow", "STATIC_ROOT": "/s"})


def test_nginx_accepts_the_rendered_config(tmp_path):
    nginx = _program("nginx")
    main, *_ = _nginx_site(tmp_path, "127.0.0.1:9")
    result = subprocess.run(
        [nginx, "-t", "-c", str(main), "-p", str(tmp_path), "-e", "stderr"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _fetch(url):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test's own self-signed certificate
    opener = urllib.request.build_opener(_NoRedirect, urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(url, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


@pytest.fixture
def nginx_portal(tmp_path, live_server, settings):
    """nginx with the rendered config in front of the portal (live_server)."""
    nginx = _program("nginx")
    main, values, https, http = _nginx_site(tmp_path, f"127.0.0.1:{live_server.thread.port}")
    settings.BOOT_FILES_DIR = Path(values["BOOT_FILES_DIR"])
    settings.TRUSTED_PROXIES = ["127.0.0.1/32"]
    process = subprocess.Popen(
        [nginx, "-c", str(main), "-p", str(tmp_path), "-e", "stderr", "-g", "daemon off;"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", http), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"nginx did not start: {process.stderr.read()}") from None
                time.sleep(0.1)
        yield values, f"https://127.0.0.1:{https}", f"http://127.0.0.1:{http}"
    finally:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_nginx_serves_caches_and_never_caches_what_it_must_not(nginx_portal):
    values, https, http = nginx_portal
    static, boot = Path(values["STATIC_ROOT"]), Path(values["BOOT_FILES_DIR"])

    # The chain script: cached (the portal says 5 minutes), so the second answer is a hit.
    status, headers, body = _fetch(f"{http}/boot/ipxe")
    assert status == 200 and body.startswith(b"#!ipxe")
    assert headers["X-Cache-Status"] == "MISS"
    status, headers, again = _fetch(f"{http}/boot/ipxe")
    assert (status, headers["X-Cache-Status"], again) == (200, "HIT", body)

    # A per-MAC script: straight from the portal every time, no-store.
    for _ in range(2):
        status, headers, body = _fetch(f"{http}/boot/ipxe/52:54:00:12:34:56")
        assert status == 200 and body.startswith(b"#!ipxe")
        assert headers["Cache-Control"] == "no-store"
        assert headers["X-Cache-Status"] is None
    # A bad build token is the portal's 403, never a cached answer.
    status, headers, _ = _fetch(f"{http}/boot/build/not-a-token/install")
    assert status == 403 and headers["X-Cache-Status"] is None

    # Boot files: nginx serves regular files itself; a symbolic link goes to the portal, which
    # follows it only inside the directory.
    (boot / "vmlinuz-6.1").write_bytes(b"kernel")
    (boot / "vmlinuz").symlink_to("vmlinuz-6.1")
    outside = boot.parent / "outside"
    outside.write_bytes(b"secret")
    (boot / "escape").symlink_to(outside)
    status, headers, body = _fetch(f"{http}/boot/files/vmlinuz-6.1")
    assert (status, body, headers["Cache-Control"]) == (200, b"kernel", "public, max-age=3600")
    assert headers["Content-Type"] == "application/octet-stream"
    status, headers, body = _fetch(f"{http}/boot/files/vmlinuz")
    assert (status, body, headers["Cache-Control"]) == (200, b"kernel", "public, max-age=3600")
    assert _fetch(f"{http}/boot/files/escape")[0] == 404
    assert _fetch(f"{http}/boot/files/missing")[0] == 404

    # Static files: manifest-hashed names for a year, the others for an hour.
    (static / "app.0123456789ab.css").write_text("body{}")
    (static / "app.css").write_text("body{}")
    status, headers, _ = _fetch(f"{https}/static/app.0123456789ab.css")
    assert (status, headers["Cache-Control"]) == (200, "public, max-age=31536000, immutable")
    status, headers, _ = _fetch(f"{https}/static/app.css")
    assert (status, headers["Cache-Control"]) == (200, "max-age=3600")

    # The portal itself only over TLS: plain HTTP is sent there; over TLS the portal answers
    # (its login page) with the request id nginx gave it.
    status, headers, _ = _fetch(f"{http}/api/me/")
    assert status == 301 and headers["Location"] == f"{values['PORTAL_URL']}/api/me/"
    # ...but for the inventory agent of discovery images: its script, and its register call,
    # which the portal answers itself (here: no enrolment token, so 401) and nginx never caches.
    status, headers, body = _fetch(f"{http}/inventory/agent.sh")
    assert status == 200 and body.startswith(b"#!/bin/sh")
    assert headers["X-Cache-Status"] is None
    register = urllib.request.Request(
        f"{http}/api/inventory/register/", data=b"{}", method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    status, headers, _ = _fetch(register)
    assert status == 401 and headers["X-Cache-Status"] is None
    status, headers, body = _fetch(f"{https}/login/")
    assert status == 200 and b"password" in body.lower()
    assert re.fullmatch(r"[0-9a-f]{32}", headers["X-Request-ID"])


# --- systemd -------------------------------------------------------------------------------

UNITS = sorted((CONTRIB / "systemd").glob("*.service")) + sorted(
    (CONTRIB / "systemd").glob("*.timer")
)


def test_systemd_units_pass_systemd_analyze_verify(tmp_path):
    analyze = _program("systemd-analyze")
    names = []
    for unit in (CONTRIB / "systemd").iterdir():
        # The units name the production paths; here the same commands exist in this tree.
        text = unit.read_text().replace("/opt/dcportal/venv", sys.prefix)
        (tmp_path / unit.name).write_text(text.replace("/opt/dcportal/app", str(ROOT)))
        names.append(unit.name.replace("@.service", "@default.service"))
    result = subprocess.run(
        [analyze, "verify", "--man=no", *sorted(names)],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    # verify exits 0 on many mistakes (unknown keys, bad values): any word from it is one.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def _unit(path):
    values = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


@pytest.mark.parametrize("path", [p for p in UNITS if p.suffix == ".service"], ids=lambda p: p.name)
def test_every_service_is_unprivileged_and_hardened(path):
    unit = _unit(path)
    assert unit["User"] == ["dcportal"] and unit["Group"] == ["dcportal"]
    # Everything but the backup (whose script reads the file itself) gets the environment.
    if path.name != "dcportal-backup.service":
        assert "/etc/dcportal/dcportal.env" in unit["EnvironmentFile"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "RestrictSUIDSGID": "yes",
    }.items():
        assert unit[key] == [value], key
    # Only the TFTP server may bind a low port, and nothing else.
    expected = "CAP_NET_BIND_SERVICE" if path.name == "dcportal-tftpd.service" else ""
    assert unit["CapabilityBoundingSet"] == [expected]
    assert unit.get("AmbientCapabilities", [""]) == [expected]


def test_units_run_commands_that_exist():
    commands = get_commands()
    for path in UNITS:
        for line in _unit(path).get("ExecStart", []):
            argv = line.split()
            if argv[1:2] == ["/opt/dcportal/app/manage.py"]:
                assert argv[2] in commands, f"{path.name}: no command {argv[2]}"
    worker = _unit(CONTRIB / "systemd" / "dcportal-worker@.service")["ExecStart"][0].split()
    assert worker[2:4] == ["rqworker", "%i"]
    assert set(settings.JOB_QUEUES) == {"default", "power", "deploy", "virt"}


# --- the environment file ------------------------------------------------------------------


def _names_read_by_the_code():
    """Every DCPORTAL_* (and the service URLs) the product code names as a string."""
    names = set()
    for package in PRODUCT_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Constant) and SETTING_NAME.match(str(node.value)):
                    names.add(node.value)
    return names


def test_env_example_documents_every_setting():
    example = (CONTRIB / "dcportal.env.example").read_text()
    documented = set(re.findall(r"^#?([A-Z][A-Z0-9_]*)=", example, re.MULTILINE))
    read = _names_read_by_the_code()
    # settings.py is the main reader; make sure the scan sees it.
    assert {"DATABASE_URL", "DCPORTAL_TRUSTED_PROXIES", "DCPORTAL_BOOT_URL"} <= read
    assert read - documented == set(), "settings without a line in contrib/dcportal.env.example"


def test_env_example_loads_as_production_settings(tmp_path):
    """The example's active lines are valid values: the settings module loads from them alone
    (as systemd would pass them), in production mode."""
    env = manage_wrapper.parse_env_file((CONTRIB / "dcportal.env.example").read_text())
    assert "DCPORTAL_PLAIN_HTTP" not in env and "DCPORTAL_DEBUG" not in env
    env.update(PATH=os.environ["PATH"], DJANGO_SETTINGS_MODULE="dcportal.settings")
    probe = (
        "import django; from django.conf import settings as s; django.setup();"
        "print(s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.SECURE_PROXY_SSL_HEADER[0],"
        " s.DATABASES['default']['OPTIONS']['sslmode'], s.BOOT_URL)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "True", "True", "HTTP_X_FORWARDED_PROTO", "verify-full", "http://10.0.0.1"
    ]  # fmt: skip


def test_env_file_parser_reads_values_as_systemd_does():
    parsed = manage_wrapper.parse_env_file(
        "# comment\n; comment\n\nA=postgres://u:p%40ss@h/db?sslmode=require&x=$HOME\n"
        "  B = 'quoted value'  \nC=\n"
    )
    assert parsed == {
        "A": "postgres://u:p%40ss@h/db?sslmode=require&x=$HOME",
        "B": "quoted value",
        "C": "",
    }
    with pytest.raises(ValueError, match="line 1"):
        manage_wrapper.parse_env_file("export A=1\n")


# --- backup and restore --------------------------------------------------------------------


def _server_major(cursor):
    cursor.execute("SHOW server_version_num")
    return int(cursor.fetchone()[0]) // 10000


def _client_bin_dir(server_major):
    """A directory whose pg_dump/pg_restore/psql can dump this server (same major or newer)."""
    candidates = [Path(p).parent for p in [shutil.which("pg_dump")] if p]
    try:
        import pgserver

        candidates.append(Path(pgserver.__file__).parent / "pginstall" / "bin")
    except ImportError:
        pass
    for directory in candidates:
        try:
            out = subprocess.run(
                [str(directory / "pg_dump"), "--version"], capture_output=True, text=True
            ).stdout
        except OSError:
            continue
        match = re.search(r"(\d+)\.", out)
        if match and int(match.group(1)) >= server_major and (directory / "psql").exists():
            return directory
    missing_peer(f"no pg_dump for PostgreSQL {server_major} (install postgresql-client)")


def _url(db, name):
    from urllib.parse import quote

    user = quote(db["USER"] or "postgres", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    host = quote(db["HOST"] or "127.0.0.1", safe="")
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgresql://{user}{password}@{host}{port}/{name}"


@pytest.fixture
def restore_database(django_db_blocker):
    """A new, empty database on the test server; dropped afterwards."""
    from django.db import connection

    name = f"dcportal_restore_{os.getpid()}"
    with django_db_blocker.unblock():
        db = connection.settings_dict
        admin = psycopg2.connect(
            dbname="postgres", user=db["USER"], password=db["PASSWORD"] or None,
            host=db["HOST"] or None, port=db["PORT"] or None,
        )  # fmt: skip
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
            cursor.execute(f'CREATE DATABASE "{name}"')
            major = _server_major(cursor)
    try:
        yield name, major
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_backup_restores_into_a_new_database_with_readable_secrets(
    tmp_path, tenants, restore_database
):
    from django.db import connection

    restore_name, major = restore_database
    bin_dir = _client_bin_dir(major)
    acme, _ = tenants
    Credential.objects.create(tenant=acme, name="bmc-root", username="root", secret="s3cr3t!")
    db = connection.settings_dict
    keys = tmp_path / "live" / "encryption.keys"
    keys.parent.mkdir()
    keys.write_text("\n".join(secrets.load_keys()) + "\n")
    live_env = tmp_path / "live" / "dcportal.env"
    live_env.write_text(
        f"DATABASE_URL={_url(db, db['NAME'])}\nDCPORTAL_ENCRYPTION_KEY_FILE={keys}\n"
    )
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    script = str(CONTRIB / "backup.sh")
    dest = tmp_path / "backups"

    subprocess.run(
        [script, "--env-file", str(live_env), "--dest", str(dest), "--keep", "2"],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    (backup,) = dest.iterdir()
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700
    assert stat.S_IMODE(backup.stat().st_mode) == 0o700
    assert sorted(p.name for p in backup.iterdir()) == [
        "INFO", "SHA256SUMS", "database.dump", "dcportal.env", "encryption.keys"
    ]  # fmt: skip
    assert {stat.S_IMODE(p.stat().st_mode) for p in backup.iterdir()} == {0o600}

    # A new machine: an empty database and no key file yet.
    restored_keys = tmp_path / "new" / "encryption.keys"
    restored_keys.parent.mkdir()
    new_env = tmp_path / "new" / "dcportal.env"
    new_env.write_text(
        f"DATABASE_URL={_url(db, restore_name)}\nDCPORTAL_ENCRYPTION_KEY_FILE={restored_keys}\n"
    )
    result = subprocess.run(
        [script, "--restore", str(backup), "--env-file", str(new_env)],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert restored_keys.read_text() == keys.read_text()
    assert stat.S_IMODE(restored_keys.stat().st_mode) == 0o600

    with psycopg2.connect(_url(db, restore_name)) as restored, restored.cursor() as cursor:
        cursor.execute("SELECT secret FROM dcportal_credential WHERE name = 'bmc-root'")
        (token,) = cursor.fetchone()
    assert "s3cr3t" not in token  # stored encrypted
    fernet = MultiFernet([Fernet(k.encode()) for k in restored_keys.read_text().split()])
    assert fernet.decrypt(token.encode()) == b"s3cr3t!"

    # A second restore over a database that is no longer empty is refused, changing nothing.
    digest = hashlib.sha256(restored_keys.read_bytes()).hexdigest()
    again = subprocess.run(
        [script, "--restore", str(backup), "--env-file", str(new_env)],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert again.returncode != 0 and "not empty" in again.stderr
    assert hashlib.sha256(restored_keys.read_bytes()).hexdigest() == digest

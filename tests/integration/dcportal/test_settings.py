"""Production settings, as a fresh process sees them: safe defaults without the test suite's
plain-HTTP and debug switches. Each check runs `manage.py` in a subprocess, because settings are
read once per process."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

pytestmark = pytest.mark.slow

PROJECT_ROOT = Path(__file__).resolve().parents[3]
# Switches the launcher sets for tests and local runs, and tuning a production host might set:
# none of them may leak into "production as shipped".
NOT_IN_PRODUCTION = (
    "DCPORTAL_PLAIN_HTTP",
    "DCPORTAL_DEBUG",
    "DCPORTAL_STATIC_FROM_FINDERS",
    "DCPORTAL_HSTS_SECONDS",
    "DCPORTAL_HSTS_INCLUDE_SUBDOMAINS",
    "DCPORTAL_HSTS_PRELOAD",
    "DCPORTAL_SECRET_KEY",
    "DCPORTAL_ENCRYPTION_KEYS",
)


def production_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in NOT_IN_PRODUCTION}
    assert env.get("DATABASE_URL") and env.get("REDIS_URL"), "run through dcportal.launcher"
    env["DJANGO_SETTINGS_MODULE"] = "dcportal.settings"
    env["DCPORTAL_SECRET_KEY"] = secrets.token_urlsafe(64)
    env["DCPORTAL_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


def manage(*args, env):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_deploy_check_passes_with_production_environment():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_missing_secret_key_is_refused_by_name():
    result = manage("check", env=production_env(DCPORTAL_SECRET_KEY=None))

    assert result.returncode != 0
    assert "DCPORTAL_SECRET_KEY" in result.stderr
    assert "ImproperlyConfigured" in result.stderr


def test_deploy_check_fails_without_an_encryption_key(tmp_path):
    env = production_env(
        DCPORTAL_ENCRYPTION_KEYS=None,
        DCPORTAL_ENCRYPTION_KEY_FILE=str(tmp_path / "absent.keys"),
    )

    result = manage("check", "--deploy", env=env)

    assert result.returncode != 0
    assert "dcportal.E001" in result.stderr
    assert "DCPORTAL_ENCRYPTION_KEYS" in result.stderr


def test_deploy_check_flags_plain_http():
    # The same check must notice when the test-only switch is on: it is what keeps it out.
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING", env=production_env(DCPORTAL_PLAIN_HTTP="1")
    )

    assert result.returncode != 0
    for check in ("security.W008", "security.W012", "security.W016", "security.W004"):
        assert check in result.stderr


def test_production_settings_are_secure():
    script = (
        "import json; from django.conf import settings as s; print(json.dumps({"
        "'DEBUG': s.DEBUG, 'SESSION_COOKIE_SECURE': s.SESSION_COOKIE_SECURE, "
        "'CSRF_COOKIE_SECURE': s.CSRF_COOKIE_SECURE, 'SECURE_SSL_REDIRECT': s.SECURE_SSL_REDIRECT, "
        "'SECURE_HSTS_SECONDS': s.SECURE_HSTS_SECONDS, "
        "'SECURE_HSTS_INCLUDE_SUBDOMAINS': s.SECURE_HSTS_INCLUDE_SUBDOMAINS, "
        "'SESSION_COOKIE_HTTPONLY': s.SESSION_COOKIE_HTTPONLY, "
        "'CSRF_COOKIE_HTTPONLY': s.CSRF_COOKIE_HTTPONLY, 'X_FRAME_OPTIONS': s.X_FRAME_OPTIONS, "
        "'ENGINE': s.DATABASES['default']['ENGINE']}))"
    )

    result = manage("shell", "-c", script, env=production_env())

    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["DEBUG"] is False
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 31536000
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SESSION_COOKIE_HTTPONLY"] is True
    assert values["CSRF_COOKIE_HTTPONLY"] is True
    assert values["X_FRAME_OPTIONS"] == "DENY"
    assert values["ENGINE"] == "django.db.backends.postgresql"


def test_non_postgres_database_is_refused():
    result = manage("check", env=production_env(DATABASE_URL="sqlite:///tmp/dcportal.db"))

    assert result.returncode != 0
    assert "PostgreSQL only" in result.stderr

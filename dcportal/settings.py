"""dcportal settings: every value comes from the environment, defaults are the safe production ones.

`make run` and `make test` go through `dcportal.launcher`, which fills in the embedded database,
Redis, secret key and encryption key when they are not given.
"""

import os
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("DCPORTAL_VAR_DIR", BASE_DIR / "var"))


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {value!r}")


def env_list(name, default=""):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_required(name):
    value = os.environ.get(name)
    if not value:
        raise ImproperlyConfigured(
            f"{name} is not set. Start the portal with `make run` (embedded services) "
            f"or export {name}; see README.md."
        )
    return value


DEBUG = env_bool("DCPORTAL_DEBUG", False)
SECRET_KEY = os.environ.get("DCPORTAL_SECRET_KEY") or ("insecure-debug-only-key" if DEBUG else None)
if not SECRET_KEY:
    raise ImproperlyConfigured("DCPORTAL_SECRET_KEY is required when DCPORTAL_DEBUG is off.")

ALLOWED_HOSTS = env_list("DCPORTAL_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DCPORTAL_CSRF_TRUSTED_ORIGINS")

# Plain HTTP is only for the embedded default on loopback (`make run`) and the test suite.
PLAIN_HTTP = env_bool("DCPORTAL_PLAIN_HTTP", False)
SESSION_COOKIE_SECURE = not PLAIN_HTTP
CSRF_COOKIE_SECURE = not PLAIN_HTTP
SECURE_SSL_REDIRECT = not PLAIN_HTTP
# Firmware (iPXE, PXELinux, GRUB) and installers fetch boot scripts, templates, CA certificates
# and CRLs over plain HTTP; those answers are bound to a MAC or a build token, not to a session.
# The inventory agent of a discovery image (a busybox wget may lack TLS) fetches its script and
# registers at the boot URL too, with an enrolment token: register-only, one tenant, revocable.
SECURE_REDIRECT_EXEMPT = [
    r"^boot/",
    r"^pki/",
    r"^inventory/agent\.sh$",
    r"^api/inventory/register/$",
]
SECURE_HSTS_SECONDS = 0 if PLAIN_HTTP else int(os.environ.get("DCPORTAL_HSTS_SECONDS", "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DCPORTAL_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DCPORTAL_HSTS_PRELOAD", True)
if env_bool("DCPORTAL_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = int(os.environ.get("DCPORTAL_SESSION_SECONDS", str(12 * 3600)))
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Proxies whose X-Forwarded-For is believed when recording the source address of a change.
TRUSTED_PROXIES = env_list("DCPORTAL_TRUSTED_PROXIES")

INSTALLED_APPS = [
    "dcportal.admin_site.PortalAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_rq",
    "dcportal",
    "inventory",
    "deploy",
    "virt",
    "ca",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "dcportal.middleware.RequestContextMiddleware",
    "dcportal.middleware.ServiceUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "dcportal.urls"
WSGI_APPLICATION = "dcportal.wsgi.application"
AUTH_USER_MODEL = "dcportal.User"
AUTHENTICATION_BACKENDS = ["dcportal.rbac.RoleBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "dcportal.views.navigation",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_required("DATABASE_URL"), conn_max_age=60, conn_health_checks=True
    )
}
if not DATABASES["default"]["ENGINE"].endswith("postgresql"):
    raise ImproperlyConfigured("dcportal runs on PostgreSQL only; DATABASE_URL must be postgres://")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def with_redis_timeouts(url, connect=2, answer=10):
    """`url` with connect and socket timeouts unless it sets its own: a Redis that hangs (rather
    than refusing connections) must not hold a request forever. RQ's workers raise the socket
    timeout above their blocking dequeue on their own."""
    # Split by hand: urlunsplit would turn unix:///path into unix:/path.
    base, _, query = url.partition("?")
    options = dict(parse_qsl(query))
    options.setdefault("socket_connect_timeout", str(connect))
    options.setdefault("socket_timeout", str(answer))
    return f"{base}?{urlencode(options)}"


REDIS_URL = with_redis_timeouts(env_required("REDIS_URL"))
JOB_QUEUES = ("default", "power", "deploy", "virt")
RQ_QUEUES = {
    name: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": int(os.environ.get("DCPORTAL_JOB_TIMEOUT", "3600"))}
    for name in JOB_QUEUES
}
# A queued job whose RQ entry vanished (Redis restarted without persistence) is re-enqueued
# after this many seconds.
JOB_REQUEUE_AFTER = int(os.environ.get("DCPORTAL_JOB_REQUEUE_AFTER", "60"))

# Power control: how many BMCs are talked to at once (all of them, and per rack), and how long
# a retryable failure (timeout, connection refused) is retried with backoff.
POWER_MAX_PARALLEL = int(os.environ.get("DCPORTAL_POWER_MAX_PARALLEL", "32"))
POWER_MAX_PARALLEL_PER_RACK = int(os.environ.get("DCPORTAL_POWER_MAX_PARALLEL_PER_RACK", "8"))
POWER_TIMEOUT = float(os.environ.get("DCPORTAL_POWER_TIMEOUT", "10"))
POWER_RETRY_DEADLINE = float(os.environ.get("DCPORTAL_POWER_RETRY_DEADLINE", "30"))

# Virtualization. The MACs of new VM interfaces come from this locally administered prefix
# (first octet with the 0x02 bit set, unicast); the rest is random and never a MAC already in
# the inventory. A VM job waits this long for a free slot of its pool's limit (seconds), and
# the install's clean shutdown this long before the VM is forced off.
VIRT_MAC_PREFIX = os.environ.get("DCPORTAL_VIRT_MAC_PREFIX", "02:dc:00")
VIRT_SLOT_WAIT = float(os.environ.get("DCPORTAL_VIRT_SLOT_WAIT", "3600"))
VIRT_SHUTDOWN_TIMEOUT = float(os.environ.get("DCPORTAL_VIRT_SHUTDOWN_TIMEOUT", "120"))
# One call to a hypervisor gives up after this many seconds (a pool's own "timeout" option
# wins): a master that accepts connections and never answers must not hold a job and its slot.
VIRT_TIMEOUT = float(os.environ.get("DCPORTAL_VIRT_TIMEOUT", "60"))

# Deployment. Nodes reach the portal at DCPORTAL_BOOT_URL (e.g. http://10.0.0.1:8000); without
# it, URLs in boot scripts and templates are built from the request (or 127.0.0.1 in the CLI).
BOOT_URL = os.environ.get("DCPORTAL_BOOT_URL", "").rstrip("/")
# Kernels, initrds and bootloaders: served at /boot/files/ and by `manage.py tftpd`.
BOOT_FILES_DIR = Path(os.environ.get("DCPORTAL_BOOT_FILES_DIR", VAR_DIR / "boot"))
# A build token stays valid this long after nodeset install (hours).
BUILD_TOKEN_HOURS = float(os.environ.get("DCPORTAL_BUILD_TOKEN_HOURS", "24"))
# The image unknown machines boot to be inventoried (paths inside BOOT_FILES_DIR, or URLs).
DISCOVERY_KERNEL = os.environ.get("DCPORTAL_DISCOVERY_KERNEL", "discovery/vmlinuz")
DISCOVERY_INITRD = os.environ.get("DCPORTAL_DISCOVERY_INITRD", "discovery/initrd.img")
DISCOVERY_ARGS = os.environ.get("DCPORTAL_DISCOVERY_ARGS", "")
# The rescue system booted by `nodeset … rescue`.
RESCUE_KERNEL = os.environ.get("DCPORTAL_RESCUE_KERNEL", "rescue/vmlinuz")
RESCUE_INITRD = os.environ.get("DCPORTAL_RESCUE_INITRD", "rescue/initrd.img")
RESCUE_ARGS = os.environ.get("DCPORTAL_RESCUE_ARGS", "")
# rinstall: how long a job gives an install to report `done`, power actions included (seconds;
# at most the job timeout less two minutes), and how often it looks at the build's progress.
RINSTALL_TIMEOUT = float(os.environ.get("DCPORTAL_RINSTALL_TIMEOUT", "3000"))
RINSTALL_POLL_SECONDS = float(os.environ.get("DCPORTAL_RINSTALL_POLL_SECONDS", "5"))
# The authority (by slug) that signs host certificates: build-token autosign and the CA URLs
# given to install templates (/pki/<slug>.pem, /pki/<slug>.crl).
CA_HOST_AUTHORITY = os.environ.get("DCPORTAL_CA_HOST_AUTHORITY", "hosts")

# Certificate authority. Certificates point their CRL distribution point and issuer (AIA) URLs
# at DCPORTAL_CA_PUBLIC_URL (plain HTTP is normal there), else at the boot URL.
CA_PUBLIC_URL = os.environ.get("DCPORTAL_CA_PUBLIC_URL", "").rstrip("/")
# A CRL is republished this many hours before its nextUpdate (at most half its validity).
CA_CRL_REFRESH_HOURS = float(os.environ.get("DCPORTAL_CA_CRL_REFRESH_HOURS", "48"))

# DHCP configurations (manage.py makedhcp, /api/deploy/dhcp/<format>/); each can be overridden
# per run. The TFTP server PXE ROMs load their first file from (next-server; empty: the address
# in DCPORTAL_BOOT_URL). The boot mode: "ipxe" chainloads iPXE (undionly.kpxe for BIOS,
# ipxe.efi for UEFI), which then fetches DCPORTAL_BOOT_URL/boot/ipxe; "pxelinux" hands out
# pxelinux.0 and "grub" GRUB's core.0 to BIOS machines, grubx64.efi to UEFI ones. The file names
# replace the mode's defaults when set. Kea listens on DCPORTAL_DHCP_INTERFACES ("*": all).
DHCP_NEXT_SERVER = os.environ.get("DCPORTAL_DHCP_NEXT_SERVER", "")
DHCP_BOOT_MODE = os.environ.get("DCPORTAL_DHCP_BOOT_MODE", "ipxe")
if DHCP_BOOT_MODE not in ("ipxe", "pxelinux", "grub"):
    raise ImproperlyConfigured(
        f"DCPORTAL_DHCP_BOOT_MODE must be ipxe, pxelinux or grub, not {DHCP_BOOT_MODE!r}"
    )
DHCP_BIOS_FILE = os.environ.get("DCPORTAL_DHCP_BIOS_FILE", "")
DHCP_UEFI_FILE = os.environ.get("DCPORTAL_DHCP_UEFI_FILE", "")
DHCP_INTERFACES = env_list("DCPORTAL_DHCP_INTERFACES", "*")

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "dcportal",
    }
}
# Failed log-ins per account and per source address before log-in is refused for a while.
LOGIN_MAX_FAILURES = int(os.environ.get("DCPORTAL_LOGIN_MAX_FAILURES", "10"))
LOGIN_LOCKOUT_SECONDS = int(os.environ.get("DCPORTAL_LOGIN_LOCKOUT_SECONDS", "900"))
# Rate limits of the public endpoints (boot scripts and files, install callbacks, /pki/, the
# inventory agent and its register call), counted in Redis a minute; 0 turns one off. Behind a
# proxy, list it in DCPORTAL_TRUSTED_PROXIES, or every node counts as the proxy's address.
BOOT_RATE_PER_SOURCE = int(os.environ.get("DCPORTAL_BOOT_RATE_PER_SOURCE", "600"))
# Per MAC (per-MAC boot scripts and configs) and per build token (templates, callbacks, autosign).
BOOT_RATE_PER_MAC = int(os.environ.get("DCPORTAL_BOOT_RATE_PER_MAC", "60"))
# Refused tokens (build, enrolment, API) per source address before it gets 429, even with a
# valid token, for DCPORTAL_TOKEN_LOCKOUT_SECONDS; 0 turns the lockout off.
TOKEN_MAX_FAILURES = int(os.environ.get("DCPORTAL_TOKEN_MAX_FAILURES", "20"))
TOKEN_LOCKOUT_SECONDS = int(os.environ.get("DCPORTAL_TOKEN_LOCKOUT_SECONDS", "900"))

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("DCPORTAL_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("DCPORTAL_STATIC_ROOT", VAR_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
if DEBUG or env_bool("DCPORTAL_STATIC_FROM_FINDERS", False):
    # Serve straight from the source folders (tests, development) without collectstatic.
    STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    WHITENOISE_USE_FINDERS = True
    WHITENOISE_AUTOREFRESH = DEBUG

# Encryption keys for secrets at rest: DCPORTAL_ENCRYPTION_KEYS (comma separated, newest first)
# or the file DCPORTAL_ENCRYPTION_KEY_FILE, one key a line, newest first.
ENCRYPTION_KEY_FILE = Path(
    os.environ.get("DCPORTAL_ENCRYPTION_KEY_FILE", VAR_DIR / "encryption.keys")
)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "dcportal.api.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["dcportal.api.permissions.ActionPermission"],
    "DEFAULT_FILTER_BACKENDS": [
        "dcportal.api.filters.StrictFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "dcportal.api.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "dcportal.api.errors.exception_handler",
    # JSON nested too deeply for Python's decoder is a 400 (DRF's own parser lets it be a 500).
    "DEFAULT_PARSER_CLASSES": [
        "dcportal.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "dcportal API",
    "DESCRIPTION": "Inventory, deployment, power, virtualization and certificates of a fleet.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/",
    # Swagger UI from the installed sidecar package: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The platform's error answers (400, 401, 403, 404, 415, 429, 503) on every operation.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "dcportal.api.schema.add_error_responses",
    ],
    # Choice sets whose field name ("kind", "status") other models use too get a name of their
    # own, or the schema carries hashed names and spectacular warns.
    "ENUM_NAME_OVERRIDES": {
        "ConflictKindEnum": "inventory.models.Conflict.Kind",
        "ServerKindEnum": "inventory.models.Server.Kind",
        "ServerStatusEnum": "inventory.models.Server.Status",
        "IPAddressStatusEnum": "inventory.models.IPAddress.Status",
        "IPRangeKindEnum": "inventory.models.IPRange.Kind",
        "NextBootEnum": "deploy.models.ServerDeploy.NextBoot",
        "ServerDeployStateEnum": "deploy.models.ServerDeploy.State",
        "ServerDeployStageEnum": "deploy.models.ServerDeploy.Stage",
        "RevocationReasonEnum": "ca.models.RevocationReason",
        "KeyTypeEnum": "ca.models.KeyType",
        "CertificateProfileEnum": "ca.models.Profile",
        "CertificateStatusEnum": "ca.models.CertificateStatus",
        "CertificateRequestStatusEnum": "ca.models.CertificateRequest.Status",
        "CertificateRequestSourceEnum": "ca.models.CertificateRequest.Source",
        "TemplateKindEnum": "deploy.models.Template.Kind",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "filters": {"request": {"()": "dcportal.requestcontext.LogFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["request"]},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("DCPORTAL_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

#!/usr/bin/env python3
"""Fill in the @PLACEHOLDERS@ of contrib/nginx/dcportal.conf (or any file given).

    python3 contrib/nginx/render.py SERVER_NAME=portal.example.com \\
        PORTAL_URL=https://portal.example.com HTTPS_LISTEN=443 HTTP_LISTEN=80 \\
        TLS_CERT=/etc/ssl/certs/portal.pem TLS_KEY=/etc/ssl/private/portal.key \\
        UPSTREAM=unix:/run/dcportal/web.sock STATIC_ROOT=/var/lib/dcportal/static \\
        BOOT_FILES_DIR=/var/lib/dcportal/boot CACHE_DIR=/var/cache/nginx/dcportal \\
        LOG_DIR=/var/log/nginx > /etc/nginx/sites-available/dcportal

Every placeholder must be given, and only known ones: a leftover or a typo is an error, not
a broken nginx configuration found later.
"""

import re
import sys
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "dcportal.conf"
PLACEHOLDER = re.compile(r"@([A-Z][A-Z0-9_]*)@")
# Values end up inside nginx directives: nothing that could end or add one.
SAFE_VALUE = re.compile(r"^[^;{}\n\r#'\"\\`$]+$")


class RenderError(ValueError):
    pass


def placeholders(text):
    return set(PLACEHOLDER.findall(text))


def render(text, values):
    """`text` with every @NAME@ replaced by values[NAME]; RenderError on a missing, unknown or
    unsafe value."""
    wanted = placeholders(text)
    missing = sorted(wanted - values.keys())
    unknown = sorted(values.keys() - wanted)
    if missing or unknown:
        raise RenderError(
            f"missing: {', '.join(missing) or '-'}; unknown: {', '.join(unknown) or '-'}"
        )
    for name, value in values.items():
        if not SAFE_VALUE.match(value):
            raise RenderError(f"{name}={value!r}: not allowed in an nginx directive")
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


def main(argv):
    template = TEMPLATE
    values = {}
    for arg in argv:
        if arg.startswith("--template="):
            template = Path(arg.split("=", 1)[1])
            continue
        name, sep, value = arg.partition("=")
        if not sep:
            print(f"render.py: {arg!r} is not NAME=VALUE", file=sys.stderr)
            return 2
        values[name] = value
    try:
        sys.stdout.write(render(template.read_text(), values))
    except RenderError as exc:
        print(f"render.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

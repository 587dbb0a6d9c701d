"""What firmware, bootloaders and installers fetch: no session, no login (each name is in
dcportal.urls.PUBLIC_URL_NAMES), plain text.

Boot scripts and configs are bound to a MAC (they carry a build token only for a server in
install mode); templates and the progress/done/failed callbacks are bound to the build token,
and a wrong, expired or used one answers 403 with nothing changed. A template that fails to
render answers 503 (logged), never 500: firmware then falls back to the local disk.

Every view is rate limited per source address, per-MAC scripts per MAC and token-bound views per
build token (dcportal.ratelimit; 429 with Retry-After). A refused token counts against its
source, which past settings.TOKEN_MAX_FAILURES gets 429 even with a valid token for a while.
"""

import json
import logging

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from django.http import FileResponse, HttpResponse, HttpResponseNotModified
from django.utils.http import http_date
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST, require_safe
from django.views.static import was_modified_since

from dcportal import ratelimit, requestcontext
from dcportal.templating import TemplateError
from deploy import services, tokens
from deploy.boot import files, ipxe

logger = logging.getLogger(__name__)

TEXT = "text/plain; charset=utf-8"
FILE_MAX_AGE = 3600  # kernels and initrds change rarely; a proxy near the nodes may keep them
FORBIDDEN = "Forbidden: invalid, expired or used build token.\n"


def base_url(request):
    """The portal as nodes reach it: DCPORTAL_BOOT_URL, else the address they asked."""
    return settings.BOOT_URL or f"{request.scheme}://{request.get_host()}"


def _text(body, status=200, content_type=TEXT):
    response = HttpResponse(body, status=status, content_type=content_type)
    # Per-machine answers change with its next boot: never from a cache.
    response["Cache-Control"] = "no-store"
    return response


def _unavailable(what, exc):
    logger.error("%s could not be rendered: %s", what, exc)
    return _text(f"dcportal: {what} is unavailable: the template failed; see the log.\n", 503)


def _answer(request, what, call):
    """Run a boot service in the "boot" audit context; template failures answer 503."""
    with requestcontext.bound(via="boot"):
        try:
            answer = call()
        except (TemplateError, LookupError) as exc:
            return _unavailable(what, exc)
    if answer is None:
        return _text("Not found.\n", 404)
    return _text(answer.text)


@login_not_required
@require_safe
@ratelimit.limited
def chain(request):
    """The first script of every machine: chain to its own, by MAC, with UUID and serial."""
    response = _text(ipxe.chain_script(base_url(request)))
    response["Cache-Control"] = "public, max-age=300"
    return response


@login_not_required
@require_safe
def ipxe_mac(request, mac):
    parsed = ipxe.parse_mac(mac)
    if (over := ratelimit.check(request, mac=parsed)) is not None:
        return ratelimit.too_many(over)
    if parsed is None:
        return _text(f"{mac!r} is not a MAC address.\n", 404)
    return _answer(
        request,
        f"the iPXE script for {parsed}",
        lambda: services.boot_config(
            "ipxe", mac=parsed, uuid=request.GET.get("uuid"), base_url=base_url(request)
        ),
    )


def _config(request, config, name):
    over = ratelimit.check(request, mac=config.mac if config is not None else None)
    if over is not None:
        return ratelimit.too_many(over)
    if config is None:
        return _text("Not found.\n", 404)
    return _answer(
        request,
        f"the {config.kind} config {name}",
        lambda: services.config_for(config, base_url=base_url(request)),
    )


@login_not_required
@require_safe
def pxelinux(request, name):
    return _config(request, ipxe.pxelinux_request(name), name)


@login_not_required
@require_safe
def grub(request, name):
    return _config(request, ipxe.grub_request(name), name)


@login_not_required
@require_safe
@ratelimit.limited
def boot_file(request, path):
    try:
        file, size, mtime = files.open_boot_file(settings.BOOT_FILES_DIR, path)
    except files.BootFileNotFound:
        return _text("Not found.\n", 404)
    if not was_modified_since(request.META.get("HTTP_IF_MODIFIED_SINCE"), mtime):
        file.close()
        response = HttpResponseNotModified()
    else:
        response = FileResponse(file, content_type="application/octet-stream")
        response["Content-Length"] = str(size)
    response["Last-Modified"] = http_date(mtime)
    response["Cache-Control"] = f"public, max-age={FILE_MAX_AGE}"
    return response


@login_not_required
@require_safe
def template(request, token, name):
    """An install file (kickstart, preseed, user-data...) for the build of `token`."""
    if (over := ratelimit.check(request, build=token, token=True)) is not None:
        return ratelimit.too_many(over)
    with requestcontext.bound(via="boot"):
        try:
            text, content_type = services.fetch_template(
                token, name=name, base_url=base_url(request)
            )
        except tokens.InvalidToken:
            return _refused(request)
        except LookupError as exc:
            return _text(f"Not found: {exc}\n", 404)
        except TemplateError as exc:
            return _unavailable(f"the install file {name}", exc)
    return _text(text, content_type=content_type)


def _fields(request):
    """message and percent from a form or a JSON object body."""
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise ValidationError("The body is not valid JSON.") from None
        if not isinstance(data, dict):
            raise ValidationError("The body must be a JSON object.")
    else:
        data = request.POST
    fields = {}
    for name in ("message", "percent"):
        value = data.get(name)
        if value is not None:
            fields[name] = value if isinstance(value, (int, float)) else str(value)
    return fields


def _refused(request):
    ratelimit.refused_token(request)
    return _text(FORBIDDEN, 403)


def _callback(request, token, report, accepted):
    if (over := ratelimit.check(request, build=token, token=True)) is not None:
        return ratelimit.too_many(over)
    try:
        fields, unreadable = _fields(request), None
    except ValidationError as exc:
        fields, unreadable = {}, exc
    with requestcontext.bound(via="boot"):
        try:
            if unreadable is not None:
                # The token first: a wrong one answers 403 whatever the body holds.
                tokens.authenticate(token)
                raise unreadable
            report(token, **fields)
        except tokens.InvalidToken:
            return _refused(request)
        except ValidationError as exc:
            return _text(f"Bad request: {' '.join(_messages(exc))}\n", 400)
    return _text(accepted)


def _messages(exc):
    if hasattr(exc, "error_dict"):
        return [f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items()]
    return exc.messages


# Installers post with their build token and no session or cookie: CSRF has nothing to guard.
@csrf_exempt
@login_not_required
@require_POST
def progress(request, token):
    return _callback(
        request,
        token,
        lambda token, **fields: services.report_progress(
            token, percent=fields.get("percent"), message=fields.get("message", "")
        ),
        "ok\n",
    )


@csrf_exempt
@login_not_required
@require_POST
def done(request, token):
    return _callback(
        request,
        token,
        lambda token, **fields: services.report_done(token, message=fields.get("message", "")),
        "ok: installed; the next boot is from the local disk\n",
    )


@csrf_exempt
@login_not_required
@require_POST
def failed(request, token):
    return _callback(
        request,
        token,
        lambda token, **fields: services.report_failed(token, message=fields.get("message", "")),
        "ok: failure recorded\n",
    )

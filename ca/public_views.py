"""The CA's public face (each URL name is in dcportal.urls.PUBLIC_URL_NAMES):

    GET  /pki/<slug>.pem       the authority's certificate chain (PEM, the authority first)
    GET  /pki/<slug>.crt       the authority's certificate (DER): the AIA caIssuers URL
    GET  /pki/<slug>.crl       its current CRL (DER): the CRL distribution point
    GET  /pki/<slug>.crl.pem   the same CRL in PEM
    POST /pki/autosign/<token> a CSR (raw PEM body, or form field / file `csr`) from a server in
                               build mode; answers its certificate chain PEM

Certificates and CRLs are public by nature and served over plain HTTP, as relying parties fetch
them. Autosign is bound to a one-time build token. Every view is rate limited per source
address, autosign per build token too; a refused token counts against its source, which past
settings.TOKEN_MAX_FAILURES gets 429, even with a valid token, for a while (dcportal.ratelimit).
"""

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from ca import crypto, services
from ca.autosign import Denied
from ca.models import Authority, RevocationList
from dcportal import ratelimit, requestcontext

PEM_TYPE = "application/x-pem-file"
MAX_CSR_BYTES = crypto.MAX_PEM_CHARS


def _file(body, content_type, filename, max_age=300):
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    response["Cache-Control"] = f"public, max-age={max_age}"
    return response


@login_not_required
@require_GET
@ratelimit.limited
def authority_pem(request, slug):
    authority = get_object_or_404(Authority.objects.select_related("parent"), slug=slug)
    return _file(services.chain_pem(authority), PEM_TYPE, f"{slug}.pem")


@login_not_required
@require_GET
@ratelimit.limited
def authority_der(request, slug):
    authority = get_object_or_404(Authority, slug=slug)
    return _file(crypto.pem_to_der(authority.certificate), "application/pkix-cert", f"{slug}.crt")


def _crl(slug):
    return get_object_or_404(RevocationList, authority__slug=slug)


@login_not_required
@require_GET
@ratelimit.limited
def crl_der(request, slug):
    crl = _crl(slug)
    return _file(crypto.pem_to_der(crl.pem), "application/pkix-crl", f"{slug}.crl")


@login_not_required
@require_GET
@ratelimit.limited
def crl_pem(request, slug):
    return _file(_crl(slug).pem, PEM_TYPE, f"{slug}.crl.pem")


def _text(message, status):
    return HttpResponse(f"{message}\n", status=status, content_type="text/plain; charset=utf-8")


def _csr_of(request):
    """The CSR: a form field or file `csr`, else the raw body (curl --data-binary @req.csr
    sends a form content type with the bare PEM as its body)."""
    # Sizes are checked by ca.crypto, after the token: a bad token is a 403 whatever it sent.
    body = request.body
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        if "csr" in request.FILES:
            return request.FILES["csr"].read(MAX_CSR_BYTES + 1)
        if request.POST.get("csr"):
            return request.POST["csr"]
    return body


def _messages(exc):
    if hasattr(exc, "error_dict"):
        return " ".join(" ".join(messages) for messages in exc.message_dict.values())
    return " ".join(exc.messages)


# The installer authenticates with its build token, not a session: no cookie to forge with.
@login_not_required
@csrf_exempt
@require_POST
def autosign(request, token):
    if (over := ratelimit.check(request, build=token, token=True)) is not None:
        return ratelimit.too_many(over)
    with requestcontext.bound(via="autosign"):
        try:
            csr = _csr_of(request)
            _, chain = services.autosign(token=token, csr=csr)
        except Denied as exc:
            ratelimit.refused_token(request)
            return _text(f"Refused: {exc}", 403)
        except services.AutosignRefused as exc:
            return _text(f"Refused: {exc}", exc.status)
        except ValidationError as exc:
            return _text(f"Bad CSR: {_messages(exc)}", 400)
    response = HttpResponse(chain, content_type=PEM_TYPE)
    response["Cache-Control"] = "no-store"
    return response

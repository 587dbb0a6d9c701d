"""One-time build tokens: bound to one server's build, expiring, never stored.

Entering install draws a random nonce for the server's row; the token is an HMAC of that nonce
under the portal's secret key, so the boot script served to the node can carry it while the
database keeps only the nonce and the token's SHA-256. A new nodeset draws a new nonce (the old
token dies); `done` clears both (the token is burnt).
"""

import base64
import hashlib
import hmac
import secrets

from django.conf import settings
from django.utils import timezone
from django.utils.crypto import salted_hmac

MARKER = "dcb"  # build tokens look like dcb_<43 characters>: easy to grep for in a leaked log
_SALT = "dcportal.deploy.build-token"
_NO_HASH = "-" * 64  # no SHA-256 hex digest equals it


class InvalidToken(Exception):
    """Unknown, expired, burnt, or for a server that is not building: the caller answers 403."""


def new_nonce():
    return secrets.token_hex(16)


def token_for(nonce):
    if not nonce:
        raise InvalidToken("No build token was issued.")
    digest = salted_hmac(_SALT, nonce, algorithm="sha256").digest()
    return f"{MARKER}_{base64.urlsafe_b64encode(digest).decode().rstrip('=')}"


def hash_token(token):
    return hashlib.sha256(token.encode()).hexdigest()


def issue():
    """Fresh token fields for a row entering install: {token_nonce, token_hash, token_expires}."""
    nonce = new_nonce()
    return {
        "token_nonce": nonce,
        "token_hash": hash_token(token_for(nonce)),
        "token_expires": timezone.now() + timezone.timedelta(hours=settings.BUILD_TOKEN_HOURS),
    }


def burnt():
    """The token fields of a row whose token may no longer be used."""
    return {"token_nonce": "", "token_hash": "", "token_expires": None}


def authenticate(token, *, queryset=None):
    """The building ServerDeploy row `token` belongs to, or InvalidToken.

    `queryset` may add select_for_update()/select_related(). The token's SHA-256 is looked up by
    index (a hash: a near miss of the token is no near miss of it) and compared again in constant
    time, against a placeholder when no row has it, so every wrong token takes the same steps."""
    from deploy.models import ServerDeploy

    if not isinstance(token, str) or not token.startswith(MARKER + "_") or len(token) > 100:
        raise InvalidToken("That is not a build token.")
    digest = hash_token(token)
    queryset = ServerDeploy.objects.all() if queryset is None else queryset
    row = queryset.filter(token_hash=digest).select_related("server").first()
    stored = row.token_hash if row is not None else _NO_HASH
    if not hmac.compare_digest(stored, digest) or row is None:
        raise InvalidToken("Unknown or used build token.")
    if row.token_expires is None or row.token_expires <= timezone.now():
        raise InvalidToken("The build token has expired.")
    if row.state != row.State.BUILDING or row.next_boot != row.NextBoot.INSTALL:
        raise InvalidToken("The server is not in build mode.")
    return row

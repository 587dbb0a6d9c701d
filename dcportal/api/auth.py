from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from dcportal import ratelimit, requestcontext, services


def throttled(verdict):
    """The API's 429 (with Retry-After) for a refusing ratelimit Verdict."""
    return exceptions.Throttled(wait=verdict.retry_after, detail=verdict.message)


def _refused(request, message):
    ratelimit.refused_token(request)
    return exceptions.AuthenticationFailed(message)


class TokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer dcp_…` (or `Token dcp_…`). Acts with the owner's current rights.

    A refused token counts against the source address; a source locked out by too many of them
    gets 429 whatever token it sends (dcportal.ratelimit)."""

    keywords = ("bearer", "token")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower().decode(errors="replace") not in self.keywords:
            return None
        if not (verdict := ratelimit.token_lockout(request)).allowed:
            raise throttled(verdict)
        if len(header) != 2:
            raise _refused(request, "Malformed Authorization header.")
        try:
            key = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise _refused(request, "Malformed token.") from None
        token = services.authenticate_token(key)
        if token is None:
            raise _refused(request, "Invalid, expired or revoked token.")
        requestcontext.set_token(token.pk)
        return token.user, token

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class TokenScheme(OpenApiAuthenticationExtension):
    target_class = "dcportal.api.auth.TokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An API token: dcp_…"}

"""Portal log-in: failed attempts are throttled per account and per source address, and every
log-in, log-out and failed attempt on a known account lands in the audit trail.

The counters are dcportal.ratelimit's: when Redis does not answer they fail open (a Redis outage
must not lock everyone out of the portal; the password is still checked), with a warning.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.core.exceptions import ValidationError

from dcportal import audit, ratelimit
from dcportal.middleware import client_address

ACCOUNT = "login-account"
SOURCE = "login-source"


def _counters(request, username):
    return [(ACCOUNT, (username or "").lower()), (SOURCE, client_address(request))]


def is_locked(request, username):
    return any(
        not ratelimit.peek(scope, value, limit=settings.LOGIN_MAX_FAILURES).allowed
        for scope, value in _counters(request, username)
    )


def _count_failure(request, username):
    for scope, value in _counters(request, username):
        ratelimit.count_failure(
            scope,
            value,
            limit=settings.LOGIN_MAX_FAILURES,
            window=settings.LOGIN_LOCKOUT_SECONDS,
            what="failed log-ins",
        )


LOCKED_MESSAGE = (
    "Too many failed log-in attempts for this account or from this address. Try again later."
)


class LockoutMixin:
    """For AuthenticationForm subclasses: no password is even tried once the limit is reached."""

    def clean(self):
        if self.request is not None and is_locked(self.request, self.data.get("username")):
            raise ValidationError(LOCKED_MESSAGE, code="locked")
        return super().clean()


class PortalLoginForm(LockoutMixin, AuthenticationForm):
    pass


def _on_login(sender, request, user, **kwargs):
    ratelimit.reset(ACCOUNT, user.get_username().lower())
    audit.record(user=user, action="action", verb="login", obj=user)


def _on_logout(sender, request, user, **kwargs):
    if user is not None:
        audit.record(user=user, action="action", verb="logout", obj=user)


def _on_failure(sender, credentials, request=None, **kwargs):
    if request is None:
        return
    username = credentials.get("username", "")
    _count_failure(request, username)
    target = get_user_model().objects.filter(username=username).first()
    if target is not None:
        audit.record(user=None, action="action", verb="login-failed", obj=target)


def connect():
    user_logged_in.connect(_on_login, dispatch_uid="dcportal_login_audit")
    user_logged_out.connect(_on_logout, dispatch_uid="dcportal_logout_audit")
    user_login_failed.connect(_on_failure, dispatch_uid="dcportal_login_failed")

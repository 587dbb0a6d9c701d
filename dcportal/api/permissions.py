from rest_framework import permissions

from dcportal.models import ApiToken
from dcportal.rbac import permission_code

METHOD_ACTIONS = {
    "GET": "view",
    "HEAD": "view",
    "OPTIONS": "view",
    "POST": "add",
    "PUT": "change",
    "PATCH": "change",
    "DELETE": "delete",
}


def token_allows(request):
    """A read-only token never writes, whatever its owner may do."""
    token = request.auth
    return not (
        isinstance(token, ApiToken)
        and not token.write
        and request.method not in permissions.SAFE_METHODS
    )


class ActionPermission(permissions.BasePermission):
    """The user must hold the action for the view's model.

    The action is `view.action_permissions[view.action]` when given (custom actions such as
    "cancel_job"), otherwise derived from the HTTP method. Object scope is the queryset's job
    (dcportal.rbac.restrict), so objects of other tenants are simply not found (404).
    """

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated and token_allows(request)):
            return False
        custom = getattr(view, "action_permissions", {})
        action = custom.get(getattr(view, "action", None)) or METHOD_ACTIONS.get(request.method)
        if action is None:
            return False
        model = view.get_queryset().model
        return user.has_perm(permission_code(model, action))


class Authenticated(permissions.BasePermission):
    """Login only: for endpoints scoped to the user's own objects (tokens, profile)."""

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and token_allows(request))

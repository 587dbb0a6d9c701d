from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.utils import timezone

from dcportal import rbac, services
from dcportal.management.base import PortalCommand
from dcportal.models import ApiToken


class Command(PortalCommand):
    help = (
        "API tokens: tokens list | tokens create NAME [--owner U] [--days N] [--read-only] "
        "| tokens revoke ID"
    )

    def add_arguments(self, parser):
        parser.add_argument("operation", choices=["list", "create", "revoke"])
        parser.add_argument("name", nargs="?", help="Token name (create) or id (revoke)")
        parser.add_argument("--owner", help="Create for this user (admins only)")
        parser.add_argument("--days", type=int, help="Expire after N days")
        parser.add_argument("--read-only", action="store_true")

    def handle(self, *args, operation, name, owner, days, read_only, **options):
        actor = self.acting_user(options)
        tokens = ApiToken.objects.select_related("user")
        if not rbac.is_global(actor):
            tokens = tokens.filter(user=actor)
        if operation == "list":
            for token in tokens:
                state = "revoked" if token.revoked else "active" if token.is_active else "expired"
                expires = f"{token.expires:%Y-%m-%d}" if token.expires else "never"
                self.stdout.write(
                    f"{token.pk:>5} {token.user.username:15} {token.name:20} "
                    f"{token.prefix} {'rw' if token.write else 'ro'} "
                    f"expires {expires:10} {state}"
                )
            return
        if not name:
            raise CommandError(
                f"tokens {operation} needs a {'name' if operation == 'create' else 'token id'}"
            )
        if operation == "create":
            owner_user = None
            if owner:
                try:
                    owner_user = get_user_model().objects.get(username=owner)
                except get_user_model().DoesNotExist:
                    raise CommandError(f"no user {owner!r}") from None
            expires = timezone.now() + timedelta(days=days) if days else None
            token, key = services.create_token(
                user=actor, owner=owner_user, name=name, expires=expires, write=not read_only
            )
            self.stdout.write(
                f"token {token.pk} for {token.user.username}: {key}\n"
                "(shown once; it is stored only as a hash)"
            )
            return
        try:
            token = tokens.get(pk=int(name))
        except (ValueError, ApiToken.DoesNotExist):
            raise CommandError(f"no token {name}") from None
        services.revoke_token(user=actor, token=token)
        self.stdout.write(f"token {token.pk} revoked")

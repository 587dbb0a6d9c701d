"""Base for dcportal's commands: they act as a portal user, with that user's rights and scope."""

import os

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from dcportal import requestcontext


class PortalCommand(BaseCommand):
    """Adds --user (default $DCPORTAL_USER, else admin), a CLI audit context, and turns service
    errors into CLI errors instead of tracebacks."""

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.add_argument(
            "--user",
            default=os.environ.get("DCPORTAL_USER", "admin"),
            help="Portal user to act as (default: $DCPORTAL_USER or admin).",
        )
        return parser

    def execute(self, *args, **options):
        with requestcontext.cli_context():
            try:
                return super().execute(*args, **options)
            except PermissionDenied as exc:
                raise CommandError(f"permission denied: {exc}") from None
            except ValidationError as exc:
                raise CommandError(_validation_message(exc)) from None

    def acting_user(self, options):
        User = get_user_model()
        try:
            user = User.objects.get(username=options["user"], is_active=True)
        except User.DoesNotExist:
            raise CommandError(f"no active portal user {options['user']!r}; use --user") from None
        return user


def _validation_message(exc):
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
    return " ".join(exc.messages)

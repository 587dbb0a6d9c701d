"""`manage.py import_inventory FILE [--dry-run] [--tenant SLUG] [--format csv|json]`: servers and
their interfaces from CSV or JSON (columns in inventory.imports), as the acting portal user."""

import sys

from django.core.management.base import CommandError

from dcportal.management.base import PortalCommand
from inventory import imports


class Command(PortalCommand):
    help = (
        "Import servers (and interfaces) from CSV or JSON. Matches by uuid, then hostname; "
        "idempotent; all or nothing; --dry-run shows the changes and writes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The CSV or JSON file ('-' for standard input).")
        parser.add_argument("--tenant", help="Tenant (slug) of new servers whose row names none.")
        parser.add_argument("--format", choices=["csv", "json"], help="Default: from the name.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Show what would change; write nothing."
        )

    def handle(self, *args, file, tenant, format, dry_run, **options):
        user = self.acting_user(options)
        text = self.read(file)
        source = "<stdin>" if file == "-" else file
        fmt = format or imports.detect_format(file, text)
        try:
            report = imports.import_inventory(
                user=user,
                text=text,
                fmt=fmt,
                dry_run=dry_run,
                tenant=imports.default_tenant(user, tenant),
            )
        except imports.ImportFailed as exc:
            for where, message in exc.problems:
                self.stderr.write(f"{source}: {where}: {message}")
            count = len(exc.problems)
            raise CommandError(
                f"{count} error{'s' if count != 1 else ''} in {source}; nothing was imported"
            ) from None
        for outcome in report.outcomes:
            if outcome.action != "unchanged" or options["verbosity"] > 1 or dry_run:
                self.stdout.write(str(outcome))
        self.stdout.write(report.summary())

    def read(self, file):
        try:
            if file == "-":
                data = sys.stdin.buffer.read()
            else:
                with open(file, "rb") as handle:
                    data = handle.read()
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from None
        try:
            return data.decode("utf-8-sig")  # spreadsheets like to start with a BOM
        except UnicodeDecodeError as exc:
            raise CommandError(f"{file} is not UTF-8 text: {exc}") from None

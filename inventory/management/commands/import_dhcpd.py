"""`manage.py import_dhcpd FILE [--tenant SLUG] [--dry-run]`: servers, interfaces, addresses and
subnets from an ISC dhcpd.conf, as the acting portal user."""

import sys

from django.core.management.base import CommandError

from dcportal.management.base import PortalCommand
from inventory import dhcpd_import


class Command(PortalCommand):
    help = (
        "Import an ISC dhcpd.conf: hosts become servers with interfaces and addresses, subnets "
        "and ranges become IPAM subnets. Idempotent; all or nothing; --dry-run shows the plan."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The dhcpd.conf to read ('-' for standard input).")
        parser.add_argument("--tenant", help="Tenant slug (default: your only tenant).")
        parser.add_argument(
            "--dry-run", action="store_true", help="Show what would change; write nothing."
        )

    def handle(self, *args, file, tenant, dry_run, **options):
        user = self.acting_user(options)
        tenant = dhcpd_import.resolve_tenant(user, tenant)
        text = dhcpd_import.decode(self.read(file))
        source = "<stdin>" if file == "-" else file
        try:
            result = dhcpd_import.import_dhcpd(
                text, user=user, tenant=tenant, dry_run=dry_run, source=source
            )
        except dhcpd_import.DhcpdImportError as exc:
            self.report_warnings(source, exc.warnings)
            for problem in exc.problems:
                self.stderr.write(dhcpd_import.located(source, problem))
            count = len(exc.problems)
            raise CommandError(
                f"{count} error{'s' if count != 1 else ''} in {source}; nothing was imported"
            ) from None
        for line in result.diff_lines(verbose=options["verbosity"] > 1):
            self.stdout.write(line)
        self.report_warnings(source, result.warnings)

    def report_warnings(self, source, warnings):
        for warning in warnings:
            self.stderr.write(dhcpd_import.located(source, warning, level="warning"))

    def read(self, file):
        if file == "-":
            return sys.stdin.buffer.read()
        try:
            with open(file, "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from None

"""`manage.py render NODE TEMPLATE [--base-url URL]`: print a template rendered for a server,
as the portal's preview does (placeholder build token). On a template error, print
`TEMPLATE:LINE: message` and exit with status 1."""

import sys

from django.core.management.base import CommandError
from django.http import Http404

from dcportal.management.base import PortalCommand
from deploy import catalogue


class Command(PortalCommand):
    help = "Render a template for a server (host name) and print it."

    def add_arguments(self, parser):
        parser.add_argument("node", help="Host name of the server.")
        parser.add_argument("template", help="Name of the template.")
        parser.add_argument(
            "--base-url",
            help="The portal as nodes reach it (default: DCPORTAL_BOOT_URL, else "
            f"{catalogue.CLI_BASE_URL}).",
        )

    def handle(self, *args, node, template, base_url=None, **options):
        user = self.acting_user(options)
        try:
            server = catalogue.find_server(user, node)
        except Http404:
            raise CommandError(f"no server {node!r} that user {user} may see") from None
        try:
            found = catalogue.find_template(user, template)
        except Http404:
            raise CommandError(f"no template {template!r} that user {user} may see") from None
        result = catalogue.preview(
            user, found, server, base_url=(base_url or catalogue.base_url_for()).rstrip("/")
        )
        if not result.ok:
            for error in result.errors:
                where = error["snippet"] or found.name
                self.stderr.write(f"{where}:{error['line'] or 0}: {error['message']}")
            sys.exit(1)
        self.stdout.write(result.content, ending="")
        for problem in result.validation:
            line = problem["line"] or 0
            self.stderr.write(f"{found.name}:{line}: {problem['level']}: {problem['message']}")

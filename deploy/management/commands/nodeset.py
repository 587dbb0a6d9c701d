"""`manage.py nodeset NODERANGE install=PROFILE|localboot|rescue|discovery`, as xCAT's nodeset:
what the servers boot next. install gives each a new one-time build token."""

from django.core.management.base import CommandError

from dcportal import rbac
from dcportal.management.base import PortalCommand
from deploy import services
from deploy.models import ServerDeploy
from inventory import selectors

MODES = [value for value in ServerDeploy.NextBoot.values if value != "install"]
USAGE = "install=PROFILE, " + ", ".join(MODES)


def parse_mode(word):
    """(next boot, profile name or None) of a nodeset word."""
    mode, sep, profile = word.partition("=")
    if mode == ServerDeploy.NextBoot.INSTALL:
        if not sep or not profile:
            raise CommandError("install needs a profile: install=PROFILE")
        return mode, profile
    if mode in MODES and not sep:
        return mode, None
    raise CommandError(f"unknown next boot {word!r}; one of {USAGE}")


class Command(PortalCommand):
    help = f"Set what servers boot next: {USAGE}."

    def add_arguments(self, parser):
        parser.add_argument("noderange", help="Node range, e.g. node[01-20],db1 or a tag.")
        parser.add_argument("mode", metavar="MODE", help=USAGE)
        parser.add_argument("--quiet", action="store_true", help="Only the summary line.")

    def handle(self, *args, noderange, mode, quiet, **options):
        next_boot, profile = parse_mode(mode)
        user = self.acting_user(options)
        # The action first: a user without it hears "permission denied", not "no such node".
        rbac.require(user, services.NODESET_PERMISSION)
        servers = selectors.resolve_noderange(
            noderange, user=user, action=services.NODESET_PERMISSION
        )
        result = services.nodeset(user=user, servers=servers, next_boot=next_boot, profile=profile)
        what = f"{next_boot} {result.profile}" if next_boot == "install" else next_boot
        if not quiet:
            for hostname in result.servers:
                self.stdout.write(f"{hostname}: {what}")
        count = result.count
        self.stdout.write(f"{count} node{'s' if count != 1 else ''}: {what}")

"""`manage.py makedhcp --format isc|kea|dnsmasq [-o FILE] [--check]`: the DHCP configuration of
the subnets, pools and reservations the acting user may see, with PXE/iPXE boot files.

Conflicts in the inventory (a MAC or address reserved twice, a reservation in a pool...) are
listed and nothing is written (exit status 1). With -o the file is replaced atomically; with
--check the matching daemon must accept the text first.
"""

from django.core.management.base import CommandError

from dcportal.management.base import PortalCommand
from deploy import dhcp_services
from deploy.dhcp import check as dhcp_check
from deploy.dhcp.model import BOOT_MODES


class Command(PortalCommand):
    help = (
        "Write the DHCP configuration (ISC dhcpd, Kea or dnsmasq) of the inventory's subnets, "
        "DHCP ranges and reservations, with PXE and iPXE boot files. Refuses when the inventory "
        "holds conflicts."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--format", choices=dhcp_services.FORMATS, default="isc", help="Default: isc."
        )
        parser.add_argument(
            "-o",
            "--output",
            metavar="FILE",
            help="Replace FILE atomically (mode 0644) instead of writing to standard output.",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="Have the daemon check the configuration first (dhcpd -t, kea-dhcp4 -t, "
            "dnsmasq --test); nothing is written if it refuses.",
        )
        parser.add_argument(
            "--boot-url",
            help="The portal's URL as nodes reach it (default DCPORTAL_BOOT_URL); iPXE "
            "fetches BOOT_URL/boot/ipxe.",
        )
        parser.add_argument(
            "--next-server",
            help="The TFTP server's IPv4 address (default DCPORTAL_DHCP_NEXT_SERVER, else the "
            "boot URL's address).",
        )
        parser.add_argument(
            "--boot-mode", choices=BOOT_MODES, help="Default DCPORTAL_DHCP_BOOT_MODE."
        )
        parser.add_argument("--bios-file", help="Boot file of legacy BIOS PXE clients.")
        parser.add_argument("--uefi-file", help="Boot file of UEFI PXE clients.")
        parser.add_argument(
            "--interface",
            action="append",
            dest="interfaces",
            metavar="NAME",
            help="Kea: an interface to listen on (repeatable; default DCPORTAL_DHCP_INTERFACES).",
        )

    def handle(self, *args, **options):
        user = self.acting_user(options)
        fmt = options["format"]
        try:
            output = dhcp_services.generate(
                user=user,
                fmt=fmt,
                interfaces=options["interfaces"],
                next_server=options["next_server"],
                boot_url=options["boot_url"],
                boot_mode=options["boot_mode"],
                bios_file=options["bios_file"],
                uefi_file=options["uefi_file"],
            )
        except dhcp_services.DhcpConflictError as exc:
            for conflict in exc.conflicts:
                self.stderr.write(f"conflict ({conflict.kind}): {conflict.message}")
            count = len(exc.conflicts)
            raise CommandError(
                f"{count} conflict{'s' if count != 1 else ''} in the inventory; nothing was written"
            ) from None
        if options["check"]:
            self.run_checker(fmt, output.text)
        path = options["output"]
        if not path:
            self.stdout.write(output.text, ending="")
            return
        try:
            dhcp_services.write_file(path, output.text)
        except OSError as exc:
            raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from None
        config = output.config
        self.stdout.write(
            f"wrote {path} ({fmt}): {len(config.subnets)} subnets, "
            f"{sum(len(s.pools) for s in config.subnets)} pools, "
            f"{len(config.hosts)} reservations"
        )

    def run_checker(self, fmt, text):
        try:
            result = dhcp_check.check(fmt, text)
        except dhcp_check.CheckerMissing as exc:
            raise CommandError(f"cannot --check: {exc}") from None
        if not result.ok:
            if result.output:
                self.stderr.write(result.output)
            raise CommandError(f"{result.program} refuses the configuration; nothing was written")
        self.stderr.write(f"{result.program}: configuration accepted")

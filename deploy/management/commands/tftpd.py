"""`manage.py tftpd [--listen 127.0.0.1] [--port 69] [--root DIR] [--base-url URL]`: serve
PXELinux/GRUB configs from the database and boot files from a directory over TFTP, until
interrupted. Per-machine configs are rendered on request, by the same code as /boot/ over HTTP:
nothing is written to disk."""

import logging

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections, connections

from dcportal import requestcontext
from dcportal.templating import TemplateError
from deploy import services
from deploy.boot.tftp import DEFAULT_PORT, BootTftpServer

logger = logging.getLogger(__name__)


def database_configs(base_url):
    """configs(request) for BootTftpServer: the text of a PXELinux/GRUB config, None if the
    portal has none for it (or its template fails, which is logged)."""

    def configs(request):
        close_old_connections()  # a long-running server outlives its database connections
        with requestcontext.bound(
            request_id=requestcontext.new_request_id(), source="tftp", via="boot"
        ):
            try:
                answer = services.config_for(request, base_url=base_url)
            except (TemplateError, LookupError) as exc:
                logger.error("TFTP %s config could not be rendered: %s", request.kind, exc)
                return None
        return None if answer is None else answer.text

    return configs


class Command(BaseCommand):
    help = "Serve boot configs (from the database) and boot files over TFTP."

    def add_arguments(self, parser):
        parser.add_argument("--listen", default="127.0.0.1", help="Address (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="UDP port (69).")
        parser.add_argument(
            "--root",
            default=str(settings.BOOT_FILES_DIR),
            help="Bootloaders, kernels, initrds (default: DCPORTAL_BOOT_FILES_DIR).",
        )
        parser.add_argument(
            "--base-url",
            default=settings.BOOT_URL or "http://127.0.0.1:8000",
            help="The portal's URL as nodes reach it, for the configs (DCPORTAL_BOOT_URL).",
        )

    def handle(self, *args, listen, port, root, base_url, **options):
        logging.getLogger("tftpy").setLevel(logging.WARNING)  # a line per packet otherwise
        server = BootTftpServer(
            files_dir=root,
            configs=database_configs(base_url.rstrip("/")),
            thread_done=connections.close_all,
        )
        try:
            port = server.start(listen=listen, port=port)
        except OSError as exc:
            raise CommandError(f"cannot listen on {listen}:{port}: {exc}") from None
        self.stdout.write(
            f"TFTP on {listen}:{port}: files from {root}, configs for {base_url} (Ctrl-C stops)"
        )
        self.stdout.flush()
        try:
            server.wait()
        except KeyboardInterrupt:
            self.stdout.write("stopping")
        finally:
            server.stop()

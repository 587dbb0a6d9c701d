import os

from django.core.management.base import BaseCommand

from dcportal import requestcontext, services


class Command(BaseCommand):
    help = (
        "Create the `admin` account once. Its password comes from DCPORTAL_ADMIN_PASSWORD, "
        "or is generated and printed this one time."
    )

    def handle(self, *args, **options):
        with requestcontext.cli_context():
            generated = services.ensure_admin(password=os.environ.get("DCPORTAL_ADMIN_PASSWORD"))
        if generated:
            self.stdout.write(
                self.style.WARNING(
                    f"Created the admin account.\n    username: admin\n    password: {generated}\n"
                    "This password is shown once; change it after logging in."
                )
            )

from django.core.management.base import BaseCommand

from dcportal.rbac import sync_roles


class Command(BaseCommand):
    help = "Bring the built-in roles in line with their definitions (also done by every migrate)."

    def handle(self, *args, **options):
        for name, change in sync_roles().items():
            state = "created" if change["created"] else "updated"
            self.stdout.write(
                f"{name:15} {state}: {change['total']} actions "
                f"(+{change['added']} -{change['removed']})"
            )

import textwrap

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import CommandError

from dcportal import services
from dcportal.management.base import PortalCommand
from dcportal.models import Role


class Command(PortalCommand):
    help = (
        "List roles and their actions, or assign them: roles [list|show ROLE|assign ROLE|"
        "unassign ROLE|grant ACTION|revoke ACTION] [--to-user U | --to-group G]"
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "operation",
            nargs="?",
            default="list",
            choices=["list", "show", "assign", "unassign", "grant", "revoke"],
        )
        parser.add_argument("name", nargs="?", help="Role name, or an action app_label.codename")
        parser.add_argument("--to-user", help="The user to assign to / grant to")
        parser.add_argument("--to-group", help="The group to assign to")

    def handle(self, *args, operation, name, to_user, to_group, **options):
        if operation == "list":
            return self.list_roles()
        if not name:
            raise CommandError(f"`roles {operation}` needs a role name or action")
        if operation == "show":
            return self.show(self.role(name))
        actor = self.acting_user(options)
        if operation in ("grant", "revoke"):
            if not to_user:
                raise CommandError("single actions are granted to a user: --to-user NAME")
            service = services.grant_action if operation == "grant" else services.revoke_action
            service(user=actor, subject=self.subject(to_user, None), action=name)
            self.stdout.write(
                f"{operation}ed {name} {'to' if operation == 'grant' else 'from'} {to_user}"
            )
            return
        subject = self.subject(to_user, to_group)
        service = services.assign_role if operation == "assign" else services.unassign_role
        changed = service(user=actor, role=self.role(name), subject=subject)
        self.stdout.write(f"{operation} {name}: {'done' if changed else 'nothing to do'}")

    def role(self, name):
        try:
            return Role.objects.get(name=name)
        except Role.DoesNotExist:
            names = ", ".join(Role.objects.values_list("name", flat=True))
            raise CommandError(f"no role {name!r}; roles are: {names}") from None

    def subject(self, to_user, to_group):
        if bool(to_user) == bool(to_group):
            raise CommandError("give exactly one of --to-user or --to-group")
        try:
            if to_user:
                return get_user_model().objects.get(username=to_user)
            return Group.objects.get(name=to_group)
        except (Group.DoesNotExist, get_user_model().DoesNotExist):
            raise CommandError(
                f"no such {'user' if to_user else 'group'}: {to_user or to_group}"
            ) from None

    def list_roles(self):
        """Each role, its holders, and the actions it adds to the role below it."""
        roles = list(Role.objects.prefetch_related("users", "groups", "permissions__content_type"))
        below = set()
        listing = []
        for role in reversed(roles):  # lowest first, to tell what each rank adds
            actions = {f"{p.content_type.app_label}.{p.codename}" for p in role.permissions.all()}
            listing.append((role, actions, sorted(actions - below)))
            below = actions
        for role, actions, added in reversed(listing):
            holders = [u.username for u in role.users.all()] + [
                f"@{g.name}" for g in role.groups.all()
            ]
            self.stdout.write(
                f"{role.rank:3} {role.name:15} {len(actions):4} actions  "
                f"{', '.join(holders) or '-'}\n      {role.description}"
            )
            self.stdout.write(
                textwrap.fill(
                    ", ".join(added) or "-",
                    width=100,
                    initial_indent="      adds: ",
                    subsequent_indent="            ",
                )
            )

    def show(self, role):
        self.stdout.write(f"{role.name} (rank {role.rank}): {role.description}")
        for perm in role.permissions.select_related("content_type").order_by(
            "content_type__app_label", "codename"
        ):
            self.stdout.write(f"  {perm.content_type.app_label}.{perm.codename}")

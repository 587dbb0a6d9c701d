from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.http import Http404
from django.utils.text import slugify

from dcportal import rbac, services
from dcportal.management.base import PortalCommand
from dcportal.models import Tenant


class Command(PortalCommand):
    help = (
        "Tenants: tenants list | tenants create NAME [--slug S] | tenants add-member SLUG USER "
        "| tenants remove-member SLUG USER"
    )

    def add_arguments(self, parser):
        parser.add_argument("operation", choices=["list", "create", "add-member", "remove-member"])
        parser.add_argument("words", nargs="*", metavar="ARG")
        parser.add_argument("--slug")
        parser.add_argument("--description", default="")

    def handle(self, *args, operation, slug, description, **options):
        actor = self.acting_user(options)
        words = options["words"]
        visible = rbac.restrict(Tenant.objects.prefetch_related("members"), actor, "view")
        if operation == "list":
            for tenant in visible:
                members = ", ".join(u.username for u in tenant.members.all()) or "-"
                self.stdout.write(f"{tenant.slug:20} {tenant.name:30} members: {members}")
            return
        if operation == "create":
            if len(words) != 1:
                raise CommandError("tenants create NAME")
            tenant = services.create_tenant(
                user=actor, name=words[0], slug=slug or slugify(words[0]), description=description
            )
            self.stdout.write(f"created tenant {tenant.slug}")
            return
        if len(words) != 2:
            raise CommandError(f"tenants {operation} SLUG USER")
        try:
            tenant = rbac.get_restricted(Tenant.objects.all(), actor, "view", slug=words[0])
            member = get_user_model().objects.get(username=words[1])
        except Http404:
            raise CommandError(f"no tenant {words[0]!r}") from None
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user {words[1]!r}") from None
        members = set(tenant.members.values_list("pk", flat=True))
        if operation == "add-member":
            members.add(member.pk)
        else:
            members.discard(member.pk)
        services.update_object(tenant, user=actor, m2m={"members": sorted(members)})
        self.stdout.write(
            f"{tenant.slug}: members now "
            f"{', '.join(tenant.members.values_list('username', flat=True)) or '-'}"
        )

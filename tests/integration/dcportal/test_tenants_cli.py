from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from dcportal.models import AuditEvent, Tenant

pytestmark = pytest.mark.django_db


def tenants(*args, user="root"):
    out = StringIO()
    call_command("tenants", *args, "--user", user, stdout=out)
    return out.getvalue()


def test_create_add_and_remove_members_list(admin_user, make_user):
    make_user("bob")
    assert "created tenant acme-corp" in tenants("create", "Acme Corp")
    assert "members now bob" in tenants("add-member", "acme-corp", "bob")
    tenant = Tenant.objects.get(slug="acme-corp")
    assert list(tenant.members.values_list("username", flat=True)) == ["bob"]
    assert "acme-corp" in tenants("list") and "bob" in tenants("list")
    assert "members now -" in tenants("remove-member", "acme-corp", "bob")
    verbs = AuditEvent.objects.filter(object_id=str(tenant.pk), via="cli")
    assert list(verbs.values_list("action", flat=True).order_by("id")) == [
        "create",
        "update",
        "update",
    ]


def test_errors_are_clear(admin_user, make_user):
    make_user("carol", roles=["operator"])
    with pytest.raises(CommandError, match="no tenant 'nope'"):
        tenants("add-member", "nope", "root")
    with pytest.raises(CommandError, match="permission denied"):
        tenants("create", "Initech", user="carol")
    assert not Tenant.objects.filter(name="Initech").exists()

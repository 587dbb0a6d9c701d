"""services.each_or_none: the one way bulk actions apply a service to many objects."""

import pytest
from django.core.exceptions import ValidationError

from dcportal.models import Tenant
from dcportal.services import each_or_none

pytestmark = pytest.mark.django_db


def make(name):
    if name.startswith("bad"):
        raise ValidationError(f"{name} is refused")
    return Tenant.objects.create(name=name, slug=name)


def test_every_item_or_none():
    assert [t.slug for t in each_or_none(["a", "b"], make)] == ["a", "b"]
    with pytest.raises(ValidationError) as error:
        each_or_none(["c", "bad1", "d", "bad2"], make, name=str.upper)
    # Every refusal is named; the items applied before and after one are rolled back.
    assert error.value.messages == ["BAD1: bad1 is refused", "BAD2: bad2 is refused"]
    assert sorted(Tenant.objects.values_list("slug", flat=True)) == ["a", "b"]

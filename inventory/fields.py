"""PostgreSQL network types as Django fields: `inet` (an address) and `cidr` (a network).

Values are Python ipaddress objects; the database does the ordering, containment (<<=, >>=)
and overlap (&&) that IPAM needs, and GiST exclusion constraints refuse overlapping networks.
"""

import ipaddress

from django.core.exceptions import ValidationError
from django.db import models


class InetField(models.Field):
    description = "An IPv4 or IPv6 address (PostgreSQL inet)"

    def db_type(self, connection):
        return "inet"

    def from_db_value(self, value, expression, connection):
        return None if value is None else ipaddress.ip_interface(value).ip

    def to_python(self, value):
        if value is None or isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            return value
        try:
            return ipaddress.ip_address(str(value).strip())
        except ValueError:
            raise ValidationError(f"{value!r} is not an IP address.", code="invalid") from None

    def get_prep_value(self, value):
        value = self.to_python(value)
        return None if value is None else str(value)

    def value_to_string(self, obj):
        value = self.value_from_object(obj)
        return "" if value is None else str(value)

    def formfield(self, **kwargs):
        from django import forms

        return forms.CharField(max_length=45, **{"required": not self.blank, **kwargs})


class CidrField(models.Field):
    description = "An IPv4 or IPv6 network (PostgreSQL cidr)"

    def db_type(self, connection):
        return "cidr"

    def from_db_value(self, value, expression, connection):
        return None if value is None else ipaddress.ip_network(value)

    def to_python(self, value):
        if value is None or isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
            return value
        try:
            return ipaddress.ip_network(str(value).strip())
        except ValueError as exc:
            raise ValidationError(f"{value!r} is not a network: {exc}.", code="invalid") from None

    def get_prep_value(self, value):
        value = self.to_python(value)
        return None if value is None else str(value)

    def value_to_string(self, obj):
        value = self.value_from_object(obj)
        return "" if value is None else str(value)

    def formfield(self, **kwargs):
        from django import forms

        return forms.CharField(max_length=49, **{"required": not self.blank, **kwargs})


class MacAddressField(models.CharField):
    """A MAC address stored normalised: lowercase, colon separated (aa:bb:cc:dd:ee:ff)."""

    def __init__(self, *args, **kwargs):
        kwargs["max_length"] = 17
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs.pop("max_length", None)
        return name, path, args, kwargs

    def to_python(self, value):
        if value in (None, ""):
            return value
        return normalise_mac(value)

    def get_prep_value(self, value):
        return self.to_python(value)


def normalise_mac(value):
    """'AA-BB-CC-DD-EE-FF', 'aabb.ccdd.eeff', 'aabbccddeeff' → 'aa:bb:cc:dd:ee:ff'."""
    digits = "".join(ch for ch in str(value).lower() if ch in "0123456789abcdef")
    stripped = str(value).lower().replace(":", "").replace("-", "").replace(".", "").strip()
    if len(digits) != 12 or digits != stripped:
        raise ValidationError(f"{value!r} is not a MAC address.", code="invalid")
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


class _NetworkLookup(models.Lookup):
    operator = None

    def get_prep_lookup(self):
        # The right side may be a network even when the left is an address: leave its type to
        # PostgreSQL instead of preparing it as the left field's type.
        if hasattr(self.rhs, "resolve_expression"):
            return self.rhs
        return str(self.rhs)

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} {self.operator} {rhs}", [*lhs_params, *rhs_params]


@CidrField.register_lookup
class Overlaps(_NetworkLookup):
    """network__overlaps="10.0.0.0/8": either contains the other."""

    lookup_name = "overlaps"
    operator = "&&"


@InetField.register_lookup
@CidrField.register_lookup
class ContainedIn(_NetworkLookup):
    """address__net_in="10.0.0.0/24": the address (or network) lies within, or equals, it."""

    lookup_name = "net_in"
    operator = "<<="

"""IP address management: subnets, ranges and addresses, and handing out the next free address.

Every write goes through the generic services of dcportal.services (permission, tenant,
full_clean, audit). The checks here run first so that a conflict is explained on the field it
concerns and names the other object; the database's exclusion and unique constraints remain the
final guard when two requests race past those checks, and their refusal is turned back into the
same field error, so a race answers 400, never 500.

All functions take the acting user first, keyword-only, and objects the caller has already scoped
with dcportal.rbac.restrict().
"""

import ipaddress

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Func, IntegerField, Lookup, OuterRef, Subquery
from django.db.models.functions import Coalesce

from dcportal import rbac, services
from inventory.fields import CidrField, InetField
from inventory.models import IPAddress, IPRange, Subnet

# PostgreSQL SQLSTATEs of the constraints that guard IPAM under races.
EXCLUSION_VIOLATION = "23P01"
UNIQUE_VIOLATION = "23505"

# Kinds of range that allocation from the whole subnet leaves alone: a DHCP server hands out its
# pool itself, and a reserved range is reserved. Asked for explicitly, a range of any kind serves.
SKIPPED_RANGE_KINDS = (IPRange.Kind.DHCP, IPRange.Kind.RESERVED)

# How often allocation looks again when a writer that does not take the subnet lock (a raw
# insert, a bulk path) took the address it was about to hand out.
ALLOCATION_ATTEMPTS = 5


class _NetOperator(Lookup):
    """`lhs OP value::inet`, used as an expression: filter(NetContains(F("network"), "10.0.0.5")).

    Local rather than registered on the fields: inventory.fields offers only `<<=` (net_in), and
    on an InetField its right-hand side goes through InetField.get_prep_value, which takes an
    address, not a network. Here the value is passed as text and cast by PostgreSQL.
    """

    operator = None
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} {self.operator} ({rhs})::inet", [*lhs_params, *rhs_params]


class NetContains(_NetOperator):
    """The network contains (or equals) the address or network."""

    lookup_name = "net_contains"
    operator = ">>="


class NetWithin(_NetOperator):
    """The address or network lies within (or equals) the network."""

    lookup_name = "net_within"
    operator = "<<="


def containing(address):
    """A filter expression for subnets that contain `address`."""
    return NetContains(F("network"), str(address))


def within(network, field="address"):
    """A filter expression for rows whose `field` lies within `network`."""
    return NetWithin(F(field), str(network))


# Values and addresses ---------------------------------------------------------------------------


def as_network(value, field="network"):
    try:
        network = CidrField().to_python(value)
    except ValidationError as exc:
        raise ValidationError({field: exc.messages}) from None
    if network is None:
        raise ValidationError({field: "This field is required."})
    return network


def as_address(value, field="address"):
    try:
        address = InetField().to_python(value)
    except ValidationError as exc:
        raise ValidationError({field: exc.messages}) from None
    if address is None:
        raise ValidationError({field: "This field is required."})
    return address


def usable_bounds(network):
    """First and last address (ints) of `network` that may be given to a host.

    IPv4 networks lose their network and broadcast addresses (the model refuses them too) unless
    they are /31 or /32 point-to-point links. IPv6 has no broadcast, but its all-zero address is the
    Subnet-Router anycast address (RFC 4291 2.6.1), not one to give a host, except on /127 and /128.
    """
    first, last = int(network.network_address), int(network.broadcast_address)
    if network.version == 4 and network.num_addresses > 2:
        return first + 1, last - 1
    if network.version == 6 and network.prefixlen < 127:
        return first + 1, last
    return first, last


def usable_size(network):
    first, last = usable_bounds(network)
    return last - first + 1


def allocatable_spans(network, *, start=None, end=None, gateway=None, holes=()):
    """The spans (first, last), as ints and in order, that allocation may hand out from.

    `start`/`end` narrow the search to a range; `holes` are (start, end) pairs it must skip
    (DHCP pools, reserved ranges); the gateway is skipped too. Pure: no database.
    """
    first, last = usable_bounds(network)
    if start is not None:
        first = max(first, int(start))
    if end is not None:
        last = min(last, int(end))
    blocked = sorted((int(a), int(b)) for a, b in holes)
    if gateway is not None:
        blocked = sorted([*blocked, (int(gateway), int(gateway))])
    spans, cursor = [], first
    for low, high in blocked:
        if high < cursor:
            continue
        if low > last:
            break
        if low > cursor:
            spans.append((cursor, low - 1))
        cursor = max(cursor, high + 1)
    if cursor <= last:
        spans.append((cursor, last))
    return spans


def _first_free_in(version, low, high):
    """The lowest address in [low, high] that no IPAddress row holds, or None. One query.

    Not by listing the span (a /64 has 2^64 addresses): if `low` is taken, the answer is the end
    of the run of taken addresses that starts there, plus one; the unique index on `address`
    serves both the ordered walk and the probe for each next address.
    """
    table = connection.ops.quote_name(IPAddress._meta.db_table)
    # By family, not ip_address(int): that would read a small IPv6 integer as IPv4.
    family = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    low_text, high_text = str(family(low)), str(family(high))
    sql = f"""
        SELECT CASE
            WHEN NOT EXISTS (SELECT 1 FROM {table} WHERE address = %(low)s::inet)
                THEN host(%(low)s::inet)
            ELSE (
                SELECT host(taken.address + 1) FROM {table} taken
                WHERE taken.address >= %(low)s::inet AND taken.address < %(high)s::inet
                  AND NOT EXISTS (
                      SELECT 1 FROM {table} nxt WHERE nxt.address = taken.address + 1
                  )
                ORDER BY taken.address
                LIMIT 1
            )
        END
    """  # noqa: S608 (the table name is the model's own; values go as parameters)
    with connection.cursor() as cursor:
        cursor.execute(sql, {"low": low_text, "high": high_text})
        (found,) = cursor.fetchone()
    return None if found is None else ipaddress.ip_address(found)


def next_free_address(subnet, iprange=None):
    """The address allocation would hand out now in `subnet` (or in `iprange`), or None.

    Reads only: allocate_address() calls it with the subnet row locked.
    """
    network = subnet.network
    if iprange is not None:
        spans = allocatable_spans(
            network, start=iprange.start, end=iprange.end, gateway=subnet.gateway
        )
    else:
        holes = IPRange.objects.filter(subnet=subnet, kind__in=SKIPPED_RANGE_KINDS).values_list(
            "start", "end"
        )
        spans = allocatable_spans(network, gateway=subnet.gateway, holes=list(holes))
    for low, high in spans:
        found = _first_free_in(network.version, low, high)
        if found is not None:
            return found
    return None


# Usage ------------------------------------------------------------------------------------------


class _Count(Func):
    # COUNT(*) of a correlated subquery: Django sees no aggregate here and so adds no GROUP BY.
    function = "COUNT"
    template = "%(function)s(*)"
    output_field = IntegerField()


def count_of(queryset):
    """A subquery expression counting the rows of `queryset` (which may use OuterRef)."""
    return Coalesce(
        Subquery(queryset.order_by().annotate(n=_Count()).values("n")[:1]),
        0,
        output_field=IntegerField(),
    )


def with_used(subnets):
    """Subnets annotated with `used`, the count of their addresses: one subquery per row shown,
    so a page of subnets costs one query whatever the number of addresses."""
    return subnets.annotate(used=count_of(IPAddress.objects.filter(subnet=OuterRef("pk"))))


def ranges_with_used(ranges):
    """Ranges annotated with `used`, the count of addresses between their start and end."""
    return ranges.annotate(
        used=count_of(
            IPAddress.objects.filter(address__gte=OuterRef("start"), address__lte=OuterRef("end"))
        )
    )


def _percent(used, size):
    return round(100 * used / size, 1) if size else 0.0


def usage_figures(size, used):
    return {
        "size": size,
        "used": used,
        "free": max(size - used, 0),
        "percent": min(_percent(used, size), 100.0),
    }


def subnet_usage(subnet):
    """Counts for a subnet and each of its ranges, computed in SQL (two queries, no rows loaded):
    {size, used, free, percent, ranges: [{id, start, end, kind, description, size, used, free,
    percent}]}."""
    used = IPAddress.objects.filter(subnet=subnet).count()
    ranges = ranges_with_used(IPRange.objects.filter(subnet=subnet)).order_by("start")
    return {
        **usage_figures(usable_size(subnet.network), used),
        "ranges": [
            {
                "id": r.pk,
                "start": r.start,
                "end": r.end,
                "kind": r.kind,
                "description": r.description,
                **usage_figures(r.size, r.used),
            }
            for r in ranges
        ],
    }


# The database's refusals ------------------------------------------------------------------------


def database_refusal(exc):
    """The SQLSTATE behind a ValidationError that dcportal.services made of an IntegrityError.

    services._save raises it `from None`: that hides the IntegrityError from tracebacks but keeps
    it as __context__, and Django's IntegrityError keeps psycopg's error (with pgcode) as cause.
    None when the error came from validation, not from the database.
    """
    integrity = exc.__context__
    if not isinstance(integrity, IntegrityError):
        return None
    return getattr(integrity.__cause__, "pgcode", None)


def _saving(save, *, on_exclusion=None, on_unique=None):
    """Run a dcportal.services write; explain the database's own refusals on a field."""
    try:
        return save()
    except ValidationError as exc:
        code = database_refusal(exc)
        if code == EXCLUSION_VIOLATION and on_exclusion is not None:
            on_exclusion()
        elif code == UNIQUE_VIOLATION and on_unique is not None:
            on_unique()
        raise


def _tenant_check(user, perm, tenant):
    """Permission before anything else, so that a conflict is only explained to someone who may
    act (dcportal.services checks again, as it must for every caller)."""
    rbac.require(user, perm)
    rbac.check_tenant(user, tenant)


# Subnets ----------------------------------------------------------------------------------------


def _describe_subnet(user, subnet):
    visible = rbac.restrict(Subnet.objects.filter(pk=subnet.pk), user, "view").exists()
    if not visible:
        # The address space is shared, so the clash must be refused, but another tenant's
        # subnet is not this user's to read about.
        return "a subnet of another tenant"
    return f"the subnet {subnet.network}" + (f" ({subnet.name})" if subnet.name else "")


def _refuse_subnet_overlap(user, network, exclude_pk=None, *, raced=False):
    other = (
        Subnet.objects.filter(network__overlaps=network)
        .exclude(pk=exclude_pk)
        .order_by("network")
        .first()
    )
    if other is not None:
        raise ValidationError(
            {"network": f"{network} overlaps {_describe_subnet(user, other)}."}, code="overlap"
        )
    if raced:
        # The conflicting subnet was refused by the database but is gone again (deleted since).
        raise ValidationError(
            {"network": f"{network} overlaps a subnet written at the same time; try again."},
            code="overlap",
        )


def _check_subnet_contents(subnet, network):
    """A changed network must still hold the subnet's addresses and ranges."""
    if subnet.pk is None or network == subnet.network:
        return
    outside = IPAddress.objects.filter(subnet=subnet).exclude(within(network))
    count = outside.count()
    if count:
        example = outside.order_by("address").first()
        raise ValidationError(
            {
                "network": f"{count} address(es) of this subnet lie outside {network}, "
                f"e.g. {example}."
            }
        )
    for r in IPRange.objects.filter(subnet=subnet):
        if r.start not in network or r.end not in network:
            raise ValidationError({"network": f"The range {r} lies outside {network}."})


def _normalise_subnet_fields(fields):
    if "gateway" in fields and fields["gateway"] not in (None, ""):
        fields["gateway"] = as_address(fields["gateway"], "gateway")
    elif "gateway" in fields:
        fields["gateway"] = None
    if "dns_servers" in fields:
        fields["dns_servers"] = [
            as_address(value, "dns_servers") for value in fields["dns_servers"] or ()
        ]
    return fields


@transaction.atomic
def create_subnet(*, user, network, tenant, **fields):
    _tenant_check(user, "inventory.add_subnet", tenant)
    network = as_network(network)
    fields = _normalise_subnet_fields(fields)
    _refuse_subnet_overlap(user, network)
    return _saving(
        lambda: services.create_object(Subnet, user=user, network=network, tenant=tenant, **fields),
        on_exclusion=lambda: _refuse_subnet_overlap(user, network, raced=True),
    )


@transaction.atomic
def update_subnet(subnet, *, user, **fields):
    _tenant_check(user, "inventory.change_subnet", subnet.tenant)
    if "tenant" in fields:
        rbac.check_tenant(user, fields["tenant"])
    network = as_network(fields["network"]) if "network" in fields else subnet.network
    fields = {**_normalise_subnet_fields(fields), "network": network}
    _check_subnet_contents(subnet, network)
    tenant = fields.get("tenant", subnet.tenant)
    if tenant.pk != subnet.tenant_id:
        foreign = IPAddress.objects.filter(subnet=subnet, interface__isnull=False).exclude(
            interface__server__tenant=tenant
        )
        if foreign.exists():
            raise ValidationError(
                {"tenant": "Addresses of this subnet sit on interfaces of the current tenant."}
            )
    _refuse_subnet_overlap(user, network, exclude_pk=subnet.pk)
    return _saving(
        lambda: services.update_object(subnet, user=user, **fields),
        on_exclusion=lambda: _refuse_subnet_overlap(
            user, network, exclude_pk=subnet.pk, raced=True
        ),
    )


@transaction.atomic
def delete_subnet(subnet, *, user):
    """Delete a subnet and its ranges (each audited). Refused while it still has addresses."""
    _tenant_check(user, "inventory.delete_subnet", subnet.tenant)
    count = IPAddress.objects.filter(subnet=subnet).count()
    if count:
        raise ValidationError(
            f"The subnet {subnet.network} still has {count} address(es); release them first.",
            code="protected",
        )
    for iprange in IPRange.objects.filter(subnet=subnet):
        services.delete_object(iprange, user=user)
    services.delete_object(subnet, user=user)


# Ranges -----------------------------------------------------------------------------------------


def _refuse_range_overlap(start, end, exclude_pk=None, *, raced=False):
    other = (
        IPRange.objects.filter(start__lte=end, end__gte=start)
        .exclude(pk=exclude_pk)
        .select_related("subnet")
        .order_by("start")
        .first()
    )
    if other is not None:
        raise ValidationError(
            {
                "start": f"{start}-{end} overlaps the range {other} "
                f"({other.get_kind_display()}) in {other.subnet.network}."
            },
            code="overlap",
        )
    if raced:
        raise ValidationError(
            {"start": f"{start}-{end} overlaps a range written at the same time; try again."},
            code="overlap",
        )


def _check_range_bounds(subnet, start, end):
    for name, value in (("start", start), ("end", end)):
        if value not in subnet.network:
            raise ValidationError({name: f"{value} is not in {subnet.network}."})
    if start > end:
        raise ValidationError({"end": "The end comes before the start."})


@transaction.atomic
def create_range(*, user, subnet, start, end, **fields):
    _tenant_check(user, "inventory.add_iprange", subnet.tenant)
    start, end = as_address(start, "start"), as_address(end, "end")
    _check_range_bounds(subnet, start, end)
    _refuse_range_overlap(start, end)
    return _saving(
        lambda: services.create_object(
            IPRange, user=user, subnet=subnet, start=start, end=end, **fields
        ),
        on_exclusion=lambda: _refuse_range_overlap(start, end, raced=True),
    )


@transaction.atomic
def update_range(iprange, *, user, **fields):
    _tenant_check(user, "inventory.change_iprange", iprange.subnet.tenant)
    subnet = fields.get("subnet", iprange.subnet)
    rbac.check_tenant(user, subnet.tenant)
    start = as_address(fields.get("start", iprange.start), "start")
    end = as_address(fields.get("end", iprange.end), "end")
    fields = {**fields, "start": start, "end": end}
    _check_range_bounds(subnet, start, end)
    _refuse_range_overlap(start, end, exclude_pk=iprange.pk)
    return _saving(
        lambda: services.update_object(iprange, user=user, **fields),
        on_exclusion=lambda: _refuse_range_overlap(start, end, iprange.pk, raced=True),
    )


def delete_range(iprange, *, user):
    """The range goes; the addresses in it stay (they belong to the subnet)."""
    services.delete_object(iprange, user=user)


# Addresses --------------------------------------------------------------------------------------


def _containing_subnet(user, address):
    """The subnet of the user's tenants that holds `address` (subnets never overlap: one)."""
    subnet = rbac.restrict(Subnet.objects.all(), user, "view").filter(containing(address)).first()
    if subnet is None:
        raise ValidationError(
            {"address": f"None of your subnets contains {address}; create the subnet first."},
            code="no_subnet",
        )
    return subnet


def _refuse_duplicate(address, exclude_pk=None):
    if IPAddress.objects.filter(address=address).exclude(pk=exclude_pk).exists():
        raise ValidationError({"address": f"{address} is already in use."}, code="unique")


def _lock(subnet):
    """Take the subnet's row lock until the transaction ends.

    Every allocation and every address written through here in one subnet queue up on this
    lock, so each one sees the addresses the one before it committed (READ COMMITTED: a statement
    after the wait reads a fresh snapshot). Other subnets are not held up.
    """
    return Subnet.objects.select_for_update(of=("self",)).select_related("tenant").get(pk=subnet.pk)


@transaction.atomic
def create_address(*, user, address, subnet=None, **fields):
    """Record an address; without a subnet, it goes into the user's subnet that contains it."""
    rbac.require(user, "inventory.add_ipaddress")
    address = as_address(address)
    if subnet is None:
        subnet = _containing_subnet(user, address)
    rbac.check_tenant(user, subnet.tenant)
    subnet = _lock(subnet)
    if address not in subnet.network:
        raise ValidationError({"address": f"{address} is not in {subnet.network}."})
    _refuse_duplicate(address)
    return _saving(
        lambda: services.create_object(
            IPAddress, user=user, address=address, subnet=subnet, **fields
        ),
        on_unique=lambda: _refuse_duplicate(address),
    )


@transaction.atomic
def update_address(ip, *, user, **fields):
    """Change an address; a new address outside its subnet moves it to the subnet holding it."""
    _tenant_check(user, "inventory.change_ipaddress", ip.subnet.tenant)
    address = as_address(fields.get("address", ip.address))
    subnet = fields.get("subnet")
    if subnet is None:
        # No subnet named: keep the current one if it still holds the address, else find it.
        in_current = address in ip.subnet.network
        subnet = ip.subnet if in_current else _containing_subnet(user, address)
    rbac.check_tenant(user, subnet.tenant)
    subnet = _lock(subnet)
    if address not in subnet.network:
        raise ValidationError({"address": f"{address} is not in {subnet.network}."})
    _refuse_duplicate(address, exclude_pk=ip.pk)
    fields = {**fields, "address": address, "subnet": subnet}
    return _saving(
        lambda: services.update_object(ip, user=user, **fields),
        on_unique=lambda: _refuse_duplicate(address, exclude_pk=ip.pk),
    )


def delete_address(ip, *, user):
    services.delete_object(ip, user=user)


@transaction.atomic
def allocate_address(
    *,
    user,
    subnet=None,
    iprange=None,
    interface=None,
    dns_name="",
    status=IPAddress.Status.ACTIVE,
    description="",
):
    """Record the next free address of `subnet` (or of `iprange`) and return it.

    Safe under concurrency: the subnet's row lock makes parallel allocations in one subnet take
    turns, so two never pick the same address. From a whole subnet, the gateway and the DHCP and
    reserved ranges are skipped; from a range, every address of the range may be handed out.
    """
    rbac.require(user, "inventory.add_ipaddress")
    if iprange is not None:
        if subnet is not None and iprange.subnet_id != subnet.pk:
            raise ValidationError({"iprange": f"The range {iprange} is not in {subnet}."})
        subnet = iprange.subnet
    if subnet is None:
        raise ValidationError("Give a subnet or a range to allocate from.", code="required")
    rbac.check_tenant(user, subnet.tenant)
    subnet = _lock(subnet)
    if iprange is not None:
        # Read again under the lock: the range may have been resized or removed meanwhile.
        iprange = IPRange.objects.filter(pk=iprange.pk, subnet=subnet).first()
        if iprange is None:
            raise ValidationError({"iprange": "The range no longer exists."})
    where = f"the range {iprange}" if iprange is not None else f"the subnet {subnet.network}"
    for _attempt in range(ALLOCATION_ATTEMPTS):
        candidate = next_free_address(subnet, iprange)
        if candidate is None:
            raise ValidationError(f"No free address is left in {where}.", code="full")
        try:
            return services.create_object(
                IPAddress,
                user=user,
                address=candidate,
                subnet=subnet,
                interface=interface,
                status=status,
                dns_name=dns_name,
                description=description,
            )
        except ValidationError:
            # Taken meanwhile by a writer that does not queue on the subnet lock: look again.
            # Any other refusal (an interface of another tenant...) is the caller's to read.
            if not IPAddress.objects.filter(address=candidate).exists():
                raise
    raise ValidationError(
        f"Could not allocate in {where}: addresses kept being taken; try again.", code="busy"
    )


def allocation_permitted(user, subnet):
    """Whether the user may allocate in this (already scoped) subnet: for showing the button."""
    try:
        _tenant_check(user, "inventory.add_ipaddress", subnet.tenant)
    except PermissionDenied:
        return False
    return True

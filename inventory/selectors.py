"""Reads of the inventory scoped to a user: server lists, node ranges, a server's history."""

from collections import defaultdict

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db.models import F, Func, Prefetch, Q, TextField, Value

from dcportal import rbac
from dcportal.selectors import audit_events_for
from inventory import noderange
from inventory.models import Conflict, Interface, IPAddress, Server

MAX_LISTED = 10  # names quoted in a "nothing matches" error before "and N more"


def servers_for(user, action="view"):
    """Servers the user may take `action` on, with what a list shows loaded up front: the
    number of queries stays the same whatever the number of rows."""
    interfaces = Interface.objects.order_by("name").prefetch_related(
        Prefetch("addresses", queryset=IPAddress.objects.order_by("address"))
    )
    servers = Server.objects.select_related("tenant", "rack__site").prefetch_related(
        Prefetch("interfaces", queryset=interfaces)
    )
    return rbac.restrict(servers, user, action)


def _short_name(field="hostname"):
    return Func(F(field), Value("."), Value(1), function="split_part", output_field=TextField())


def _quoted(names):
    names = sorted(names)
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


def resolve_noderange(text, *, user, action="view", queryset=None):
    """The servers a node range names, among those the user may take `action` on.

    A name matches a server's full host name, or its first label when that is unique
    (node01 for node01.dc1.example.net). A bracket-free word that is no host name is a tag.
    Names that match nothing, and words that are neither a host nor a tag, are an error:
    an operator who mistypes a node must not silently act on fewer machines.
    """
    terms = noderange.parse(text)
    scope = servers_for(user, action) if queryset is None else queryset
    names = {name for term in terms for name in term.names}
    found = (
        scope.order_by()
        .annotate(short=_short_name())
        .filter(Q(hostname__in=names) | Q(short__in=names))
        .values_list("pk", "hostname", "short")
    )
    exact, by_short = {}, defaultdict(list)
    for pk, hostname, short in found:
        exact[hostname] = pk
        by_short[short].append((hostname, pk))

    ids, tags, missing, ambiguous = set(), [], [], []
    for term in terms:
        for name in term.names:
            if name in exact:
                ids.add(exact[name])
            elif len(by_short.get(name, ())) == 1:
                ids.add(by_short[name][0][1])
            elif by_short.get(name):
                hostnames = sorted(hostname for hostname, _ in by_short[name])
                ambiguous.append(f"{name} ({', '.join(hostnames)})")
            elif not term.expanded:
                tags.append(name)
            else:
                missing.append(name)
    for tag in tags:
        if not scope.filter(tags__contains=[tag]).exists():
            missing.append(tag)
    errors = []
    if missing:
        errors.append(f"No server or tag matches: {_quoted(missing)}.")
    if ambiguous:
        errors.append(f"Ambiguous short names, use the full host name: {_quoted(ambiguous)}.")
    if errors:
        raise ValidationError(errors, code="invalid")
    return scope.filter(Q(pk__in=ids) | Q(tags__overlap=tags) if tags else Q(pk__in=ids))


def servers_named(*, user, ids=None, noderange=None, action="view"):
    """The servers a bulk request names, by ids or by a node range, that the user may take
    `action` on, in a stable order. Raises ValidationError keyed by the field the caller used;
    an id of another tenant's server reads exactly like an id that does not exist."""
    if noderange:
        try:
            servers = resolve_noderange(noderange, user=user, action=action)
        except ValidationError as exc:
            raise ValidationError({"noderange": exc.messages}) from None
        return list(servers.order_by("hostname"))
    ids = list(dict.fromkeys(ids or ()))
    found = rbac.restrict(Server.objects.filter(pk__in=ids), user, action).in_bulk()
    missing = [str(pk) for pk in ids if pk not in found]
    if missing:
        raise ValidationError({"servers": f"No server with id {', '.join(missing)}."})
    return [found[pk] for pk in ids]


def server_history(server, *, user, limit=200):
    """Audit events of the server and of its current interfaces, newest first."""
    events = audit_events_for(user)
    server_type = ContentType.objects.get_for_model(Server, for_concrete_model=False)
    interface_type = ContentType.objects.get_for_model(Interface, for_concrete_model=False)
    interface_ids = [str(pk) for pk in server.interfaces.values_list("pk", flat=True)]
    return events.filter(
        Q(content_type=server_type, object_id=str(server.pk))
        | Q(content_type=interface_type, object_id__in=interface_ids)
    ).order_by("-time", "-pk")[:limit]


def addresses_of(server, *, user):
    return rbac.restrict(
        IPAddress.objects.select_related("subnet", "interface"), user, "view"
    ).filter(interface__server=server)


def conflicts_of(server, *, user):
    return rbac.restrict(
        Conflict.objects.select_related("other_server", "resolved_by"), user, "view"
    ).filter(server=server)

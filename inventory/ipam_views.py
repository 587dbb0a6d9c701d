"""Portal pages for IPAM: subnets with their usage, ranges and addresses, and allocation.

Also the fleet-wide interface list, whose rows link to their servers.

Thin: every page scopes with dcportal.rbac, every write calls inventory.ipam, and a service's
ValidationError comes back on the form field it concerns (or as a message for buttons).
"""

from urllib.parse import urlsplit

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from dcportal import bulk, dialogs, rbac
from inventory import ipam, services
from inventory.ipam_filtersets import (
    InterfaceTableFilterSet,
    SubnetAddressFilterSet,
    SubnetFilterSet,
)
from inventory.ipam_forms import (
    AddressForm,
    AllocateForm,
    InterfaceForm,
    RangeForm,
    SubnetForm,
    add_service_errors,
)
from inventory.models import Interface, IPAddress, IPRange, Subnet
from inventory.tables import AddressTable, InterfaceTable, SubnetTable


def _subnet(request, pk):
    """A subnet the user may see, or 404 (also when it belongs to another tenant)."""
    return rbac.get_restricted(Subnet.objects.select_related("tenant"), request.user, pk=pk)


def _can(user, perm):
    return user.has_perm(f"inventory.{perm}")


def subnet_list(request):
    user = request.user
    scoped = ipam.with_used(rbac.restrict(Subnet.objects.select_related("tenant"), user))
    table = SubnetTable(request, scoped, filter_form=SubnetFilterSet(request.GET).form)
    if table.export and not table.errors:
        return table.export_response()
    return render(
        request,
        "inventory/subnet_list.html",
        {
            "table": table,
            "can_add": _can(user, "add_subnet"),
            "can_change_subnets": _can(user, "change_subnet"),
        },
    )


def subnet_detail(request, pk):
    subnet = _subnet(request, pk)
    user = request.user
    addresses = IPAddress.objects.filter(subnet=subnet).select_related("interface__server")
    table = AddressTable(request, addresses, filter_form=SubnetAddressFilterSet(request.GET).form)
    if table.export and not table.errors:
        return table.export_response()
    usage = ipam.subnet_usage(subnet)
    kinds = dict(IPRange.Kind.choices)
    ranges = [{**r, "kind_label": kinds.get(r["kind"], r["kind"])} for r in usage.pop("ranges")]
    can_allocate = ipam.allocation_permitted(user, subnet)
    return render(
        request,
        "inventory/subnet_detail.html",
        {
            "subnet": subnet,
            "usage": usage,
            "ranges": ranges,
            "table": table,
            "can_allocate": can_allocate,
            "next_free": ipam.next_free_address(subnet) if can_allocate else None,
            # Its own ids: the dialog's address form has fields of the same names.
            "allocate_form": AllocateForm(subnet=subnet, auto_id="allocate_%s")
            if can_allocate
            else None,
            "can_change": _can(user, "change_subnet"),
            "can_delete": _can(user, "delete_subnet"),
            "can_add_range": _can(user, "add_iprange"),
            "can_change_range": _can(user, "change_iprange"),
            "can_delete_range": _can(user, "delete_iprange"),
            "can_add_address": _can(user, "add_ipaddress"),
            "can_change_address": _can(user, "change_ipaddress"),
        },
    )


@require_POST
def subnet_allocate(request, pk):
    subnet = _subnet(request, pk)
    form = AllocateForm(request.POST, subnet=subnet)
    if not form.is_valid():
        messages.error(request, "Allocation refused: " + form.errors.as_text())
        return redirect("inventory:subnet", pk=subnet.pk)
    try:
        ip = ipam.allocate_address(
            user=request.user,
            subnet=subnet,
            iprange=form.cleaned_data["iprange"],
            dns_name=form.cleaned_data["dns_name"],
            description=form.cleaned_data["description"],
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Allocated {ip.address}.")
    return redirect("inventory:subnet", pk=subnet.pk)


def _form_page(request, form, *, title, cancel_url, submit="Save", subnav="subnets"):
    return render(
        request,
        "inventory/form.html",
        {
            "form": form,
            "title": title,
            "cancel_url": cancel_url,
            "submit": submit,
            "subnav": subnav,
        },
    )


def _saved_on_subnet_page(request, *, location, message):
    """A form saved in the dialog of a subnet's page: that page shows more than its address
    table (facts, usage, ranges), so it reloads whole rather than the table alone."""
    response = dialogs.saved(request, location=location, message=message)
    current = urlsplit(request.headers.get("HX-Current-URL", "")).path
    if dialogs.is_htmx(request) and current == location:
        response["HX-Refresh"] = "true"
    return response


def subnet_edit(request, pk=None):
    """Create (no pk) or change a subnet."""
    subnet = None if pk is None else _subnet(request, pk)
    rbac.require(
        request.user, "inventory.add_subnet" if subnet is None else "inventory.change_subnet"
    )
    initial = {} if subnet is None else SubnetForm.initial_for(subnet)
    form = SubnetForm(request.POST or None, user=request.user, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            if subnet is None:
                subnet = ipam.create_subnet(user=request.user, **form.cleaned_data)
            else:
                ipam.update_subnet(subnet, user=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            return _saved_on_subnet_page(
                request,
                location=reverse("inventory:subnet", args=[subnet.pk]),
                message=f"Subnet {subnet.network} saved.",
            )
    return _form_page(
        request,
        form,
        title="New subnet" if subnet is None else f"Edit subnet {subnet.network}",
        cancel_url=reverse("inventory:subnets")
        if subnet is None
        else reverse("inventory:subnet", args=[subnet.pk]),
    )


@require_POST
def subnet_delete(request, pk):
    subnet = _subnet(request, pk)
    try:
        ipam.delete_subnet(subnet, user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("inventory:subnet", pk=subnet.pk)
    messages.success(request, f"Subnet {subnet.network} deleted.")
    return redirect("inventory:subnets")


def range_edit(request, pk=None, subnet_pk=None):
    """Create a range in a subnet (subnet_pk) or change one (pk)."""
    if pk is None:
        iprange, subnet = None, _subnet(request, subnet_pk)
    else:
        iprange = rbac.get_restricted(
            IPRange.objects.select_related("subnet__tenant"), request.user, pk=pk
        )
        subnet = iprange.subnet
    rbac.require(
        request.user, "inventory.add_iprange" if iprange is None else "inventory.change_iprange"
    )
    initial = {} if iprange is None else RangeForm.initial_for(iprange)
    form = RangeForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            if iprange is None:
                ipam.create_range(user=request.user, subnet=subnet, **form.cleaned_data)
            else:
                ipam.update_range(iprange, user=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            return _saved_on_subnet_page(
                request,
                location=reverse("inventory:subnet", args=[subnet.pk]),
                message="Range saved.",
            )
    return _form_page(
        request,
        form,
        title=f"New range in {subnet.network}" if iprange is None else f"Edit range {iprange}",
        cancel_url=reverse("inventory:subnet", args=[subnet.pk]),
    )


@require_POST
def range_delete(request, pk):
    iprange = rbac.get_restricted(
        IPRange.objects.select_related("subnet__tenant"), request.user, pk=pk
    )
    ipam.delete_range(iprange, user=request.user)
    messages.success(request, f"Range {iprange} deleted; its addresses stay in the subnet.")
    return redirect("inventory:subnet", pk=iprange.subnet_id)


def address_create(request, subnet_pk):
    subnet = _subnet(request, subnet_pk)
    rbac.require(request.user, "inventory.add_ipaddress")
    form = AddressForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            ip = ipam.create_address(user=request.user, subnet=subnet, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            return _saved_on_subnet_page(
                request,
                location=reverse("inventory:subnet", args=[subnet.pk]),
                message=f"Address {ip.address} recorded.",
            )
    return _form_page(
        request,
        form,
        title=f"New address in {subnet.network}",
        cancel_url=reverse("inventory:subnet", args=[subnet.pk]),
        submit="Add",
    )


@require_POST
def address_delete(request, pk):
    ip = rbac.get_restricted(
        IPAddress.objects.select_related("subnet__tenant"), request.user, pk=pk
    )
    ipam.delete_address(ip, user=request.user)
    messages.success(request, f"Address {ip.address} released.")
    return redirect("inventory:subnet", pk=ip.subnet_id)


def address_edit(request, pk):
    ip = rbac.get_restricted(
        IPAddress.objects.select_related("subnet__tenant"), request.user, pk=pk
    )
    rbac.require(request.user, "inventory.change_ipaddress")
    form = AddressForm(request.POST or None, initial=AddressForm.initial_for(ip))
    if request.method == "POST" and form.is_valid():
        changed = {name: form.cleaned_data[name] for name in form.changed_data}
        try:
            ip = ipam.update_address(ip, user=request.user, **changed)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            return dialogs.saved(
                request,
                location=reverse("inventory:subnet", args=[ip.subnet_id]),
                message=f"Address {ip.address} saved.",
            )
    return _form_page(
        request,
        form,
        title=f"Edit address {ip.address}",
        cancel_url=reverse("inventory:subnet", args=[ip.subnet_id]),
    )


@require_POST
def address_bulk(request):
    """Release the selected addresses: first a confirmation page, then (confirm=1) release."""
    user = request.user
    rbac.require(user, "inventory.delete_ipaddress")
    back = bulk.back_url(request, reverse("inventory:subnets"))
    ids = bulk.selected_ids(request)
    chosen = list(
        rbac.restrict(IPAddress.objects.select_related("subnet__tenant"), user, "delete")
        .filter(pk__in=ids)
        .order_by("address")
    )
    if not chosen:
        messages.error(request, "None of the selected addresses can be released.")
        return redirect(back)
    count = f"{len(chosen)} address{'es' if len(chosen) != 1 else ''}"
    if request.POST.get("confirm") != "1":
        return bulk.confirm_page(
            request,
            title=f"Release {count}?",
            items=[f"{ip.address} {ip.dns_name}".strip() for ip in chosen],
            ids=[ip.pk for ip in chosen],
            action="release",
            label="Release",
            back=back,
        )
    bulk.apply_all(
        request,
        chosen,
        lambda ip: ipam.delete_address(ip, user=user),
        done=f"Released {count}.",
        name=lambda ip: str(ip.address),
    )
    return redirect(back)


# Interfaces -------------------------------------------------------------------------------------


def interface_list(request):
    """Every interface the user may see, across servers: host, name, MAC, boot, addresses."""
    user = request.user
    rbac.require(user, "inventory.view_interface")
    interfaces = rbac.restrict(
        Interface.objects.select_related("server__tenant").prefetch_related("addresses"), user
    )
    table = InterfaceTable(
        request, interfaces, filter_form=InterfaceTableFilterSet(request.GET).form
    )
    if table.export and not table.errors:
        return table.export_response()
    return render(request, "inventory/interface_list.html", {"table": table})


def interface_edit(request, pk):
    interface = rbac.get_restricted(Interface.objects.select_related("server"), request.user, pk=pk)
    rbac.require(request.user, "inventory.change_interface")
    form = InterfaceForm(request.POST or None, initial=InterfaceForm.initial_for(interface))
    if request.method == "POST" and form.is_valid():
        changed = {name: form.cleaned_data[name] for name in form.changed_data}
        try:
            services.update_interface(interface, user=request.user, **changed)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            return dialogs.saved(
                request,
                location=reverse("inventory:server", args=[interface.server_id]) + "#interfaces",
                message=f"Interface {interface.name} of {interface.server.hostname} saved.",
            )
    return _form_page(
        request,
        form,
        title=f"Edit interface {interface.name} of {interface.server.hostname}",
        cancel_url=reverse("inventory:interfaces"),
        subnav="interfaces",
    )


urlpatterns = [
    path("subnets/", subnet_list, name="subnets"),
    path("subnets/new/", subnet_edit, name="subnet-create"),
    path("subnets/<int:pk>/", subnet_detail, name="subnet"),
    path("subnets/<int:pk>/edit/", subnet_edit, name="subnet-edit"),
    path("subnets/<int:pk>/delete/", subnet_delete, name="subnet-delete"),
    path("subnets/<int:pk>/allocate/", subnet_allocate, name="subnet-allocate"),
    path("subnets/<int:subnet_pk>/ranges/new/", range_edit, name="subnet-range-create"),
    path("subnets/ranges/<int:pk>/edit/", range_edit, name="subnet-range-edit"),
    path("subnets/ranges/<int:pk>/delete/", range_delete, name="subnet-range-delete"),
    path("subnets/<int:subnet_pk>/addresses/new/", address_create, name="subnet-address-create"),
    path("subnets/addresses/<int:pk>/edit/", address_edit, name="subnet-address-edit"),
    path("subnets/addresses/<int:pk>/delete/", address_delete, name="subnet-address-delete"),
    path("subnets/addresses/bulk/", address_bulk, name="address-bulk"),
    path("interfaces/", interface_list, name="interfaces"),
    path("interfaces/<int:pk>/edit/", interface_edit, name="interface-edit"),
]

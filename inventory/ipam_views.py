"""Portal pages for IPAM: subnets with their usage, ranges and addresses, and allocation.

Thin: every page scopes with dcportal.rbac, every write calls inventory.ipam, and a service's
ValidationError comes back on the form field it concerns (or as a message for buttons).
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from dcportal import rbac
from inventory import ipam
from inventory.ipam_filtersets import SubnetFilterSet
from inventory.ipam_forms import (
    AddressForm,
    AllocateForm,
    RangeForm,
    SubnetForm,
    add_service_errors,
)
from inventory.models import IPAddress, IPRange, Subnet

SUBNETS_PER_PAGE = 50
ADDRESSES_PER_PAGE = 100


def _subnet(request, pk):
    """A subnet the user may see, or 404 (also when it belongs to another tenant)."""
    return rbac.get_restricted(Subnet.objects.select_related("tenant"), request.user, pk=pk)


def _can(user, perm):
    return user.has_perm(f"inventory.{perm}")


def subnet_list(request):
    params = {k: v for k, v in request.GET.items() if v and k != "page"}
    scoped = ipam.with_used(rbac.restrict(Subnet.objects.select_related("tenant"), request.user))
    filterset = SubnetFilterSet(params, queryset=scoped)
    subnets = filterset.qs.order_by("network") if filterset.is_valid() else scoped.none()
    page = Paginator(subnets, SUBNETS_PER_PAGE).get_page(request.GET.get("page"))
    for subnet in page:
        subnet.usage = ipam.usage_figures(ipam.usable_size(subnet.network), subnet.used)
    return render(
        request,
        "inventory/subnet_list.html",
        {
            "page": page,
            "form": filterset.form,
            "errors": filterset.errors,
            "can_add": _can(request.user, "add_subnet"),
        },
    )


def subnet_detail(request, pk):
    subnet = _subnet(request, pk)
    user = request.user
    usage = ipam.subnet_usage(subnet)
    kinds = dict(IPRange.Kind.choices)
    ranges = [{**r, "kind_label": kinds.get(r["kind"], r["kind"])} for r in usage.pop("ranges")]
    addresses = IPAddress.objects.filter(subnet=subnet).select_related("interface__server")
    page = Paginator(addresses.order_by("address"), ADDRESSES_PER_PAGE).get_page(
        request.GET.get("page")
    )
    can_allocate = ipam.allocation_permitted(user, subnet)
    return render(
        request,
        "inventory/subnet_detail.html",
        {
            "subnet": subnet,
            "usage": usage,
            "ranges": ranges,
            "page": page,
            "can_allocate": can_allocate,
            "next_free": ipam.next_free_address(subnet) if can_allocate else None,
            "allocate_form": AllocateForm(subnet=subnet) if can_allocate else None,
            "can_change": _can(user, "change_subnet"),
            "can_delete": _can(user, "delete_subnet"),
            "can_add_range": _can(user, "add_iprange"),
            "can_change_range": _can(user, "change_iprange"),
            "can_delete_range": _can(user, "delete_iprange"),
            "can_add_address": _can(user, "add_ipaddress"),
            "can_delete_address": _can(user, "delete_ipaddress"),
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


def _form_page(request, form, *, title, cancel_url, submit="Save"):
    return render(
        request,
        "inventory/form.html",
        {
            "form": form,
            "title": title,
            "cancel_url": cancel_url,
            "submit": submit,
            "subnav": "subnets",
        },
    )


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
            messages.success(request, f"Subnet {subnet.network} saved.")
            return redirect("inventory:subnet", pk=subnet.pk)
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
            messages.success(request, "Range saved.")
            return redirect("inventory:subnet", pk=subnet.pk)
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
            messages.success(request, f"Address {ip.address} recorded.")
            return redirect("inventory:subnet", pk=subnet.pk)
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
    path("subnets/addresses/<int:pk>/delete/", address_delete, name="subnet-address-delete"),
]

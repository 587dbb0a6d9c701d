"""Forms of the IPAM portal pages and of the interface editor. They only parse input: the
services (inventory.ipam, inventory.services) validate and write, and their field errors are
put back on these forms (add_service_errors)."""

from django import forms
from django.core.exceptions import ValidationError

from dcportal import rbac
from dcportal.models import Tenant
from inventory.models import IPAddress, IPRange


def tenants_for(user):
    """The tenants a user may place objects in (every tenant for an admin)."""
    if rbac.is_global(user):
        return Tenant.objects.all()
    return Tenant.objects.filter(pk__in=rbac.tenant_ids(user))


def add_service_errors(form, exc: ValidationError):
    """Show a service's ValidationError on the form: on its field when the form has one."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


class SubnetForm(forms.Form):
    network = forms.CharField(max_length=49, help_text="CIDR, e.g. 10.1.0.0/24 or 2001:db8::/64")
    name = forms.CharField(max_length=100, required=False)
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.none())
    vlan = forms.IntegerField(required=False, min_value=1, max_value=4094, label="VLAN")
    gateway = forms.CharField(max_length=45, required=False)
    dns_servers = forms.CharField(
        required=False, label="DNS servers", help_text="Addresses separated by spaces or commas"
    )
    domain = forms.CharField(max_length=253, required=False)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tenant"].queryset = tenants_for(user)

    def clean_dns_servers(self):
        text = self.cleaned_data["dns_servers"].replace(",", " ")
        return text.split()  # each one is checked by the service

    def clean_gateway(self):
        return self.cleaned_data["gateway"].strip() or None

    @staticmethod
    def initial_for(subnet):
        return {
            "network": str(subnet.network),
            "name": subnet.name,
            "tenant": subnet.tenant_id,
            "vlan": subnet.vlan,
            "gateway": "" if subnet.gateway is None else str(subnet.gateway),
            "dns_servers": ", ".join(str(a) for a in subnet.dns_servers),
            "domain": subnet.domain,
            "description": subnet.description,
        }


class RangeForm(forms.Form):
    start = forms.CharField(max_length=45)
    end = forms.CharField(max_length=45)
    kind = forms.ChoiceField(choices=IPRange.Kind.choices, initial=IPRange.Kind.STATIC)
    description = forms.CharField(max_length=200, required=False)

    @staticmethod
    def initial_for(iprange):
        return {
            "start": str(iprange.start),
            "end": str(iprange.end),
            "kind": iprange.kind,
            "description": iprange.description,
        }


class AddressForm(forms.Form):
    address = forms.CharField(max_length=45)
    status = forms.ChoiceField(choices=IPAddress.Status.choices, initial=IPAddress.Status.ACTIVE)
    dns_name = forms.CharField(max_length=253, required=False, label="DNS name")
    description = forms.CharField(max_length=200, required=False)

    @staticmethod
    def initial_for(ip):
        return {
            "address": str(ip.address),
            "status": ip.status,
            "dns_name": ip.dns_name,
            "description": ip.description,
        }


class InterfaceForm(forms.Form):
    name = forms.CharField(max_length=64)
    mac = forms.CharField(max_length=17, label="MAC address", help_text="e.g. 52:54:00:12:34:56")
    boot = forms.BooleanField(
        required=False, label="Boot interface", help_text="The server PXE-boots from it."
    )
    description = forms.CharField(max_length=200, required=False)

    @staticmethod
    def initial_for(interface):
        return {
            "name": interface.name,
            "mac": interface.mac,
            "boot": interface.boot,
            "description": interface.description,
        }


class AllocateForm(forms.Form):
    iprange = forms.ModelChoiceField(
        queryset=IPRange.objects.none(),
        required=False,
        empty_label="anywhere in the subnet",
        label="From",
    )
    dns_name = forms.CharField(max_length=253, required=False, label="DNS name")
    description = forms.CharField(max_length=200, required=False)

    def __init__(self, *args, subnet, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["iprange"].queryset = IPRange.objects.filter(subnet=subnet)
        self.fields["iprange"].label_from_instance = lambda r: (
            f"{r.start} - {r.end} ({r.get_kind_display()})"
        )

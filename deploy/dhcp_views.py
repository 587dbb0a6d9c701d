"""Portal pages of the DHCP configurations: choose a format and boot options, see the conflicts
the inventory holds or a preview of the file, and download it.

Read-only (GET forms): nothing here writes. The work is deploy.dhcp_services', scoped to the
user like the API and `manage.py makedhcp`.
"""

from django import forms
from django.core.exceptions import ValidationError
from django.http import HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import path, reverse

from dcportal import rbac
from deploy import dhcp_services
from deploy.dhcp.check import FILE_NAMES
from deploy.dhcp.model import BOOT_MODES

# A 10k-host dhcpd.conf is about 60k lines: the page shows the start, the download has it all.
PREVIEW_LINES = 300
FORMAT_LABELS = {"isc": "ISC dhcpd", "kea": "Kea (kea-dhcp4)", "dnsmasq": "dnsmasq"}


class DhcpForm(forms.Form):
    format = forms.ChoiceField(
        choices=[(fmt, FORMAT_LABELS[fmt]) for fmt in dhcp_services.FORMATS],
        initial="isc",
        required=False,
    )
    boot_mode = forms.ChoiceField(
        choices=[("", "As configured"), *((mode, mode) for mode in BOOT_MODES)],
        required=False,
        help_text="ipxe chainloads iPXE, which fetches the portal's boot script.",
    )
    next_server = forms.GenericIPAddressField(
        protocol="IPv4", required=False, help_text="TFTP server; empty: as configured."
    )
    boot_url = forms.CharField(
        label="Boot URL",
        required=False,
        max_length=200,
        help_text="The portal's URL as nodes reach it; empty: as configured.",
    )
    bios_file = forms.CharField(required=False, max_length=200, label="BIOS boot file")
    uefi_file = forms.CharField(required=False, max_length=200, label="UEFI boot file")

    def clean_format(self):
        return self.cleaned_data["format"] or "isc"

    def boot_overrides(self):
        data = self.cleaned_data
        return {name: data[name] or None for name in data if name != "format"}


def _require(user):
    for code in dhcp_services.PERMISSIONS:
        rbac.require(user, code)


def _form(request):
    return DhcpForm(request.GET if request.GET else {"format": "isc"})


def _prepare(form, user):
    """(config, conflicts), or (None, []) with the service's errors put on the form."""
    if not form.is_valid():
        return None, []
    try:
        return dhcp_services.prepare(
            user=user, fmt=form.cleaned_data["format"], **form.boot_overrides()
        )
    except ValidationError as exc:
        errors = exc.message_dict if hasattr(exc, "error_dict") else {None: exc.messages}
        for name, messages in errors.items():
            form.add_error(name if name in form.fields else None, messages)
        return None, []


def dhcp_page(request):
    _require(request.user)
    form = _form(request)
    config, conflicts = _prepare(form, request.user)
    context = {"form": form, "conflicts": conflicts}
    if config is not None and not conflicts:
        fmt = form.cleaned_data["format"]
        try:
            text = dhcp_services.render(config, fmt)
        except ValidationError as exc:
            form.add_error(None, exc.messages)
        else:
            lines = text.splitlines()
            context.update(
                {
                    "preview": "\n".join(lines[:PREVIEW_LINES]),
                    "line_count": len(lines),
                    "truncated": len(lines) > PREVIEW_LINES,
                    "preview_lines": PREVIEW_LINES,
                    "filename": FILE_NAMES[fmt],
                    "format_label": FORMAT_LABELS[fmt],
                    "subnet_count": len(config.subnets),
                    "pool_count": sum(len(subnet.pools) for subnet in config.subnets),
                    "host_count": len(config.hosts),
                    "download_url": reverse("deploy:dhcp-download") + "?" + _form_query(form),
                }
            )
    return render(request, "deploy/dhcp/page.html", context)


def _form_query(form):
    """The form's non-empty values as a query string."""
    query = QueryDict(mutable=True)
    for name, value in form.cleaned_data.items():
        if value:
            query[name] = value
    return query.urlencode()


def dhcp_download(request):
    _require(request.user)
    form = _form(request)
    if form.is_valid():
        fmt = form.cleaned_data["format"]
        try:
            output = dhcp_services.generate(user=request.user, fmt=fmt, **form.boot_overrides())
        except ValidationError:
            pass  # the page shows why, field by field or conflict by conflict
        else:
            response = HttpResponse(output.text, content_type=output.content_type)
            response["Content-Disposition"] = f'attachment; filename="{output.filename}"'
            return response
    url = reverse("deploy:dhcp")
    return redirect(f"{url}?{request.GET.urlencode()}" if request.GET else url)


urlpatterns = [
    path("dhcp/", dhcp_page, name="dhcp"),
    path("dhcp/download/", dhcp_download, name="dhcp-download"),
]

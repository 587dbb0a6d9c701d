"""What every bulk action of the list pages shares: the selected ids, the safe way back to the
list, and the confirmation page that repeats the selection before anything changes."""

from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme


def selected_ids(request):
    return [int(value) for value in request.POST.getlist("ids") if value.isdigit()]


def back_url(request, default):
    """The list to return to (`next`), if it is on this site; `default` otherwise."""
    target = request.POST.get("next", "") or request.GET.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


def confirm_page(request, *, title, items, ids, action, label, back):
    return render(
        request,
        "dcportal/bulk_confirm.html",
        {
            "title": title,
            "items": items,
            "ids": ids,
            "action": action,
            "action_label": label,
            "action_url": request.path,
            "back": back,
        },
    )

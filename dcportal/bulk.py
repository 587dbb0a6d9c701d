"""What every bulk action of the list pages shares: the selected ids, the safe way back to the
list, and the confirmation page that repeats the selection before anything changes."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme

from dcportal import services


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


def apply_all(request, items, apply, *, done, name=str):
    """apply(item) for every item or for none (services.each_or_none), then a flash message:
    `done`, or every refusal. Returns whether it was done."""
    try:
        services.each_or_none(items, apply, name=name)
    except ValidationError as exc:
        messages.error(request, "Nothing was changed: " + " ".join(exc.messages))
        return False
    messages.success(request, done)
    return True

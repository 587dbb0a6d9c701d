"""Forms that work in the portal's dialog as well as on their own page.

A form page's <form data-dialog-form> posts with htmx: field errors come back in place (the
same page, the form re-rendered), and a saved form answers 204 with the "dcportal:saved" event,
on which the dialog closes and the list behind it reloads. Without htmx the same view
redirects as it always did.
"""

import json

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect


def is_htmx(request):
    return request.headers.get("HX-Request") == "true"


def saved(request, *, location, message):
    if is_htmx(request):
        response = HttpResponse(status=204)
        response["HX-Trigger"] = json.dumps(
            {"dcportal:saved": {"location": str(location), "message": message}}
        )
        return response
    messages.success(request, message)
    return redirect(location)

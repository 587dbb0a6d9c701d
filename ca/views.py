"""Portal pages of the CA: authorities (create and edit in the dialog, import, publish a CRL,
export the key), certificates (the list with filters and bulk revoke, revoke, renew, export a
portal-made key), certificate requests (submit or generate, the list, sign, reject) and the
expiry report.

Thin: every page scopes through ca.selectors, every write calls ca.services, and a service's
ValidationError comes back on the form field it concerns. Actions are shown only to those who
may use them; the services check again regardless.
"""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from ca import forms, selectors, services
from ca.models import Certificate, CertificateRequest, RevocationReason
from ca.tables import AuthorityTable, CertificateTable, ExpiringCertificateTable, RequestTable
from dcportal import bulk, dialogs, rbac

EXPIRY_DAYS = 30


def _list_page(request, table, template, context):
    if table.export and not table.errors:
        return table.export_response()
    return render(request, template, {"table": table, **context})


def _with_default(request, name, value):
    """A list page without `name` in its query gets it: the default becomes a visible,
    changeable filter instead of a hidden one."""
    query = request.GET.copy()
    query[name] = value
    return redirect(f"{request.path}?{query.urlencode()}")


def _form_page(request, form, *, title, submit, cancel_url, multipart=False):
    return render(
        request,
        "ca/form.html",
        {
            "form": form,
            "title": title,
            "submit": submit,
            "cancel_url": cancel_url,
            "multipart": multipart,
        },
    )


def _flash_errors(request, exc):
    messages.error(request, " ".join(exc.messages))


# Authorities ------------------------------------------------------------------------------------


def authority_list(request):
    user = request.user
    # A shared authority signs for every tenant: count only the certificates the user sees.
    visible = (
        rbac.restrict(Certificate.objects.all(), user)
        .filter(authority=OuterRef("pk"))
        .order_by()
        .values("authority")
        .annotate(count=Count("pk"))
        .values("count")
    )
    authorities = selectors.authorities_for(user).annotate(  # empty without ca.view_authority
        visible_certificates=Coalesce(Subquery(visible, output_field=IntegerField()), Value(0))
    )
    table = AuthorityTable(
        request, authorities, filter_form=forms.AuthorityFilterForm(request.GET, user=user)
    )
    return _list_page(
        request,
        table,
        "ca/authority_list.html",
        {
            "can_add": user.has_perm("ca.add_authority"),
            "can_change_authorities": user.has_perm("ca.change_authority"),
            "is_global": rbac.is_global(user),
            "pending_count": selectors.pending_requests(user).count(),
            "host_authority": settings.CA_HOST_AUTHORITY,
        },
    )


def _authority(request, pk):
    return get_object_or_404(selectors.authorities_for(request.user), pk=pk)


def authority_detail(request, pk):
    authority = _authority(request, pk)
    user = request.user
    shared_ok = authority.tenant_id is not None or rbac.is_global(user)
    return render(
        request,
        "ca/authority_detail.html",
        {
            "authority": authority,
            "chain": services.chain_of(authority),
            "crl": getattr(authority, "crl", None),
            "urls": services.public_urls(authority.slug),
            "children": selectors.authorities_for(user).filter(parent=authority),
            "certificates": selectors.certificates_for(user).filter(authority=authority)[:20],
            "can_publish": user.has_perm("ca.publish_crl"),
            "can_change": user.has_perm("ca.change_authority") and shared_ok,
            "can_export": user.has_perm("ca.export_authority") and shared_ok,
            "can_add_child": user.has_perm("ca.add_authority") and shared_ok,
            "can_revoke": user.has_perm("ca.change_authority")
            and shared_ok
            and authority.parent_id is not None
            and authority.revoked_at is None,
            "revoke_form": forms.RevokeForm(initial={"reason": "ca_compromise"}),
        },
    )


def authority_create(request):
    rbac.require(request.user, "ca.add_authority")
    initial = {"parent": request.GET.get("parent")} if request.GET.get("parent") else None
    form = forms.AuthorityForm(request.POST or None, user=request.user, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            authority = services.create_authority(user=request.user, **form.cleaned_data)
        except ValidationError as exc:
            forms.add_service_errors(form, exc)
        else:
            return dialogs.saved(
                request,
                location=reverse("ca:authority", args=[authority.pk]),
                message=f"Authority {authority} created.",
            )
    return _form_page(
        request,
        form,
        title="New authority",
        submit="Create authority",
        cancel_url=reverse("ca:index"),
    )


def authority_import(request):
    rbac.require(request.user, "ca.add_authority")
    form = forms.AuthorityImportForm(request.POST or None, request.FILES or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        data.pop("certificate_file", None)
        data.pop("private_key_file", None)
        data["password"] = data.get("password") or None
        try:
            authority = services.import_authority(user=request.user, **data)
        except ValidationError as exc:
            forms.add_service_errors(form, exc)
        else:
            messages.success(request, f"Authority {authority} imported.")
            return redirect("ca:authority", pk=authority.pk)
    return _form_page(
        request,
        form,
        title="Import an authority",
        submit="Import",
        cancel_url=reverse("ca:index"),
        multipart=True,
    )


def authority_edit(request, pk):
    authority = _authority(request, pk)
    rbac.require(request.user, "ca.change_authority")
    initial = {name: getattr(authority, name) for name in services.EDITABLE_AUTHORITY_FIELDS}
    form = forms.AuthorityEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        changed = {name: form.cleaned_data[name] for name in form.changed_data}
        try:
            services.update_authority(authority, user=request.user, **changed)
        except ValidationError as exc:
            forms.add_service_errors(form, exc)
        else:
            return dialogs.saved(
                request,
                location=reverse("ca:authority", args=[authority.pk]),
                message=f"Authority {authority} saved.",
            )
    return _form_page(
        request,
        form,
        title=f"Edit {authority}",
        submit="Save",
        cancel_url=reverse("ca:authority", args=[authority.pk]),
    )


@require_POST
def authority_crl(request, pk):
    authority = _authority(request, pk)
    try:
        crl = services.publish_crl(authority, user=request.user)
    except ValidationError as exc:
        _flash_errors(request, exc)
    else:
        messages.success(request, f"CRL #{crl.number} of {authority} published.")
    return redirect("ca:authority", pk=authority.pk)


@require_POST
def authority_revoke(request, pk):
    """Revoke an intermediate: its parent's CRL lists it from now on."""
    authority = _authority(request, pk)
    form = forms.RevokeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a revocation reason.")
        return redirect("ca:authority", pk=authority.pk)
    try:
        services.revoke_authority(authority, user=request.user, **form.cleaned_data)
    except ValidationError as exc:
        _flash_errors(request, exc)
    else:
        messages.success(request, f"{authority} revoked; {authority.parent}'s CRL is published.")
    return redirect("ca:authority", pk=authority.pk)


def _download(text, filename):
    response = HttpResponse(text, content_type="application/x-pem-file")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


@require_POST
def authority_export(request, pk):
    """The private key as a download: admins only, audited by the service."""
    authority = _authority(request, pk)
    key = services.export_authority_key(authority, user=request.user)
    return _download(key, f"{authority.slug}.key")


# Certificates -----------------------------------------------------------------------------------


@require_http_methods(["GET", "HEAD", "POST"])
def certificate_list(request):
    """The certificates the user sees."""
    user = request.user
    rbac.require(user, "ca.view_certificate")
    table = CertificateTable(
        request,
        selectors.certificates_for(user),
        filter_form=forms.CertificateFilterForm(request.GET, user=user),
    )
    return _list_page(
        request,
        table,
        "ca/certificate_list.html",
        {"can_request": user.has_perm("ca.add_certificaterequest")},
    )


@require_POST
def certificate_bulk(request):
    """Revoke the certificates selected in the list: a confirmation page, then (confirm=1)
    all of them in one transaction, or none."""
    user = request.user
    back = bulk.back_url(request, reverse("ca:certificates"))
    rbac.require(user, "ca.revoke_certificate")
    form = forms.CertificateBulkForm(request.POST)
    if not form.is_valid():
        messages.error(
            request,
            "Select at least one certificate."
            if "ids" in form.errors
            else "Choose a revocation reason.",
        )
        return redirect(back)
    data = form.cleaned_data
    # Another tenant's or already revoked certificates drop out of the selection; the
    # confirmation page lists exactly those that get revoked.
    selected = selectors.certificates_for(user, "ca.revoke_certificate").filter(pk__in=data["ids"])
    certificates = list(selected.filter(revoked_at__isnull=True).order_by("common_name", "pk"))
    if not certificates:
        messages.error(request, "None of the selected certificates can be revoked by you.")
        return redirect(back)
    skipped = len(set(data["ids"])) - len(certificates)
    count = f"{len(certificates)} certificate{'s' if len(certificates) != 1 else ''}"
    problems = []
    if data["confirm"]:
        try:
            services.revoke_certificates(
                user=user, certificates=certificates, reason=data["reason"]
            )
        except ValidationError as exc:
            problems = exc.messages
        else:
            messages.success(request, f"Revoked {count}; the CRLs are published.")
            return redirect(back)
    return render(
        request,
        "ca/certificate_bulk_confirm.html",
        {
            "title": f"Revoke {count}?",
            "certificates": certificates,
            "skipped": skipped,
            "problems": problems,
            "reason": data["reason"],
            "reason_label": RevocationReason(data["reason"]).label,
            "back": back,
            "subnav": "certificates",
        },
    )


def _certificate(request, pk):
    return get_object_or_404(selectors.certificates_for(request.user), pk=pk)


def certificate_detail(request, pk):
    certificate = _certificate(request, pk)
    user = request.user
    request_obj = certificate.request
    return render(
        request,
        "ca/certificate_detail.html",
        {
            "certificate": certificate,
            "chain_url": services.public_urls(certificate.authority.slug)["pem"],
            "renewals": selectors.certificates_for(user).filter(renewal_of=certificate),
            "revoke_form": forms.RevokeForm(),
            "renew_form": forms.RenewForm(),
            "can_revoke": user.has_perm("ca.revoke_certificate") and certificate.revoked_at is None,
            "can_renew": user.has_perm("ca.sign_certificaterequest") and request_obj is not None,
            "can_export_key": user.has_perm("ca.export_key")
            and request_obj is not None
            and bool(request_obj.private_key),
        },
    )


def certificate_pem(request, pk):
    """The certificate followed by its authority's chain, as a download."""
    certificate = _certificate(request, pk)
    chain = certificate.certificate + services.chain_pem(certificate.authority)
    return _download(chain, f"{certificate.common_name}.pem")


@require_POST
def certificate_revoke(request, pk):
    certificate = _certificate(request, pk)
    form = forms.RevokeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a revocation reason.")
        return redirect("ca:certificate", pk=certificate.pk)
    try:
        services.revoke_certificate(certificate, user=request.user, **form.cleaned_data)
    except ValidationError as exc:
        _flash_errors(request, exc)
    else:
        messages.success(request, f"{certificate} revoked; the CRL is published.")
    return redirect("ca:certificate", pk=certificate.pk)


@require_POST
def certificate_renew(request, pk):
    certificate = _certificate(request, pk)
    form = forms.RenewForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Check the renewal options.")
        return redirect("ca:certificate", pk=certificate.pk)
    try:
        renewed = services.renew_certificate(certificate, user=request.user, **form.cleaned_data)
    except ValidationError as exc:
        _flash_errors(request, exc)
        return redirect("ca:certificate", pk=certificate.pk)
    messages.success(request, f"Renewed as {renewed.serial}.")
    return redirect("ca:certificate", pk=renewed.pk)


@require_POST
def certificate_key(request, pk):
    """The private key the portal generated: admins only, audited by the service."""
    certificate = _certificate(request, pk)
    key = services.export_certificate_key(certificate, user=request.user)
    return _download(key, f"{certificate.common_name}.key")


def expiring(request):
    """The expiry report: the certificate list filtered by `expiring_within`, soonest first."""
    user = request.user
    rbac.require(user, "ca.view_certificate")
    if "expiring_within" not in request.GET:
        return _with_default(request, "expiring_within", str(EXPIRY_DAYS))
    table = ExpiringCertificateTable(
        request,
        selectors.certificates_for(user),
        filter_form=forms.CertificateFilterForm(request.GET, user=user),
    )
    return _list_page(
        request,
        table,
        "ca/expiring.html",
        {"days": request.GET.get("expiring_within", ""), "subnav": "expiring"},
    )


# Requests ---------------------------------------------------------------------------------------


def request_list(request):
    """The pending CSRs by default; the status filter shows the others."""
    user = request.user
    rbac.require(user, "ca.view_certificaterequest")
    if "status" not in request.GET:
        return _with_default(request, "status", CertificateRequest.Status.PENDING)
    table = RequestTable(
        request,
        selectors.requests_for(user),
        filter_form=forms.RequestFilterForm(request.GET, user=user),
    )
    return _list_page(
        request,
        table,
        "ca/request_list.html",
        {
            "can_add": user.has_perm("ca.add_certificaterequest"),
            "can_sign": user.has_perm("ca.sign_certificaterequest"),
        },
    )


def _server_named(user, hostname, form):
    if not hostname:
        return None
    model = CertificateRequest._meta.get_field("server").related_model
    server = rbac.restrict(model.objects.all(), user).filter(hostname=hostname.lower()).first()
    if server is None:
        form.add_error("server", f"No server {hostname!r}.")
    return server


def request_create(request):
    user = request.user
    rbac.require(user, "ca.add_certificaterequest")
    can_sign = user.has_perm("ca.sign_certificaterequest")
    form = forms.RequestForm(
        request.POST or None, request.FILES or None, user=user, can_sign=can_sign
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        server = _server_named(user, data["server"], form)
        if not form.errors:
            common = {
                "user": user,
                "authority": data["authority"],
                "tenant": data["tenant"],
                "server": server,
                "subject": data["subject"],
                "profile": data["profile"],
                "validity_days": data["validity_days"],
                "sign": data.get("sign", False),
                "approve_names": data.get("approve_names", False),
            }
            try:
                if data["generate_key"]:
                    created = services.generate_request(
                        names=data["names"], key_type=data["key_type"], **common
                    )
                else:
                    created = services.submit_request(
                        csr=data["csr"], source=CertificateRequest.Source.UPLOAD, **common
                    )
            except ValidationError as exc:
                forms.add_service_errors(form, exc)
            else:
                signed = created.status == CertificateRequest.Status.SIGNED
                messages.success(request, f"{created} {'signed' if signed else 'is pending'}.")
                return redirect("ca:request", pk=created.pk)
    return _form_page(
        request,
        form,
        title="New certificate request",
        submit="Submit",
        cancel_url=reverse("ca:requests"),
        multipart=True,
    )


def _request(request, pk):
    return get_object_or_404(selectors.requests_for(request.user), pk=pk)


def request_detail(request, pk):
    request_obj = _request(request, pk)
    user = request.user
    pending = request_obj.status == CertificateRequest.Status.PENDING
    return render(
        request,
        "ca/request_detail.html",
        {
            "req": request_obj,
            "certificates": request_obj.certificates.all(),
            "can_sign": pending and user.has_perm("ca.sign_certificaterequest"),
            "sign_form": forms.SignForm(),
            "reject_form": forms.RejectForm(),
        },
    )


@require_POST
def request_sign(request, pk):
    request_obj = _request(request, pk)
    form = forms.SignForm(request.POST)
    form.is_valid()
    try:
        certificate = services.sign_request(
            request_obj, user=request.user, approve_names=form.cleaned_data["approve_names"]
        )
    except ValidationError as exc:
        _flash_errors(request, exc)
        return redirect("ca:request", pk=request_obj.pk)
    messages.success(request, f"Signed: serial {certificate.serial}.")
    return redirect("ca:certificate", pk=certificate.pk)


@require_POST
def request_reject(request, pk):
    request_obj = _request(request, pk)
    form = forms.RejectForm(request.POST)
    form.is_valid()
    try:
        services.reject_request(request_obj, user=request.user, reason=form.cleaned_data["reason"])
    except ValidationError as exc:
        _flash_errors(request, exc)
    else:
        messages.info(request, f"{request_obj} rejected.")
    return redirect("ca:request", pk=request_obj.pk)

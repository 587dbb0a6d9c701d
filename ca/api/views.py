"""The CA API (mounted at /api/ca/):

    authorities/                 list, create (root, or intermediate with `parent`)
    authorities/import/          POST an existing CA: certificate (chain) + private key
    authorities/{id}/            detail (certificate PEM, CRL state, public URLs), change, delete
    authorities/{id}/crl/        POST: publish a new CRL now
    authorities/{id}/revoke/     POST {"reason"}: revoke an intermediate (its parent's CRL)
    authorities/refresh-crls/    POST: queue the `ca.refresh_crls` job
    requests/                    list (?status=pending: waiting for approval), submit a CSR or
                                 generate key + CSR (optionally signing at once)
    requests/{id}/sign/          POST {"approve_names"}   requests/{id}/reject/  POST {"reason"}
    certificates/                list (?status, ?expiring_within=DAYS, ?serial, ...), detail
    certificates/{id}/revoke/    POST {"reason"}   certificates/{id}/renew/  POST

Thin: serializers parse, ca.services checks permission and tenant, writes and audits.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from ca import selectors, services
from ca.api import serializers as s
from ca.filtersets import AuthorityFilterSet, CertificateFilterSet, CertificateRequestFilterSet
from ca.models import CertificateRequest
from dcportal import jobs
from dcportal.api.serializers import JobSerializer
from dcportal.api.views import ScopedViewSet


class AuthorityViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    ScopedViewSet,
):
    serializer_class = s.AuthoritySerializer
    filterset_class = AuthorityFilterSet
    ordering_fields = ["name", "not_after", "id"]
    action_permissions = {
        "import_authority": "add",
        "crl": "publish_crl",
        "revoke": "change",
        "refresh_crls": "publish_crl",
    }

    def get_queryset(self):
        return selectors.authorities_for(self.request.user)

    def get_serializer_class(self):
        if self.action in ("update", "partial_update"):
            return s.AuthorityUpdateSerializer
        return s.AuthoritySerializer

    def _detail(self, authority, code=status.HTTP_200_OK):
        authority = self.get_queryset().get(pk=authority.pk)
        data = s.AuthoritySerializer(authority, context=self.get_serializer_context()).data
        return Response(data, status=code)

    @extend_schema(request=s.AuthorityCreateSerializer, responses={201: s.AuthoritySerializer})
    def create(self, request):
        body = s.AuthorityCreateSerializer(data=request.data, context={"request": request})
        body.is_valid(raise_exception=True)
        authority = services.create_authority(user=request.user, **body.validated_data)
        return self._detail(authority, status.HTTP_201_CREATED)

    @extend_schema(request=s.AuthorityUpdateSerializer, responses=s.AuthoritySerializer)
    def update(self, request, *args, partial=False, **kwargs):
        authority = self.get_object()
        body = s.AuthorityUpdateSerializer(authority, data=request.data, partial=partial)
        body.is_valid(raise_exception=True)
        services.update_authority(authority, user=request.user, **body.validated_data)
        return self._detail(authority)

    def perform_destroy(self, instance):
        services.delete_authority(instance, user=self.request.user)

    @extend_schema(request=s.AuthorityImportSerializer, responses={201: s.AuthoritySerializer})
    @action(detail=False, methods=["post"], url_path="import")
    def import_authority(self, request):
        body = s.AuthorityImportSerializer(data=request.data, context={"request": request})
        body.is_valid(raise_exception=True)
        authority = services.import_authority(user=request.user, **body.validated_data)
        return self._detail(authority, status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=s.AuthoritySerializer)
    @action(detail=True, methods=["post"])
    def crl(self, request, pk=None):
        authority = self.get_object()
        services.publish_crl(authority, user=request.user)
        return self._detail(authority)

    @extend_schema(request=s.RevokeSerializer, responses=s.AuthoritySerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        authority = self.get_object()
        body = s.RevokeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.revoke_authority(authority, user=request.user, **body.validated_data)
        return self._detail(authority)

    @extend_schema(request=None, responses={202: JobSerializer})
    @action(detail=False, methods=["post"], url_path="refresh-crls")
    def refresh_crls(self, request):
        job = jobs.enqueue(services.REFRESH_JOB, user=request.user, params={"force": True})
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class CertificateRequestViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    serializer_class = s.CertificateRequestSerializer
    filterset_class = CertificateRequestFilterSet
    ordering_fields = ["created", "id"]
    action_permissions = {"sign": "sign_certificaterequest", "reject": "sign_certificaterequest"}

    def get_queryset(self):
        return selectors.requests_for(self.request.user).prefetch_related("certificates")

    def _detail(self, request_obj, code=status.HTTP_200_OK):
        request_obj = self.get_queryset().get(pk=request_obj.pk)
        data = s.CertificateRequestSerializer(request_obj, context=self.get_serializer_context())
        return Response(data.data, status=code)

    @extend_schema(
        request=s.CertificateRequestCreateSerializer,
        responses={201: s.CertificateRequestSerializer},
        description="Submit a CSR (PEM) or have the portal generate key and CSR. A malformed "
        "CSR, a bad signature, a weak key, or (with sign) a name the server does not own "
        "without approve_names: 400 and nothing stored.",
    )
    def create(self, request):
        body = s.CertificateRequestCreateSerializer(data=request.data, context={"request": request})
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        common = {
            "user": request.user,
            "authority": data["authority"],
            "tenant": data["tenant"],
            "server": data["server"],
            "subject": data["subject"],
            "profile": data["profile"],
            "validity_days": data["validity_days"],
            "sign": data["sign"],
            "approve_names": data["approve_names"],
        }
        if data["generate_key"]:
            created = services.generate_request(
                names=data["names"], key_type=data["key_type"], **common
            )
        else:
            created = services.submit_request(
                csr=data["csr"], source=CertificateRequest.Source.API, **common
            )
        return self._detail(created, status.HTTP_201_CREATED)

    @extend_schema(request=s.SignSerializer, responses=s.CertificateRequestSerializer)
    @action(detail=True, methods=["post"])
    def sign(self, request, pk=None):
        pending = self.get_object()
        body = s.SignSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.sign_request(pending, user=request.user, **body.validated_data)
        return self._detail(pending)

    @extend_schema(request=s.RejectSerializer, responses=s.CertificateRequestSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        pending = self.get_object()
        body = s.RejectSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.reject_request(pending, user=request.user, **body.validated_data)
        return self._detail(pending)


class CertificateViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Issued certificates. `expiring_within=N` is the expiry report: not revoked, expiring
    within N days (or expired) and not renewed yet."""

    serializer_class = s.CertificateSerializer
    filterset_class = CertificateFilterSet
    ordering_fields = ["not_after", "created", "common_name", "id"]
    action_permissions = {"revoke": "revoke_certificate", "renew": "sign_certificaterequest"}

    def get_queryset(self):
        return selectors.certificates_for(self.request.user).select_related("issued_by")

    def _detail(self, certificate, code=status.HTTP_200_OK):
        certificate = self.get_queryset().get(pk=certificate.pk)
        data = s.CertificateSerializer(certificate, context=self.get_serializer_context())
        return Response(data.data, status=code)

    @extend_schema(request=s.RevokeSerializer, responses=s.CertificateSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        certificate = self.get_object()
        body = s.RevokeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.revoke_certificate(certificate, user=request.user, **body.validated_data)
        return self._detail(certificate)

    @extend_schema(request=s.RenewSerializer, responses={201: s.CertificateSerializer})
    @action(detail=True, methods=["post"])
    def renew(self, request, pk=None):
        certificate = self.get_object()
        body = s.RenewSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        renewed = services.renew_certificate(certificate, user=request.user, **body.validated_data)
        return self._detail(renewed, status.HTTP_201_CREATED)


def register(router):
    router.register("authorities", AuthorityViewSet, basename="authority")
    router.register("requests", CertificateRequestViewSet, basename="certificaterequest")
    router.register("certificates", CertificateViewSet, basename="certificate")

from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response
from rest_framework.views import APIView

from dcportal import jobs, rbac, selectors, services
from dcportal.api import serializers as s
from dcportal.api.permissions import Authenticated
from dcportal.filtersets import (
    ApiTokenFilterSet,
    AuditEventFilterSet,
    CredentialFilterSet,
    JobFilterSet,
    TenantFilterSet,
)
from dcportal.models import ApiToken, Credential, Role, Tenant


class ScopedViewSet(viewsets.GenericViewSet):
    """Every queryset goes through restrict(): no permission, no rows; other tenants, 404."""

    base_queryset = None

    def get_queryset(self):
        return rbac.restrict(self.base_queryset.all(), self.request.user, "view")


class ServiceWriteMixin:
    """create/update/destroy through the audited generic services."""

    def perform_create(self, serializer):
        m2m, fields = self._split(serializer.validated_data)
        serializer.instance = services.create_object(
            serializer.Meta.model, user=self.request.user, m2m=m2m, **fields
        )

    def perform_update(self, serializer):
        m2m, fields = self._split(serializer.validated_data)
        serializer.instance = services.update_object(
            serializer.instance, user=self.request.user, m2m=m2m, **fields
        )

    def perform_destroy(self, instance):
        services.delete_object(instance, user=self.request.user)

    def _split(self, data):
        model = self.get_queryset().model
        names = {f.name for f in model._meta.many_to_many}
        return (
            {k: v for k, v in data.items() if k in names},
            {k: v for k, v in data.items() if k not in names},
        )


class TenantViewSet(ServiceWriteMixin, viewsets.ModelViewSet, ScopedViewSet):
    base_queryset = Tenant.objects.prefetch_related("members", "groups")
    serializer_class = s.TenantSerializer
    filterset_class = TenantFilterSet
    ordering_fields = ["name", "id"]


class CredentialViewSet(ServiceWriteMixin, viewsets.ModelViewSet, ScopedViewSet):
    base_queryset = Credential.objects.select_related("tenant")
    serializer_class = s.CredentialSerializer
    filterset_class = CredentialFilterSet

    def perform_update(self, serializer):
        serializer.instance = services.update_credential(
            serializer.instance, user=self.request.user, **serializer.validated_data
        )


class RoleViewSet(viewsets.ReadOnlyModelViewSet, ScopedViewSet):
    base_queryset = Role.objects.prefetch_related(
        Prefetch("permissions", queryset=rbac.Permission.objects.select_related("content_type")),
        "users",
        "groups",
    )
    serializer_class = s.RoleSerializer
    filterset_fields = ["name", "builtin"]
    action_permissions = {"assign": "change", "unassign": "change"}

    @extend_schema(request=s.RoleSubjectSerializer, responses=s.RoleSerializer)
    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None):
        return self._change(request, services.assign_role)

    @extend_schema(request=s.RoleSubjectSerializer, responses=s.RoleSerializer)
    @action(detail=True, methods=["post"])
    def unassign(self, request, pk=None):
        return self._change(request, services.unassign_role)

    def _change(self, request, service):
        role = self.get_object()
        subject = s.RoleSubjectSerializer(data=request.data)
        subject.is_valid(raise_exception=True)
        service(
            user=request.user,
            role=role,
            subject=subject.validated_data.get("user") or subject.validated_data.get("group"),
        )
        role = self.get_queryset().get(pk=role.pk)
        return Response(s.RoleSerializer(role, context=self.get_serializer_context()).data)


class ApiTokenViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Your API tokens (all tokens for an admin). DELETE revokes; the row stays for the audit."""

    serializer_class = s.ApiTokenSerializer
    filterset_class = ApiTokenFilterSet
    permission_classes = [Authenticated]

    queryset = ApiToken.objects.none()  # for the schema generator; requests use get_queryset

    def get_queryset(self):
        tokens = ApiToken.objects.select_related("user")
        user = self.request.user
        if not user.is_authenticated:
            return tokens.none()
        return tokens if rbac.is_global(user) else tokens.filter(user=user)

    @extend_schema(responses={201: s.ApiTokenCreatedSerializer})
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        token, key = services.create_token(
            user=request.user,
            owner=data.get("user"),
            name=data["name"],
            expires=data.get("expires"),
            write=data.get("write", True),
        )
        token.key = key
        body = s.ApiTokenCreatedSerializer(token, context=self.get_serializer_context()).data
        return Response(body, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        services.revoke_token(user=self.request.user, token=instance)


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = s.AuditEventSerializer
    filterset_class = AuditEventFilterSet

    def get_queryset(self):
        return selectors.audit_events_for(self.request.user)


class JobViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = s.JobSerializer
    filterset_class = JobFilterSet
    permission_classes = [Authenticated]

    def get_queryset(self):
        return selectors.jobs_for(self.request.user)

    @extend_schema(request=None, responses=s.JobSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = get_object_or_404(self.get_queryset(), pk=pk)
        job = jobs.cancel(job, user=request.user)
        return Response(s.JobSerializer(job, context=self.get_serializer_context()).data)

    @extend_schema(
        parameters=[OpenApiParameter("after", int, description="Only lines with a larger id")],
        responses=s.JobLogSerializer(many=True),
    )
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def log(self, request, pk=None):
        job = get_object_or_404(self.get_queryset(), pk=pk)
        try:
            after = int(request.query_params.get("after", 0))
        except ValueError:
            from rest_framework.exceptions import ValidationError

            raise ValidationError({"after": ["A whole number is required."]}) from None
        lines = job.log.filter(id__gt=after)[:1000]
        return Response(s.JobLogSerializer(lines, many=True).data)


class MeView(APIView):
    """Who you are: roles, tenants and the actions you hold."""

    permission_classes = [Authenticated]

    @extend_schema(responses=s.MeSerializer)
    def get(self, request):
        user = request.user
        body = {
            "username": user.get_username(),
            "roles": rbac.user_roles(user),
            "tenants": sorted(
                Tenant.objects.filter(pk__in=rbac.tenant_ids(user)).values_list("slug", flat=True)
            ),
            "actions": sorted(user.get_all_permissions()),
            "all_tenants": rbac.is_global(user),
        }
        return Response(s.MeSerializer(body).data)

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import models
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from dcportal import rbac
from dcportal.models import ApiToken, AuditEvent, Credential, Job, JobLog, Role, Tenant
from dcportal.secrets import EncryptedTextField


class SecretField(serializers.CharField):
    """Write-only: a secret goes in, never comes out."""

    def __init__(self, **kwargs):
        kwargs["write_only"] = True
        # Blank means "keep the stored secret" on update; creation refuses it in validate().
        kwargs.setdefault("allow_blank", True)
        kwargs.setdefault("style", {"input_type": "password"})
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)


def has_nul(value):
    """Whether a NUL character is in any string (key or value) of a decoded JSON document."""
    pending = [value]
    while pending:  # no recursion: a document may be nested deeper than Python's stack
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


class JSONField(serializers.JSONField):
    """Any JSON, but PostgreSQL's jsonb refuses NUL in text (\\u0000): a field error, not a 500."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if has_nul(value):
            raise serializers.ValidationError("Null characters are not allowed.", code="null")
        return value


class PortalModelSerializer(serializers.ModelSerializer):
    """ModelSerializer whose encrypted fields are always write-only SecretFields and whose JSON
    fields refuse what PostgreSQL cannot store."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        EncryptedTextField: SecretField,
        models.JSONField: JSONField,
    }


class ScopedRelatedField(serializers.SlugRelatedField):
    """A related object chosen by slug/name among those the requesting user may see."""

    def get_queryset(self):
        request = self.context.get("request")
        queryset = super().get_queryset()
        return rbac.restrict(queryset, request.user, "view") if request else queryset.none()


class TenantSerializer(PortalModelSerializer):
    members = serializers.SlugRelatedField(
        many=True, slug_field="username", queryset=get_user_model().objects.all(), required=False
    )
    groups = serializers.SlugRelatedField(
        many=True, slug_field="name", queryset=Group.objects.all(), required=False
    )

    class Meta:
        model = Tenant
        fields = ["id", "name", "slug", "description", "members", "groups", "created"]


class RoleSerializer(PortalModelSerializer):
    actions = serializers.SerializerMethodField()
    users = serializers.SlugRelatedField(many=True, slug_field="username", read_only=True)
    groups = serializers.SlugRelatedField(many=True, slug_field="name", read_only=True)

    class Meta:
        model = Role
        fields = ["id", "name", "rank", "description", "builtin", "actions", "users", "groups"]

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_actions(self, role):
        return sorted(f"{p.content_type.app_label}.{p.codename}" for p in role.permissions.all())


class RoleSubjectSerializer(serializers.Serializer):
    user = serializers.SlugRelatedField(
        slug_field="username", queryset=get_user_model().objects.all(), required=False
    )
    group = serializers.SlugRelatedField(
        slug_field="name", queryset=Group.objects.all(), required=False
    )

    def validate(self, attrs):
        if bool(attrs.get("user")) == bool(attrs.get("group")):
            raise serializers.ValidationError("Give exactly one of user or group.")
        return attrs


class ApiTokenSerializer(PortalModelSerializer):
    user = serializers.SlugRelatedField(
        slug_field="username",
        queryset=get_user_model().objects.all(),
        required=False,
        help_text="Owner; only an admin may name someone else. Defaults to you.",
    )
    active = serializers.BooleanField(source="is_active", read_only=True)

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "user",
            "name",
            "prefix",
            "write",
            "created",
            "expires",
            "last_used",
            "revoked",
            "active",
        ]
        # The owner defaults to the requester, so a UniqueTogetherValidator on (user, name) would
        # wrongly demand `user`; services.create_token checks the name per owner instead.
        validators = []


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    key = serializers.CharField(read_only=True, help_text="Shown once; store it now.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "key"]


class CredentialSerializer(PortalModelSerializer):
    tenant = ScopedRelatedField(slug_field="slug", queryset=Tenant.objects.all())
    has_secret = serializers.SerializerMethodField()

    class Meta:
        model = Credential
        fields = [
            "id",
            "tenant",
            "name",
            "kind",
            "username",
            "secret",
            "has_secret",
            "description",
            "created",
            "updated",
        ]
        extra_kwargs = {"secret": {"required": False}}

    def get_has_secret(self, credential) -> bool:
        return bool(credential.secret)

    def validate(self, attrs):
        if self.instance is None and not attrs.get("secret"):
            raise serializers.ValidationError({"secret": ["This field is required."]})
        return attrs


class AuditEventSerializer(serializers.ModelSerializer):
    object_type = serializers.SerializerMethodField()

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "time",
            "actor_name",
            "actor",
            "token",
            "via",
            "action",
            "verb",
            "object_type",
            "object_id",
            "object_repr",
            "tenant",
            "changes",
            "request_id",
            "source",
        ]
        read_only_fields = fields

    def get_object_type(self, event) -> str:
        return f"{event.content_type.app_label}.{event.content_type.model}"


class JobSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    object_type = serializers.SerializerMethodField()
    duration = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "queue",
            "status",
            "progress",
            "message",
            "params",
            "result",
            "error",
            "traceback",
            "object_type",
            "object_id",
            "object_repr",
            "tenant",
            "user",
            "request_id",
            "cancel_requested",
            "attempts",
            "worker_name",
            "worker_host",
            "created",
            "started",
            "finished",
            "duration",
        ]
        read_only_fields = fields

    def get_object_type(self, job) -> str | None:
        if job.content_type_id is None:
            return None
        return f"{job.content_type.app_label}.{job.content_type.model}"

    def get_duration(self, job) -> float | None:
        duration = job.duration
        return None if duration is None else round(duration.total_seconds(), 3)


class JobLogSerializer(serializers.ModelSerializer):
    class Meta:
        model = JobLog
        fields = ["id", "time", "level", "message"]


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    roles = serializers.ListField(child=serializers.CharField())
    tenants = serializers.ListField(child=serializers.CharField())
    actions = serializers.ListField(child=serializers.CharField())
    all_tenants = serializers.BooleanField()

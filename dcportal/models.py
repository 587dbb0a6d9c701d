"""Platform data: tenants, users, roles, API tokens, credentials, the audit trail and jobs."""

from django.conf import settings
from django.contrib.auth.models import AbstractUser, Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from dcportal.secrets import EncryptedTextField

# Every model states how it is scoped to tenants (see dcportal.rbac.restrict):
# a lookup path to a Tenant, or GLOBAL for objects every tenant shares.
GLOBAL = None


class Tenant(models.Model):
    """An organisation or customer; owns servers, subnets, VMs, certificates..."""

    tenancy = "self"

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="tenants")
    groups = models.ManyToManyField(Group, blank=True, related_name="tenants")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class User(AbstractUser):
    """A portal user; roles and tenants come directly or through groups."""

    tenancy = GLOBAL

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"


class Role(models.Model):
    """A named set of actions. Built-in roles are kept in step with dcportal.rbac.ROLES."""

    tenancy = GLOBAL

    name = models.CharField(max_length=64, unique=True)
    rank = models.PositiveSmallIntegerField(
        unique=True, help_text="Position in the total order; higher holds more."
    )
    description = models.TextField(blank=True)
    builtin = models.BooleanField(default=False, editable=False)
    permissions = models.ManyToManyField(Permission, blank=True, related_name="roles")
    users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="roles")
    groups = models.ManyToManyField(Group, blank=True, related_name="roles")

    class Meta:
        ordering = ["-rank"]

    def __str__(self):
        return self.name


class ApiToken(models.Model):
    """A bearer token for the API. Only a hash is stored; the key is shown once at creation."""

    tenancy = GLOBAL
    audit_redact = frozenset({"key_hash"})

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    write = models.BooleanField(
        default=True, help_text="Without it the token may only read (GET, HEAD, OPTIONS)."
    )
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField(null=True, blank=True)
    last_used = models.DateTimeField(null=True, blank=True, editable=False)
    revoked = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], name="apitoken_unique_name_per_user")
        ]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self):
        now = timezone.now()
        return self.revoked is None and (self.expires is None or self.expires > now)


class Credential(models.Model):
    """A named login (user + secret) that BMCs, hypervisor pools and others can refer to."""

    tenancy = "tenant"

    class Kind(models.TextChoices):
        PASSWORD = "password", "Username and password"
        SSH_KEY = "ssh-key", "SSH private key"
        TOKEN = "token", "API token"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="credentials")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PASSWORD)
    username = models.CharField(max_length=150, blank=True)
    secret = EncryptedTextField()
    description = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="credential_unique_name")
        ]

    def __str__(self):
        return self.name


class AuditEvent(models.Model):
    """One change to one object. Rows are immutable: a database trigger refuses UPDATE and DELETE.

    References are kept without foreign-key constraints so the trail outlives what it describes.
    """

    tenancy = "tenant"

    class Action(models.TextChoices):
        CREATE = "create"
        UPDATE = "update"
        DELETE = "delete"
        ACTION = "action"  # anything else: power on, revoke, login...

    time = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_name = models.CharField(max_length=150, blank=True)
    token = models.ForeignKey(
        ApiToken, null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    via = models.CharField(max_length=16, blank=True)
    action = models.CharField(max_length=16, choices=Action.choices)
    verb = models.CharField(max_length=64, blank=True, help_text="Name of a custom action.")
    content_type = models.ForeignKey(
        ContentType, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200)
    tenant = models.ForeignKey(
        Tenant, null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    changes = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=64, blank=True, db_index=True)
    source = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-time", "-id"]
        indexes = [
            models.Index(fields=["content_type", "object_id"], name="audit_object"),
            models.Index(fields=["actor", "-time"], name="audit_actor"),
        ]

    def __str__(self):
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.object_repr}"


class Job(models.Model):
    """A background task run by an RQ worker, with progress, log and result."""

    tenancy = "tenant"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    kind = models.CharField(max_length=100, db_index=True)
    queue = models.CharField(max_length=32)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    progress = models.PositiveSmallIntegerField(
        default=0, validators=[MinValueValidator(0), MaxValueValidator(100)]
    )
    message = models.CharField(max_length=300, blank=True, help_text="The current step.")
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    content_type = models.ForeignKey(
        ContentType, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
    )
    request_id = models.CharField(max_length=64, blank=True)
    cancel_requested = models.BooleanField(default=False)
    attempts = models.PositiveSmallIntegerField(default=0)
    worker_name = models.CharField(max_length=200, blank=True)
    worker_host = models.CharField(max_length=255, blank=True)
    worker_pid = models.PositiveIntegerField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        permissions = [("cancel_job", "Can cancel a job")]
        constraints = [
            models.CheckConstraint(condition=Q(progress__lte=100), name="job_progress_0_100"),
        ]
        indexes = [models.Index(fields=["content_type", "object_id"], name="job_object")]

    def __str__(self):
        return f"#{self.pk} {self.kind}"

    @property
    def rq_id(self):
        return f"dcportal-job-{self.pk}"

    @property
    def duration(self):
        if self.started is None:
            return None
        return (self.finished or timezone.now()) - self.started


class JobLog(models.Model):
    """One log line of a job."""

    tenancy = "job__tenant"

    class Level(models.TextChoices):
        DEBUG = "debug"
        INFO = "info"
        WARNING = "warning"
        ERROR = "error"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="log")
    time = models.DateTimeField(default=timezone.now)
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.INFO)
    message = models.TextField()

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return self.message[:80]


class UserPreference(models.Model):
    """A user's own settings of the portal (the columns of each table), as small JSON values."""

    tenancy = GLOBAL

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="preferences")
    key = models.CharField(max_length=100)
    value = models.JSONField(default=dict)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="userpreference_unique_key")
        ]

    def __str__(self):
        return f"{self.user}: {self.key}"

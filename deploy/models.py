"""Deployment: the catalogue (operating systems, templates, profiles, parameters) and the build
state of each server (next boot, one-time build token, progress of the install).

Catalogue objects are shared: with no tenant they serve every tenant and only an admin changes
them; with a tenant they belong to it (see dcportal.rbac.is_shared).
"""

import re

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from dcportal.models import Job, Tenant
from inventory.models import Server

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_PARAMETER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def validate_name(value):
    if not _NAME.match(value or ""):
        raise ValidationError(
            f"{value!r} is not a valid name (letters, digits, '.', '_' and '-', up to 100).",
            code="invalid",
        )


def validate_parameter_name(value):
    if not _PARAMETER.match(value or ""):
        raise ValidationError(
            f"{value!r} is not a parameter name (a letter or '_', then letters, digits, '_').",
            code="invalid",
        )


def validate_parameters(value):
    if not isinstance(value, dict):
        raise ValidationError("Parameters must be a JSON object.", code="invalid")
    for name in value:
        validate_parameter_name(name)


def validate_boot_path(value):
    """A kernel or initrd: an http(s) URL, or a path under the portal's boot files directory."""
    if not value or value.startswith(("http://", "https://")):
        return
    parts = value.split("/")
    if value.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ValidationError(
            f"{value!r} must be an http(s) URL or a relative path inside the boot files "
            "directory (no '..', no leading '/').",
            code="invalid",
        )


class SharedQuerySet(models.QuerySet):
    def usable_by_tenant(self, tenant_id):
        """What a server of this tenant may use: the tenant's own objects and the shared ones."""
        return self.filter(Q(tenant__isnull=True) | Q(tenant_id=tenant_id))


class OperatingSystem(models.Model):
    tenancy = "tenant"
    shared_tenancy = True

    class Family(models.TextChoices):
        REDHAT = "redhat", "Red Hat family (RHEL, Rocky, Alma, CentOS, Fedora)"
        DEBIAN = "debian", "Debian"
        UBUNTU = "ubuntu", "Ubuntu"
        SUSE = "suse", "SUSE"
        ESXI = "esxi", "VMware ESXi"
        WINDOWS = "windows", "Windows"

    class Architecture(models.TextChoices):
        X86_64 = "x86_64"
        AARCH64 = "aarch64"

    name = models.CharField(max_length=100, unique=True, validators=[validate_name])
    family = models.CharField(max_length=16, choices=Family.choices)
    version = models.CharField(max_length=32)
    architecture = models.CharField(
        max_length=16, choices=Architecture.choices, default=Architecture.X86_64
    )
    kernel = models.CharField(
        max_length=500,
        validators=[validate_boot_path],
        help_text=(
            "http(s) URL, or a path inside the boot files directory (served at /boot/files/)."
        ),
    )
    initrd = models.CharField(max_length=500, blank=True, validators=[validate_boot_path])
    install_url = models.URLField(
        max_length=500, blank=True, help_text="The install tree or mirror."
    )
    boot_args = models.CharField(max_length=1000, blank=True)
    description = models.TextField(blank=True)
    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    objects = SharedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = "operating system"

    def __str__(self):
        return self.name


class Template(models.Model):
    """A Jinja2 template rendered in dcportal.templating's sandbox."""

    tenancy = "tenant"
    shared_tenancy = True

    class Kind(models.TextChoices):
        KICKSTART = "kickstart", "Kickstart (Red Hat family)"
        PRESEED = "preseed", "Debian preseed"
        CLOUD_INIT = "cloud-init", "cloud-init user-data / Ubuntu autoinstall"
        ESXI = "esxi", "ESXi kickstart"
        FAI = "fai", "FAI classes"
        IPXE = "ipxe", "iPXE script"
        PXELINUX = "pxelinux", "PXELinux config"
        GRUB = "grub", "GRUB config"
        SNIPPET = "snippet", "Snippet (included by other templates)"

    INSTALL_KINDS = (Kind.KICKSTART, Kind.PRESEED, Kind.CLOUD_INIT, Kind.ESXI, Kind.FAI)
    BOOT_KINDS = (Kind.IPXE, Kind.PXELINUX, Kind.GRUB)

    name = models.CharField(max_length=100, unique=True, validators=[validate_name])
    kind = models.CharField(max_length=16, choices=Kind.choices)
    content = models.TextField()
    description = models.TextField(blank=True)
    builtin = models.BooleanField(
        default=False, editable=False, help_text="Shipped with dcportal (created on migrate)."
    )
    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    updated = models.DateTimeField(auto_now=True)

    objects = SharedQuerySet.as_manager()

    class Meta:
        ordering = ["kind", "name"]

    def __str__(self):
        return self.name


class Profile(models.Model):
    """What to install: an OS, its install template, boot templates, partitioning, parameters."""

    tenancy = "tenant"
    shared_tenancy = True

    name = models.CharField(max_length=100, unique=True, validators=[validate_name])
    os = models.ForeignKey(OperatingSystem, on_delete=models.PROTECT, related_name="profiles")
    install_template = models.ForeignKey(
        Template,
        on_delete=models.PROTECT,
        related_name="+",
        limit_choices_to={"kind__in": Template.INSTALL_KINDS},
    )
    ipxe_template = models.ForeignKey(
        Template,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        limit_choices_to={"kind": Template.Kind.IPXE},
        help_text="Empty: the shipped default.",
    )
    pxelinux_template = models.ForeignKey(
        Template,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        limit_choices_to={"kind": Template.Kind.PXELINUX},
        help_text="Empty: the shipped default.",
    )
    grub_template = models.ForeignKey(
        Template,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        limit_choices_to={"kind": Template.Kind.GRUB},
        help_text="Empty: the shipped default.",
    )
    partitioning = models.TextField(
        blank=True, help_text="Given to templates as profile.partitioning."
    )
    parameters = models.JSONField(default=dict, blank=True, validators=[validate_parameters])
    description = models.TextField(blank=True)
    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    objects = SharedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        slots = {
            "install_template": Template.INSTALL_KINDS,
            "ipxe_template": (Template.Kind.IPXE,),
            "pxelinux_template": (Template.Kind.PXELINUX,),
            "grub_template": (Template.Kind.GRUB,),
        }
        errors = {}
        for field, kinds in slots.items():
            template = getattr(self, field)
            if template is None:
                continue
            if template.kind not in kinds:
                errors[field] = f"{template} is a {template.get_kind_display()} template."
            elif template.tenant_id not in (None, self.tenant_id):
                errors[field] = f"{template} belongs to another tenant."
        if self.os_id and self.os.tenant_id not in (None, self.tenant_id):
            errors["os"] = f"{self.os} belongs to another tenant."
        if errors:
            raise ValidationError(errors)


class Parameter(models.Model):
    """A template parameter: with no tenant for every server, with a tenant for its servers.
    Profiles and servers override them (global -> tenant -> profile -> server)."""

    tenancy = "tenant"
    shared_tenancy = True

    name = models.CharField(max_length=64, validators=[validate_parameter_name])
    value = models.JSONField(blank=True, default=str)
    description = models.CharField(max_length=200, blank=True)
    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )

    objects = SharedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["name"], condition=Q(tenant__isnull=True), name="parameter_unique_global"
            ),
            models.UniqueConstraint(
                fields=["tenant", "name"],
                condition=Q(tenant__isnull=False),
                name="parameter_unique_per_tenant",
            ),
        ]

    def __str__(self):
        return self.name


class ServerDeploy(models.Model):
    """The deployment state of one server: what it boots next and how its build goes.

    A server without a row boots its local disk. The build token itself is never stored: the
    row keeps a random nonce and the SHA-256 of the token derived from it (deploy.tokens).
    """

    tenancy = "server__tenant"
    audit_redact = frozenset({"token_hash", "token_nonce"})

    class NextBoot(models.TextChoices):
        INSTALL = "install"
        LOCALBOOT = "localboot"
        RESCUE = "rescue"
        DISCOVERY = "discovery"

    class State(models.TextChoices):
        IDLE = "idle", "Idle"
        BUILDING = "building", "Building"
        DEPLOYED = "deployed", "Deployed"
        FAILED = "failed", "Failed"

    class Stage(models.TextChoices):
        NONE = "", "-"
        WAITING = "waiting", "Waiting for boot"
        BOOTED = "booted", "Boot script fetched"
        TEMPLATE = "template", "Template fetched"
        INSTALLING = "installing", "Installing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    server = models.OneToOneField(Server, on_delete=models.CASCADE, related_name="deploy")
    profile = models.ForeignKey(
        Profile, null=True, blank=True, on_delete=models.PROTECT, related_name="servers"
    )
    parameters = models.JSONField(default=dict, blank=True, validators=[validate_parameters])
    next_boot = models.CharField(
        max_length=16, choices=NextBoot.choices, default=NextBoot.LOCALBOOT, db_index=True
    )
    state = models.CharField(
        max_length=16, choices=State.choices, default=State.IDLE, db_index=True
    )
    stage = models.CharField(max_length=16, choices=Stage.choices, default="", blank=True)
    progress = models.PositiveSmallIntegerField(
        default=0, validators=[MinValueValidator(0), MaxValueValidator(100)]
    )
    message = models.CharField(max_length=300, blank=True)
    error = models.TextField(blank=True)
    token_nonce = models.CharField(max_length=64, blank=True, editable=False)
    token_hash = models.CharField(max_length=64, blank=True, editable=False, db_index=True)
    token_expires = models.DateTimeField(null=True, blank=True, editable=False)
    build_started = models.DateTimeField(null=True, blank=True)
    booted = models.DateTimeField(null=True, blank=True)
    template_fetched = models.DateTimeField(null=True, blank=True)
    last_report = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["server__hostname"]
        verbose_name = "server deployment"
        permissions = [
            ("nodeset_server", "Can set a server's next boot (install, localboot, rescue)"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(next_boot="install") | Q(profile__isnull=False),
                name="serverdeploy_install_needs_profile",
            ),
        ]

    def __str__(self):
        return f"{self.server}: {self.next_boot}"

    def clean(self):
        if self.next_boot == self.NextBoot.INSTALL and self.profile_id is None:
            raise ValidationError({"profile": "An install needs a profile."})
        if self.profile_id and self.profile.tenant_id not in (None, self.server.tenant_id):
            raise ValidationError({"profile": f"{self.profile} belongs to another tenant."})

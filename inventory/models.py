"""The inventory: servers and their facts, interfaces, sites and racks, and IP address management.

Invariants live here and in the database: MACs unique across the fleet, one boot interface per
server, subnets and ranges that never overlap (GiST exclusion constraints), addresses unique.
"""

import re
import uuid as uuidlib

from django.conf import settings
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Func, Q, Value
from django.db.models.functions import Lower
from django.utils import timezone

from dcportal.models import GLOBAL, Credential, Tenant
from dcportal.secrets import EncryptedTextField
from inventory.fields import CidrField, InetField, MacAddressField

# Firmware that does not fill in a UUID reports one of these; they identify nothing.
PLACEHOLDER_UUIDS = frozenset(
    {
        "00000000-0000-0000-0000-000000000000",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "03000200-0400-0500-0006-000700080009",  # AMI "To be filled by O.E.M." boards
        "00020003-0004-0005-0006-000700080009",
        "01234567-8901-2345-6789-012345678901",
        "12345678-1234-5678-90ab-cddeefaabbcc",
    }
)
PLACEHOLDER_SERIALS = frozenset(
    {
        "",
        "0",
        "0123456789",
        "1234567890",
        "default string",
        "not specified",
        "none",
        "n/a",
        "na",
        "o.e.m.",
        "oem",
        "system serial number",
        "to be filled by o.e.m.",
        "chassis serial number",
    }
)
_HOSTNAME_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalise_uuid(value):
    """Lowercase canonical form, or None for a placeholder. Raises ValidationError if invalid."""
    if value in (None, ""):
        return None
    try:
        text = str(uuidlib.UUID(str(value).strip()))
    except ValueError:
        raise ValidationError(f"{value!r} is not a UUID.", code="invalid") from None
    if text in PLACEHOLDER_UUIDS or len(set(text.replace("-", ""))) == 1:
        return None
    return text


def is_placeholder_serial(serial):
    return (serial or "").strip().lower() in PLACEHOLDER_SERIALS


def validate_hostname(value):
    if len(value) > 253 or not all(_HOSTNAME_LABEL.match(p) for p in value.split(".")):
        raise ValidationError(
            f"{value!r} is not a host name (letters, digits and hyphens, dot-separated labels).",
            code="invalid",
        )


class Site(models.Model):
    """A datacenter or a room; shared by all tenants."""

    tenancy = GLOBAL

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Rack(models.Model):
    tenancy = GLOBAL

    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="racks")
    name = models.CharField(max_length=100)
    units = models.PositiveSmallIntegerField(
        default=42, validators=[MinValueValidator(1), MaxValueValidator(100)]
    )

    class Meta:
        ordering = ["site__name", "name"]
        constraints = [models.UniqueConstraint(fields=["site", "name"], name="rack_unique_name")]

    def __str__(self):
        return f"{self.site}/{self.name}"


class Server(models.Model):
    """A physical or virtual machine, identified by SMBIOS UUID and serial number."""

    tenancy = "tenant"

    class Kind(models.TextChoices):
        PHYSICAL = "physical"
        VIRTUAL = "virtual"

    class Status(models.TextChoices):
        NEW = "new"
        READY = "ready"
        DEPLOYING = "deploying"
        DEPLOYED = "deployed"
        FAILED = "failed"
        RETIRED = "retired"

    hostname = models.CharField(max_length=253, unique=True, validators=[validate_hostname])
    uuid = models.UUIDField(
        null=True, blank=True, unique=True, help_text="SMBIOS system UUID; empty if unknown."
    )
    serial = models.CharField(max_length=100, blank=True, db_index=True)
    vendor = models.CharField(max_length=100, blank=True)
    model = models.CharField(max_length=100, blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PHYSICAL)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.NEW, db_index=True
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="servers")
    rack = models.ForeignKey(
        Rack, null=True, blank=True, on_delete=models.SET_NULL, related_name="servers"
    )
    position = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Lowest rack unit the server occupies."
    )
    tags = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    last_inventory = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["hostname"]
        permissions = [
            ("power_server", "Can switch a server on and off, cycle and reset it"),
            ("set_boot_device", "Can set a server's boot device (one-time PXE boot)"),
        ]
        indexes = [
            GinIndex(fields=["attributes"], name="server_attributes_gin"),
            GinIndex(fields=["tags"], name="server_tags_gin"),
            models.Index(Lower("vendor"), "serial", name="server_vendor_serial"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["rack", "position"],
                condition=Q(rack__isnull=False, position__isnull=False),
                name="server_unique_rack_position",
            ),
            models.CheckConstraint(
                condition=Q(hostname=Lower("hostname")), name="server_hostname_lowercase"
            ),
        ]

    def __str__(self):
        return self.hostname

    def clean(self):
        self.hostname = (self.hostname or "").strip().lower().rstrip(".")
        if self.uuid is not None:
            self.uuid = normalise_uuid(self.uuid)
        if self.position is not None and self.rack is None:
            raise ValidationError({"position": "A position needs a rack."})
        if self.position is not None and self.rack is not None and self.position > self.rack.units:
            raise ValidationError({"position": f"The rack has {self.rack.units} units."})
        if not isinstance(self.attributes, dict):
            raise ValidationError({"attributes": "Attributes must be a JSON object."})


class Bmc(models.Model):
    """A server's baseboard management controller: how the portal switches it on and off."""

    tenancy = "server__tenant"

    class Driver(models.TextChoices):
        IPMI = "ipmi", "IPMI (pyghmi)"
        REDFISH = "redfish", "Redfish (sushy)"
        MANUAL = "manual", "Manual (a person does it)"

    class PowerState(models.TextChoices):
        ON = "on"
        OFF = "off"
        UNKNOWN = "unknown"

    server = models.OneToOneField(Server, on_delete=models.CASCADE, related_name="bmc")
    driver = models.CharField(max_length=16, choices=Driver.choices, default=Driver.IPMI)
    address = models.CharField(max_length=255, blank=True, help_text="Host name or IP address.")
    port = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    username = models.CharField(max_length=150, blank=True)
    password = EncryptedTextField(blank=True)
    credential = models.ForeignKey(
        Credential,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Used when no username and password are set here.",
    )
    options = models.JSONField(
        default=dict,
        blank=True,
        help_text="Driver options, e.g. ipmi: cipher_suite; redfish: system_id, verify_tls "
        "(on by default), ca_bundle.",
    )
    power_state = models.CharField(
        max_length=8, choices=PowerState.choices, default=PowerState.UNKNOWN
    )
    power_state_checked = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "BMC"
        verbose_name_plural = "BMCs"

    def __str__(self):
        return f"{self.server} BMC"

    def clean(self):
        if self.driver != self.Driver.MANUAL and not self.address:
            raise ValidationError({"address": "An IPMI or Redfish BMC needs an address."})
        if not isinstance(self.options, dict):
            raise ValidationError({"options": "Options must be a JSON object."})
        if (
            self.credential_id
            and self.server_id
            and (self.credential.tenant_id != self.server.tenant_id)
        ):
            raise ValidationError({"credential": "The credential belongs to another tenant."})


class Interface(models.Model):
    """A network interface of a server; its MAC is unique across the fleet."""

    tenancy = "server__tenant"

    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="interfaces")
    name = models.CharField(max_length=64)
    mac = MacAddressField(unique=True)
    boot = models.BooleanField(default=False, help_text="The interface the server PXE-boots from.")
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["server__hostname", "name"]
        constraints = [
            models.UniqueConstraint(fields=["server", "name"], name="interface_unique_name"),
            models.UniqueConstraint(
                fields=["server"], condition=Q(boot=True), name="interface_one_boot_per_server"
            ),
        ]

    def __str__(self):
        return f"{self.server}:{self.name}"


class Subnet(models.Model):
    """An IPv4 or IPv6 network. No two subnets overlap (a GiST exclusion constraint)."""

    tenancy = "tenant"

    network = CidrField()
    name = models.CharField(max_length=100, blank=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="subnets")
    vlan = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(4094)]
    )
    gateway = InetField(null=True, blank=True)
    dns_servers = ArrayField(InetField(), default=list, blank=True)
    domain = models.CharField(max_length=253, blank=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["network"]
        # The exclusion constraint `subnet_no_overlap` (GiST, inet_ops, &&) is created by the
        # migration: Django cannot spell an operator class on a plain column in EXCLUDE.

    def __str__(self):
        return str(self.network)

    def clean(self):
        network = self.network
        if network is None:
            return
        if network.prefixlen == 0:
            raise ValidationError({"network": "A subnet cannot be the whole address space."})
        overlapping = Subnet.objects.filter(network__overlaps=network).exclude(pk=self.pk).first()
        if overlapping is not None:
            raise ValidationError(
                {"network": f"{network} overlaps the subnet {overlapping.network}."}
            )
        if self.gateway is not None and self.gateway not in network:
            raise ValidationError({"gateway": f"{self.gateway} is not in {network}."})
        if self.domain:
            validate_hostname(self.domain.lower().rstrip("."))


class IPRange(models.Model):
    """A span of addresses inside a subnet (a DHCP pool, a public range...). No overlaps."""

    tenancy = "subnet__tenant"

    class Kind(models.TextChoices):
        DHCP = "dhcp", "DHCP pool"
        STATIC = "static", "Static assignments"
        RESERVED = "reserved", "Reserved"
        PUBLIC = "public", "Public"

    subnet = models.ForeignKey(Subnet, on_delete=models.CASCADE, related_name="ranges")
    start = InetField()
    end = InetField()
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.STATIC)
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["start"]
        constraints = [
            models.CheckConstraint(condition=Q(start__lte=F("end")), name="iprange_start_le_end"),
            ExclusionConstraint(
                name="iprange_no_overlap",
                expressions=[(Func(F("start"), F("end"), Value("[]"), function="inetrange"), "&&")],
                index_type="gist",
                violation_error_message="The range overlaps an existing range.",
            ),
        ]

    def __str__(self):
        return f"{self.start}-{self.end}"

    def clean(self):
        if self.start is None or self.end is None or self.subnet_id is None:
            return
        network = self.subnet.network
        for name in ("start", "end"):
            if getattr(self, name) not in network:
                raise ValidationError({name: f"{getattr(self, name)} is not in {network}."})
        if self.start > self.end:
            raise ValidationError({"end": "The end comes before the start."})

    @property
    def size(self):
        return int(self.end) - int(self.start) + 1


class IPAddress(models.Model):
    """An address in a subnet, optionally on an interface. Each address exists once."""

    tenancy = "subnet__tenant"

    class Status(models.TextChoices):
        ACTIVE = "active"
        RESERVED = "reserved"
        DHCP = "dhcp"

    address = InetField(unique=True)
    subnet = models.ForeignKey(Subnet, on_delete=models.PROTECT, related_name="addresses")
    interface = models.ForeignKey(
        Interface, null=True, blank=True, on_delete=models.SET_NULL, related_name="addresses"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    dns_name = models.CharField(max_length=253, blank=True)
    description = models.CharField(max_length=200, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["address"]
        verbose_name = "IP address"
        verbose_name_plural = "IP addresses"

    def __str__(self):
        return str(self.address)

    def clean(self):
        if self.address is None or self.subnet_id is None:
            return
        network = self.subnet.network
        if self.address not in network:
            raise ValidationError({"address": f"{self.address} is not in {network}."})
        if (
            network.num_addresses > 2
            and network.version == 4
            and self.address
            in (
                network.network_address,
                network.broadcast_address,
            )
        ):
            raise ValidationError(
                {"address": f"{self.address} is the network or broadcast address of {network}."}
            )
        if self.interface_id and self.interface.server.tenant_id != self.subnet.tenant_id:
            raise ValidationError({"interface": "The interface belongs to another tenant."})


class EnrolmentToken(models.Model):
    """Lets the auto-inventory agent register machines into one tenant. Stored hashed."""

    tenancy = "tenant"
    audit_redact = frozenset({"key_hash"})

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="enrolment_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField(null=True, blank=True)
    last_used = models.DateTimeField(null=True, blank=True, editable=False)
    revoked = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["tenant__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="enrolment_unique_name")
        ]

    def __str__(self):
        return f"{self.tenant}: {self.name}"

    @property
    def is_active(self):
        return self.revoked is None and (self.expires is None or self.expires > timezone.now())


class Conflict(models.Model):
    """Something a registration could not merge silently; an operator resolves it."""

    tenancy = "tenant"

    class Kind(models.TextChoices):
        SERIAL = "serial", "Same serial and vendor, other UUID"
        MAC = "mac", "MAC address already on another server"
        HOSTNAME = "hostname", "Host name already taken"
        PLACEHOLDER = "placeholder", "Placeholder UUID and serial: no identity"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    server = models.ForeignKey(
        Server, null=True, blank=True, on_delete=models.CASCADE, related_name="conflicts"
    )
    other_server = models.ForeignKey(
        Server, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    detail = models.CharField(max_length=300)
    report = models.JSONField(default=dict, help_text="What the machine reported.")
    created = models.DateTimeField(auto_now_add=True)
    resolved = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    resolution = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created"]
        permissions = [("resolve_conflict", "Can resolve a registration conflict")]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.detail}"

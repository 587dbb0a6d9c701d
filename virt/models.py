"""Hypervisor pools and what the portal reads from them; every model declares `tenancy`.

A pool without a tenant is shared: every tenant may place VMs on it and sees it, only a global
admin changes it (dcportal.rbac.is_shared). A VM belongs to its inventory Server's tenant, so
a shared pool can hold VMs of several tenants, each seeing only its own.

Hosts, templates, networks and storage repositories are copies the sync job keeps current;
the hypervisor is the truth for them. A Vm row is the portal's side of one guest: its inventory
Server (kind virtual, the guest's UUID), how it was made and where its install stands.
"""

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q

from dcportal.models import Job, Tenant
from dcportal.secrets import EncryptedTextField
from inventory.models import Interface, Server

VNC_PORT_VALIDATORS = [MinValueValidator(1024), MaxValueValidator(65535)]


class Pool(models.Model):
    """A Xen pool (its master's XAPI URL) or a libvirt hypervisor (a libvirt URI)."""

    tenancy = "tenant"
    shared_tenancy = True

    class Driver(models.TextChoices):
        XENAPI = "xenapi", "XenAPI (XenServer, XCP-ng)"
        LIBVIRT = "libvirt", "libvirt (KVM, QEMU, Xen)"

    name = models.CharField(max_length=100, unique=True)
    driver = models.CharField(max_length=16, choices=Driver.choices, default=Driver.XENAPI)
    url = models.CharField(
        max_length=500,
        help_text="XenAPI: the pool master's https:// URL. libvirt: a URI such as "
        "qemu+ssh://host/system or qemu:///system.",
    )
    username = models.CharField(max_length=150, blank=True)
    password = EncryptedTextField(blank=True)
    verify_tls = models.BooleanField(
        default=True, help_text="Check the hypervisor's TLS certificate (leave on)."
    )
    ca_bundle = models.TextField(
        blank=True,
        help_text="PEM certificates that sign the hypervisor's certificate; empty uses the "
        "system's CAs.",
    )
    tenant = models.ForeignKey(
        Tenant,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="pools",
        help_text="Empty: shared by every tenant (only an admin may change it).",
    )
    import_tenant = models.ForeignKey(
        Tenant,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Tenant of the VMs a sync finds that the portal did not create; empty: the "
        "pool's tenant (a shared pool then leaves them out of the inventory).",
    )
    max_sessions = models.PositiveSmallIntegerField(
        default=4,
        validators=[MinValueValidator(1), MaxValueValidator(64)],
        help_text="At most this many sessions and operations on the pool at once, across every "
        "worker.",
    )
    sync_interval = models.PositiveIntegerField(
        default=15, help_text="Minutes between automatic syncs; 0 syncs only on demand."
    )
    vnc_port_min = models.PositiveIntegerField(default=5900, validators=VNC_PORT_VALIDATORS)
    vnc_port_max = models.PositiveIntegerField(default=6899, validators=VNC_PORT_VALIDATORS)
    options = models.JSONField(
        default=dict,
        blank=True,
        help_text="Driver options, e.g. timeout (seconds), wait_timeout; libvirt: "
        "storage_pool, shutdown_timeout.",
    )
    description = models.TextField(blank=True)
    last_sync = models.DateTimeField(null=True, blank=True, editable=False)
    last_sync_error = models.TextField(blank=True, editable=False)
    sync_job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("sync_pool", "Can read a pool's hosts, VMs and devices into the portal")]
        constraints = [
            models.CheckConstraint(
                condition=Q(vnc_port_min__lte=F("vnc_port_max")), name="pool_vnc_range_ordered"
            ),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        if not isinstance(self.options, dict):
            raise ValidationError({"options": "Options must be a JSON object."})
        if (
            self.vnc_port_min is not None
            and self.vnc_port_max is not None
            and self.vnc_port_min > self.vnc_port_max
        ):
            raise ValidationError({"vnc_port_max": "The range ends before it starts."})
        url = (self.url or "").strip()
        if self.driver == self.Driver.XENAPI and not url.startswith(("https://", "http://")):
            raise ValidationError({"url": "A XenAPI URL starts with https:// (or http://)."})
        if self.driver == self.Driver.LIBVIRT and "://" not in url:
            raise ValidationError({"url": "A libvirt URI looks like qemu:///system."})
        if self.ca_bundle and "-----BEGIN CERTIFICATE-----" not in self.ca_bundle:
            raise ValidationError({"ca_bundle": "Paste PEM certificates (BEGIN CERTIFICATE)."})


class _PoolObject(models.Model):
    """What every synced object has: its pool, the hypervisor's UUID and name."""

    tenancy = "pool__tenant"
    shared_tenancy = True

    uuid = models.CharField(max_length=64, help_text="The hypervisor's identifier.")
    name = models.CharField(max_length=255)
    synced = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
        ordering = ["pool__name", "name"]

    def __str__(self):
        return f"{self.pool}/{self.name}"


class Host(_PoolObject):
    pool = models.ForeignKey(Pool, on_delete=models.CASCADE, related_name="hosts")
    address = models.CharField(max_length=255, blank=True)
    enabled = models.BooleanField(default=True)
    cpu_count = models.PositiveIntegerField(default=0)
    memory_total_bytes = models.BigIntegerField(default=0)
    memory_free_bytes = models.BigIntegerField(default=0)

    class Meta(_PoolObject.Meta):
        constraints = [models.UniqueConstraint(fields=["pool", "uuid"], name="host_unique_uuid")]


class VmTemplate(_PoolObject):
    pool = models.ForeignKey(Pool, on_delete=models.CASCADE, related_name="templates")
    description = models.TextField(blank=True)
    vcpus = models.PositiveIntegerField(default=0)
    memory_bytes = models.BigIntegerField(default=0)

    class Meta(_PoolObject.Meta):
        verbose_name = "VM template"
        constraints = [
            models.UniqueConstraint(fields=["pool", "uuid"], name="vmtemplate_unique_uuid")
        ]


class Network(_PoolObject):
    pool = models.ForeignKey(Pool, on_delete=models.CASCADE, related_name="networks")
    bridge = models.CharField(max_length=64, blank=True)

    class Meta(_PoolObject.Meta):
        constraints = [models.UniqueConstraint(fields=["pool", "uuid"], name="network_unique_uuid")]


class StorageRepository(_PoolObject):
    pool = models.ForeignKey(Pool, on_delete=models.CASCADE, related_name="storage")
    type = models.CharField(max_length=64, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    used_bytes = models.BigIntegerField(default=0)
    shared = models.BooleanField(default=False)

    class Meta(_PoolObject.Meta):
        verbose_name = "storage repository"
        verbose_name_plural = "storage repositories"
        constraints = [models.UniqueConstraint(fields=["pool", "uuid"], name="sr_unique_uuid")]

    @property
    def free_bytes(self):
        return max(self.size_bytes - self.used_bytes, 0)


class Vm(models.Model):
    """A guest: its inventory Server (kind virtual, UUID = the guest's), its pool and its state.

    `state` is the portal's lifecycle; `power_state` is the hypervisor's, as last read.
    """

    tenancy = "server__tenant"

    class State(models.TextChoices):
        CREATING = "creating"  # the create job has not finished
        PRESENT = "present"  # exists on the hypervisor
        INSTALLING = "installing"  # PXE-installing through the deploy flow
        FAILED = "failed"  # create or install failed; last_error says why
        MISSING = "missing"  # the last sync did not find it on the hypervisor
        DESTROYING = "destroying"

    class PowerState(models.TextChoices):
        RUNNING = "running"
        HALTED = "halted"
        PAUSED = "paused"
        SUSPENDED = "suspended"
        UNKNOWN = "unknown"

    server = models.OneToOneField(Server, on_delete=models.CASCADE, related_name="vm")
    pool = models.ForeignKey(Pool, on_delete=models.PROTECT, related_name="vms")
    uuid = models.CharField(
        max_length=64, blank=True, help_text="The hypervisor's identifier; empty until created."
    )
    state = models.CharField(
        max_length=16, choices=State.choices, default=State.CREATING, db_index=True
    )
    power_state = models.CharField(
        max_length=16, choices=PowerState.choices, default=PowerState.UNKNOWN
    )
    host = models.ForeignKey(
        Host, null=True, blank=True, on_delete=models.SET_NULL, related_name="vms"
    )
    template = models.ForeignKey(
        VmTemplate, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    storage = models.ForeignKey(
        StorageRepository, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    vcpus = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    memory_bytes = models.BigIntegerField(default=0)
    disk_bytes = models.BigIntegerField(default=0)
    vnc_port = models.PositiveIntegerField(
        null=True, blank=True, validators=VNC_PORT_VALIDATORS, editable=False
    )
    boot = models.CharField(
        max_length=16,
        blank=True,
        help_text="How it boots, as last read or set: pv, network, disk.",
        editable=False,
    )
    install_profile = models.ForeignKey(
        "deploy.Profile",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Set while a PXE install runs: the profile it installs.",
    )
    last_error = models.TextField(blank=True, editable=False)
    job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    last_sync = models.DateTimeField(null=True, blank=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "VM"
        verbose_name_plural = "VMs"
        ordering = ["server__hostname"]
        permissions = [
            ("operate_vm", "Can start, shut down and reboot VMs"),
            ("console_vm", "Can open VM consoles"),
            ("install_vm", "Can PXE-install VMs through the deploy flow"),
            ("pool_migrate", "Can migrate VMs between the hosts of a pool"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["pool", "uuid"], condition=~Q(uuid=""), name="vm_unique_uuid"
            ),
            models.UniqueConstraint(
                fields=["pool", "vnc_port"],
                condition=Q(vnc_port__isnull=False),
                name="vm_unique_vnc_port",
            ),
        ]

    def __str__(self):
        return str(self.server)


class Vif(models.Model):
    """A VM's network interface: its inventory Interface (the MAC) on a pool network."""

    tenancy = "vm__server__tenant"

    vm = models.ForeignKey(Vm, on_delete=models.CASCADE, related_name="vifs")
    device = models.PositiveSmallIntegerField(default=0)
    interface = models.OneToOneField(Interface, on_delete=models.CASCADE, related_name="vif")
    network = models.ForeignKey(
        Network, null=True, blank=True, on_delete=models.SET_NULL, related_name="vifs"
    )

    class Meta:
        verbose_name = "VIF"
        ordering = ["vm", "device"]
        constraints = [models.UniqueConstraint(fields=["vm", "device"], name="vif_unique_device")]

    def __str__(self):
        return f"{self.vm}:{self.device}"

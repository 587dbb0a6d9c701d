"""Serializers of the virtualization API: pools (password write-only), what the sync reads from
them, VMs with their VIFs, and the bodies of the VM operations.

Related objects are named, never given by internal id alone: the tenant by slug, the pool by name
(or id), templates, storage and networks by name or the hypervisor's UUID within the chosen pool,
the install profile by name.
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from dcportal.api.serializers import JobSerializer, PortalModelSerializer, ScopedRelatedField
from dcportal.models import Tenant
from deploy.models import Profile
from virt import selectors, services
from virt.filtersets import pool_q
from virt.models import Host, Network, Pool, StorageRepository, Vif, Vm, VmTemplate

SIZE_HELP = 'Bytes: a whole number, or a size such as "2G", "512M", "20GiB".'


# Fields -----------------------------------------------------------------------------------------


class NamedChoiceField(serializers.ChoiceField):
    """A choice field whose enum is a schema component of its own name: "state", "driver" and
    "action" are field names of other models too, and enums sharing a name make the schema
    generator warn."""

    def __init__(self, *, component, **kwargs):
        self.component = component
        super().__init__(**kwargs)


class NamedChoiceFieldSchema(OpenApiSerializerFieldExtension):
    target_class = NamedChoiceField
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        field = self.target
        schema = {"type": "string", "enum": list(field.choices)}
        component = ResolvedComponent(
            name=field.component,
            type=ResolvedComponent.SCHEMA,
            object=field.component,
            schema=schema,
        )
        auto_schema.registry.register_on_missing(component)
        return component.ref


def _choices(model_field, component, **kwargs):
    return NamedChoiceField(component=component, choices=model_field.choices, **kwargs)


@extend_schema_field({"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]})
class SizeField(serializers.Field):
    """A size in bytes, given as a whole number or as text services.parse_size understands."""

    default_error_messages = {"invalid": "Give a whole number of bytes or a size such as 2G."}

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        if isinstance(data, int):
            if data < 0:
                self.fail("invalid")
            return data
        if not isinstance(data, str):
            self.fail("invalid")
        try:
            return services.parse_size(data)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None

    def to_representation(self, value):
        return value


def _tenant_field(help_text):
    return ScopedRelatedField(
        slug_field="slug",
        queryset=Tenant.objects.all(),
        allow_null=True,
        required=False,
        help_text=help_text,
    )


# Pools and what the sync reads --------------------------------------------------------------


class PoolSerializer(PortalModelSerializer):
    driver = _choices(Pool._meta.get_field("driver"), "PoolDriverEnum", required=False)
    tenant = _tenant_field(
        "Tenant slug; null (the default) shares the pool with every tenant, which only an "
        "admin may do."
    )
    import_tenant = _tenant_field(
        "Tenant slug of the VMs a sync finds that the portal did not create; null: the pool's "
        "tenant (a shared pool then leaves them out of the inventory)."
    )
    has_password = serializers.SerializerMethodField()
    host_count = serializers.IntegerField(read_only=True)
    vm_count = serializers.IntegerField(read_only=True)
    sync_job = serializers.IntegerField(
        source="sync_job_id", read_only=True, allow_null=True, help_text="The last sync job."
    )

    class Meta:
        model = Pool
        fields = [
            "id",
            "name",
            "driver",
            "url",
            "username",
            "password",
            "has_password",
            "verify_tls",
            "ca_bundle",
            "tenant",
            "import_tenant",
            "max_sessions",
            "sync_interval",
            "vnc_port_min",
            "vnc_port_max",
            "options",
            "description",
            "last_sync",
            "last_sync_error",
            "sync_job",
            "host_count",
            "vm_count",
            "created",
            "updated",
        ]
        read_only_fields = ["last_sync", "last_sync_error", "created", "updated"]
        extra_kwargs = {
            "password": {
                "required": False,
                "help_text": "Write-only. Absent keeps the stored password; empty clears it.",
            }
        }

    def get_has_password(self, pool) -> bool:
        return bool(pool.password)

    def validate_options(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("Options must be a JSON object.")
        return value


class _PoolObjectSerializer(serializers.ModelSerializer):
    pool = serializers.CharField(source="pool.name", read_only=True, help_text="Pool name.")
    pool_id = serializers.IntegerField(read_only=True)


class HostSerializer(_PoolObjectSerializer):
    class Meta:
        model = Host
        fields = [
            "id",
            "pool",
            "pool_id",
            "uuid",
            "name",
            "address",
            "enabled",
            "cpu_count",
            "memory_total_bytes",
            "memory_free_bytes",
            "synced",
        ]
        read_only_fields = fields


class VmTemplateSerializer(_PoolObjectSerializer):
    class Meta:
        model = VmTemplate
        fields = ["id", "pool", "pool_id", "uuid", "name", "description", "vcpus", "memory_bytes"]
        read_only_fields = fields


class NetworkSerializer(_PoolObjectSerializer):
    class Meta:
        model = Network
        fields = ["id", "pool", "pool_id", "uuid", "name", "bridge", "synced"]
        read_only_fields = fields


class StorageRepositorySerializer(_PoolObjectSerializer):
    free_bytes = serializers.IntegerField(read_only=True)

    class Meta:
        model = StorageRepository
        fields = [
            "id",
            "pool",
            "pool_id",
            "uuid",
            "name",
            "type",
            "size_bytes",
            "used_bytes",
            "free_bytes",
            "shared",
            "synced",
        ]
        read_only_fields = fields


# VMs ------------------------------------------------------------------------------------------


class VifSerializer(serializers.ModelSerializer):
    mac = serializers.CharField(source="interface.mac", read_only=True)
    network = serializers.CharField(
        source="network.name", read_only=True, allow_null=True, help_text="Network name."
    )

    class Meta:
        model = Vif
        fields = ["device", "mac", "network"]
        read_only_fields = fields


class VmSerializer(serializers.ModelSerializer):
    server = serializers.IntegerField(
        source="server_id", read_only=True, help_text="The inventory server (kind virtual)."
    )
    hostname = serializers.CharField(source="server.hostname", read_only=True)
    tenant = serializers.CharField(source="server.tenant.slug", read_only=True)
    pool = serializers.CharField(source="pool.name", read_only=True)
    state = _choices(Vm._meta.get_field("state"), "VmStateEnum", read_only=True)
    power_state = _choices(Vm._meta.get_field("power_state"), "VmPowerStateEnum", read_only=True)
    host = serializers.CharField(source="host.name", read_only=True, allow_null=True)
    template = serializers.CharField(source="template.name", read_only=True, allow_null=True)
    storage = serializers.CharField(source="storage.name", read_only=True, allow_null=True)
    install_profile = serializers.CharField(
        source="install_profile.name", read_only=True, allow_null=True
    )
    job = serializers.IntegerField(
        source="job_id", read_only=True, allow_null=True, help_text="The last job on the VM."
    )
    vifs = VifSerializer(many=True, read_only=True)

    class Meta:
        model = Vm
        fields = [
            "id",
            "server",
            "hostname",
            "tenant",
            "pool",
            "uuid",
            "state",
            "power_state",
            "host",
            "template",
            "storage",
            "vcpus",
            "memory_bytes",
            "disk_bytes",
            "vnc_port",
            "boot",
            "install_profile",
            "last_error",
            "job",
            "vifs",
            "last_sync",
            "created",
            "updated",
        ]
        read_only_fields = fields


def in_pool(queryset, pool, value, label):
    """The object of `pool` whose name or hypervisor UUID is `value`. Hypervisors allow the same
    name twice, so a name that is not unique asks for the UUID instead of picking one."""
    value = value.strip()
    named = list(queryset.filter(pool=pool, name=value)[:2])
    if len(named) > 1:
        raise serializers.ValidationError(
            f"Several {label}s of pool {pool.name} are named {value!r}: give the UUID."
        )
    found = named or list(queryset.filter(pool=pool, uuid=value)[:1])
    if not found:
        raise serializers.ValidationError(f"No {label} {value!r} in pool {pool.name}.")
    return found[0]


def _profile_field(**kwargs):
    return ScopedRelatedField(slug_field="name", queryset=Profile.objects.all(), **kwargs)


class VmCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255, help_text="Host name of the new VM.")
    pool = serializers.CharField(help_text="Pool name or id.")
    tenant = _tenant_field("Tenant slug the VM (its inventory server) belongs to.")
    template = serializers.CharField(help_text="Template name or UUID, in the pool.")
    vcpus = serializers.IntegerField(min_value=1)
    memory = SizeField(help_text=SIZE_HELP)
    disk = SizeField(required=False, default=0, help_text=SIZE_HELP + " 0 keeps the template's.")
    storage = serializers.CharField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Storage name or UUID, in the pool; null uses the pool's default.",
    )
    networks = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        default=list,
        help_text="Network names or UUIDs of the pool: one VIF each, in this order.",
    )
    install_profile = _profile_field(
        allow_null=True,
        required=False,
        default=None,
        help_text="Deploy profile name: PXE-install the VM after creating it.",
    )
    start = serializers.BooleanField(default=True)

    def validate(self, attrs):
        user = self.context["request"].user
        attrs["pool"] = pool = self._pool(user, attrs["pool"])
        errors = {}

        def resolve(field, model, value, label):
            try:
                return in_pool(selectors.pool_objects(model, user), pool, value, label)
            except serializers.ValidationError as exc:
                errors.setdefault(field, []).extend(exc.detail)
                return None

        attrs["template"] = resolve("template", VmTemplate, attrs["template"], "template")
        if attrs.get("storage"):
            attrs["storage"] = resolve(
                "storage", StorageRepository, attrs["storage"], "storage repository"
            )
        attrs["networks"] = [
            resolve("networks", Network, value, "network") for value in attrs["networks"]
        ]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs

    def _pool(self, user, value):
        pools = selectors.pools_for(user)
        # A name wins over an id that happens to look like it.
        pool = pools.filter(name=value.strip()).first() or pools.filter(pool_q(value)).first()
        if pool is None:
            raise serializers.ValidationError({"pool": [f"No pool {value!r}."]})
        return pool


class VmCreatedSerializer(serializers.Serializer):
    vm = VmSerializer()
    job = JobSerializer(help_text="The creation job: /api/jobs/{id}/.")


class JobAcceptedSerializer(serializers.Serializer):
    job = JobSerializer(help_text="The queued job: /api/jobs/{id}/.")


class VmPowerSerializer(serializers.Serializer):
    action = NamedChoiceField(
        component="VmPowerActionEnum",
        choices=list(services.VM_ACTIONS),
        help_text="start, shutdown, hard-shutdown, reboot or hard-reboot.",
    )


class VmInstallSerializer(serializers.Serializer):
    profile = _profile_field(help_text="Deploy profile name.")


class VmMigrateSerializer(serializers.Serializer):
    host = serializers.CharField(help_text="Name or UUID of a host of the VM's pool.")

    def validate_host(self, value):
        hosts = selectors.pool_objects(Host, self.context["request"].user)
        return in_pool(hosts, self.context["vm"].pool, value, "host")


class VmDestroySerializer(serializers.Serializer):
    confirm = serializers.CharField(
        trim_whitespace=False, help_text="The VM's host name, repeated."
    )

"""Virtualization, the ORM side: pools, the sync from hypervisors, and VM operations as jobs.

    create_pool / update_pool / delete_pool          pools (credentials write-only, audited)
    pool_target(pool)                                -> PoolTarget (the only place the pool's
                                                        password is revealed)
    pool_driver(pool, wait=)                         context manager: a slot of the pool's limit
                                                        (Redis, across every worker), then the
                                                        driver; closed (XAPI logout) on exit
    enqueue_sync(user=, pool=) -> Job                "virt.sync": hosts, VMs, templates,
                                                        networks, storage read into the portal
    sync_pool(pool, log=) -> dict                    the sync itself (the job's body)
    enqueue_due_syncs()                              the periodic syncs (housekeeping)
    create_vm(user=, pool=, name=, ...) -> Vm         a Vm (state creating) + its inventory Server
                                                        (kind virtual), VIFs with allocated MACs,
                                                        and the "virt.create" job (vm.job)
    vm_action(user=, vm=, action=) -> Job             start, shutdown, hard-shutdown, reboot,
                                                        hard-reboot ("virt.power")
    destroy_vm(user=, vm=, confirm=) -> Job           confirm must repeat the host name
    migrate_vm(user=, vm=, host=) -> Job              within the pool (XAPI VM.pool_migrate)
    install_vm(user=, vm=, profile=) -> Job           PXE install through the deploy flow; the
                                                        deploy `done` report queues
                                                        "virt.finish-install": shut down, back to
                                                        disk (PV) boot, start

Every VM operation is a tracked job on the "virt" queue. Each job holds one slot of its pool's
limit (pool.max_sessions) while it talks to the hypervisor and logs out before it gives the slot
back, so however many jobs are queued and however many workers run them, a pool never sees more
than that many sessions and operations at once.

Permissions (XAPI's roles): virt.operate_vm (vm-operator) powers VMs; virt.add_vm /
virt.delete_vm / virt.install_vm (vm-admin) create, destroy and install; virt.pool_migrate
(vm-power-admin) migrates; pools take virt.add_pool/change_pool/delete_pool/sync_pool
(operator). Tenant scope: a VM is its Server's tenant's; a pool without a tenant is shared.
Jobs check the permission again when they run: a role taken away meanwhile stops them.
"""

import contextlib
import logging
import re
import time
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from dcportal import audit, jobs, rbac, services
from dcportal.models import Job
from deploy import services as deploy_services
from deploy.models import ServerDeploy
from inventory import power_slots
from inventory.models import Interface, Server, normalise_uuid
from virt import allocation
from virt.drivers.base import (
    BadPowerState,
    DriverError,
    NotFound,
    NotSupported,
    PoolTarget,
    PowerState,
    ShutdownMode,
    Unreachable,
    VmSpec,
    get_driver,
)
from virt.models import Host, Network, Pool, StorageRepository, Vif, Vm, VmTemplate

logger = logging.getLogger(__name__)

VM_ACTIONS = {
    # action: (permission, label)
    "start": ("virt.operate_vm", "Start"),
    "shutdown": ("virt.operate_vm", "Shut down"),
    "hard-shutdown": ("virt.operate_vm", "Force shutdown"),
    "reboot": ("virt.operate_vm", "Reboot"),
    "hard-reboot": ("virt.operate_vm", "Force reboot"),
}
SYNC_JOB_KIND = "virt.sync"
CREATE_JOB_KIND = "virt.create"
POWER_JOB_KIND = "virt.power"
DESTROY_JOB_KIND = "virt.destroy"
MIGRATE_JOB_KIND = "virt.migrate"
INSTALL_JOB_KIND = "virt.install"
FINISH_INSTALL_JOB_KIND = "virt.finish-install"

SLOT_PREFIX = "dcportal:virt:pool"
MAX_VCPUS = 512
MIN_MEMORY = 16 * 1024**2
POLL_SECONDS = 1.0

State = Vm.State


class VmOperationFailed(Exception):
    """A VM job failed; the message says why (safe to show: no secret)."""


# Sizes ----------------------------------------------------------------------------------------

SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)\s*$", re.IGNORECASE)
UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}


def parse_size(value, *, field="size"):
    """Bytes from 2G, 512M, 20GiB, 1.5T or a plain number of bytes. Units are binary (as xe,
    virsh and the XenServer console count memory); ValidationError on anything else."""
    if isinstance(value, bool):
        raise ValidationError({field: "A size is a number of bytes or a text such as 2G."})
    if isinstance(value, int):
        number = value
    else:
        match = SIZE.match(str(value or ""))
        if not match:
            raise ValidationError(
                {field: f"{value!r} is not a size: use bytes or K, M, G, T (e.g. 2G, 512M)."}
            )
        amount, unit, _suffix = match.groups()
        number = int(float(amount) * UNITS[unit.lower()])
    if number < 0:
        raise ValidationError({field: "A size cannot be negative."})
    return number


# Pools ----------------------------------------------------------------------------------------


def _plain(secret):
    return secret.reveal() if hasattr(secret, "reveal") else str(secret or "")


def pool_target(pool):
    """The driver's view of a pool. `max_sessions` bounds the sessions of one process; the
    Redis slots of pool_driver() bound them across every process."""
    return PoolTarget(
        url=pool.url,
        username=pool.username,
        password=_plain(pool.password),
        verify_tls=pool.verify_tls,
        ca_bundle=pool.ca_bundle,
        options={
            "timeout": settings.VIRT_TIMEOUT,
            **(pool.options or {}),
            "max_sessions": pool.max_sessions,
        },
        label=pool.name,
    )


def _check_pool_fields(fields):
    for name in ("tenant", "import_tenant"):
        if name in fields and fields[name] is not None and not hasattr(fields[name], "pk"):
            raise ValidationError({name: "Give a tenant."})
    if "driver" in fields:
        driver = fields["driver"]
        if driver not in Pool.Driver.values:
            raise ValidationError({"driver": f"Unknown driver {driver!r}."})


@transaction.atomic
def create_pool(*, user, **fields):
    _check_pool_fields(fields)
    if fields.get("import_tenant") is not None:
        rbac.check_tenant(user, fields["import_tenant"])
    return services.create_object(Pool, user=user, **fields)


@transaction.atomic
def update_pool(pool, *, user, **fields):
    """`password` sets it ("" clears it); without it the stored one stays, unless the URL or
    user name changes: a stored password is never sent to a new address it was not typed for."""
    _check_pool_fields(fields)
    moved = any(
        name in fields and fields[name] != getattr(pool, name) for name in ("url", "username")
    )
    if moved and "password" not in fields and _plain(pool.password):
        raise ValidationError(
            {"password": "Enter the password again: the URL or user name changed."}
        )
    if fields.get("import_tenant") is not None:
        rbac.check_tenant(user, fields["import_tenant"])
    return services.update_object(pool, user=user, **fields)


@transaction.atomic
def delete_pool(pool, *, user):
    # Permission first: the count covers every tenant's VMs, not for everyone to learn.
    rbac.require(user, "virt.delete_pool")
    rbac.check_tenant(user, pool.tenant, Pool)
    count = Vm.objects.filter(pool=pool).count()
    if count:
        raise ValidationError(
            {"pool": f"{pool} still has {count} VM{'s' if count != 1 else ''} in the portal."}
        )
    services.delete_object(pool, user=user)


def slot_key(pool):
    return f"{SLOT_PREFIX}:{pool.pk}"


def slot_connection():
    return jobs.queue_for("virt").connection


def current_slots(pool):
    """How many slots of the pool's limit are held right now (for pages and benchmarks)."""
    return power_slots.holders(slot_connection(), slot_key(pool))


@contextlib.contextmanager
def pool_driver(pool, *, wait=None, close=True):
    """Hold one slot of the pool's limit, then yield its driver; close it (log out) before the
    slot is given back. `close=False` keeps the process's sessions for the next caller (a
    long-lived process); jobs close, since their work horse ends with them."""
    wait = settings.VIRT_SLOT_WAIT if wait is None else wait
    try:
        slot = power_slots.acquire(
            slot_connection(), {slot_key(pool): pool.max_sessions}, wait=wait
        )
    except power_slots.SlotTimeout:
        raise Unreachable(
            f"{pool} is busy: all {pool.max_sessions} of its slots stayed taken for {wait:g} s.",
            code="POOL_BUSY",
        ) from None
    try:
        driver = get_driver(pool.driver, pool_target(pool))
        try:
            yield driver
        finally:
            if close:
                driver.close()
    finally:
        slot.release()


# Sync -----------------------------------------------------------------------------------------


def _scoped_pool(user, pool, action):
    if not rbac.restrict(Pool.objects.filter(pk=pool.pk), user, action).exists():
        raise PermissionDenied(f"You may not {action.split('.')[-1].replace('_', ' ')} {pool}.")


@transaction.atomic
def enqueue_sync(*, user, pool):
    _scoped_pool(user, pool, "virt.sync_pool")
    return _enqueue_sync(user, pool)


def _enqueue_sync(user, pool):
    job = jobs.enqueue(
        SYNC_JOB_KIND, user=user, obj=pool, params={"pool_id": pool.pk}, title=f"Sync {pool}"
    )
    Pool.objects.filter(pk=pool.pk).update(sync_job=job)
    pool.sync_job = job
    return job


def enqueue_due_syncs(now=None):
    """Queue a sync of every pool whose interval has passed and that has none queued or
    running; returns the jobs."""
    now = now or timezone.now()
    busy = Q(sync_job__status__in=[Job.Status.QUEUED, Job.Status.RUNNING])
    started = []
    for pool in Pool.objects.filter(sync_interval__gt=0).exclude(busy).select_related("sync_job"):
        if pool.last_sync is None or pool.last_sync <= now - timedelta(minutes=pool.sync_interval):
            with transaction.atomic():
                started.append(_enqueue_sync(None, pool))
    return started


def _upsert(model, pool, infos, fields):
    """Make the pool's rows of `model` equal the hypervisor's list; returns counts."""
    rows = {row.uuid: row for row in model.objects.filter(pool=pool)}
    new, changed = [], []
    for info in infos:
        values = {"name": info.name[:255], **{name: getattr(info, name) for name in fields}}
        row = rows.get(info.uuid)
        if row is None:
            new.append(model(pool=pool, uuid=info.uuid, **values))
        elif any(getattr(row, name) != value for name, value in values.items()):
            for name, value in values.items():
                setattr(row, name, value)
            changed.append(row)
    model.objects.bulk_create(new)
    model.objects.bulk_update(changed, ["name", *fields])
    gone, _ = model.objects.filter(pool=pool).exclude(uuid__in=[i.uuid for i in infos]).delete()
    return {"added": len(new), "changed": len(changed), "removed": gone}


def boot_of(info):
    """pv, network or disk, from how the hypervisor describes the guest's boot."""
    order = str((info.hvm_boot_params or {}).get("order", ""))
    if order.startswith("n"):
        return "network"
    if not info.hvm_boot_policy and info.pv_bootloader:
        return "pv"
    return "disk"


def _record_info(vm, info, hosts=None):
    """Copy what the hypervisor says about a guest onto its row (no audit: a reading)."""
    if hosts is None:
        hosts = {h.uuid: h for h in Host.objects.filter(pool_id=vm.pool_id)}
    host = hosts.get(info.host_uuid) if info.host_uuid else None
    values = {
        "power_state": str(info.power_state),
        "host": host,
        "vcpus": info.vcpus or vm.vcpus,
        "memory_bytes": info.memory_bytes or vm.memory_bytes,
        "boot": boot_of(info),
        "last_sync": timezone.now(),
    }
    for name, value in values.items():
        setattr(vm, name, value)
    return values


def _hostname_for(name, uuid):
    base = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:54] or "vm"
    if not Server.objects.filter(hostname=base).exists():
        return base
    return f"{base}-{uuid.replace('-', '')[:8]}"


def _adopt(pool, info, tenant, notes):
    """A guest the portal did not create: its Server (an existing one with its UUID, when
    that is a virtual machine without a Vm) and Vm rows. None when it cannot be placed."""
    try:
        uuid = normalise_uuid(info.uuid)
    except (ValidationError, ValueError):
        uuid = None
    server = Server.objects.filter(uuid=uuid).first() if uuid else None
    if server is not None:
        if server.kind != Server.Kind.VIRTUAL or Vm.objects.filter(server=server).exists():
            notes.append(f"{info.name}: UUID {uuid} belongs to {server} already; skipped")
            return None
    elif tenant is None:
        notes.append(f"{info.name}: not in the inventory (the pool has no tenant to give it)")
        return None
    else:
        server = Server(
            hostname=_hostname_for(info.name, info.uuid),
            uuid=uuid,
            kind=Server.Kind.VIRTUAL,
            status=Server.Status.READY,
            tenant=tenant,
        )
        server.full_clean()
        server.save()
        audit.created(user=None, obj=server, extra={"source": f"sync of {pool}"})
    vm = Vm.objects.create(server=server, pool=pool, uuid=info.uuid, state=State.PRESENT)
    audit.created(user=None, obj=vm, extra={"source": f"sync of {pool}"})
    return vm


def _sync_interfaces(vm, macs, notes):
    """The guest's MACs as inventory interfaces (added, never removed: people annotate them)."""
    have = {i.mac: i for i in Interface.objects.filter(server_id=vm.server_id)}
    names = {i.name for i in have.values()}
    devices = set(Vif.objects.filter(vm=vm).values_list("device", flat=True))
    for mac in macs:
        mac = mac.lower()
        if mac in have:
            continue
        owner = Interface.objects.filter(mac=mac).select_related("server").first()
        if owner is not None:
            notes.append(f"{vm}: MAC {mac} is {owner.server}'s in the inventory; not added")
            continue
        index = 0
        while f"eth{index}" in names:
            index += 1
        interface = Interface.objects.create(
            server_id=vm.server_id, name=f"eth{index}", mac=mac, boot=not have
        )
        names.add(interface.name)
        have[mac] = interface
        device = 0
        while device in devices:
            device += 1
        Vif.objects.create(vm=vm, device=device, interface=interface)
        devices.add(device)


def sync_pool(pool, *, log=None):
    """Read the pool's hosts, templates, networks, storage and guests into the portal.
    Returns counts (and notes about guests that could not be placed)."""
    log = log or (lambda message, level="info": None)
    try:
        with pool_driver(pool) as driver:
            hosts = driver.hosts()
            templates = driver.templates()
            networks = driver.networks()
            storage = driver.storage()
            guests = driver.vms()
    except DriverError as exc:
        Pool.objects.filter(pk=pool.pk).update(last_sync_error=str(exc)[:2000])
        raise
    log(
        f"{pool}: {len(hosts)} hosts, {len(guests)} VMs, {len(templates)} templates, "
        f"{len(networks)} networks, {len(storage)} storage repositories"
    )
    notes = []
    with transaction.atomic():
        Pool.objects.select_for_update().filter(pk=pool.pk).first()
        result = {
            "hosts": _upsert(
                Host,
                pool,
                hosts,
                ["address", "enabled", "cpu_count", "memory_total_bytes", "memory_free_bytes"],
            ),
            "templates": _upsert(
                VmTemplate, pool, templates, ["description", "vcpus", "memory_bytes"]
            ),
            "networks": _upsert(Network, pool, networks, ["bridge"]),
            "storage": _upsert(
                StorageRepository, pool, storage, ["type", "size_bytes", "used_bytes", "shared"]
            ),
        }
        result["vms"] = _sync_vms(pool, guests, notes)
        Pool.objects.filter(pk=pool.pk).update(last_sync=timezone.now(), last_sync_error="")
    for note in notes:
        log(note, "warning")
    result["notes"] = notes
    return result


def _sync_vms(pool, guests, notes):
    hosts = {h.uuid: h for h in Host.objects.filter(pool=pool)}
    rows = {vm.uuid: vm for vm in Vm.objects.filter(pool=pool).exclude(uuid="")}
    tenant = pool.import_tenant or pool.tenant
    counts = {"seen": len(guests), "added": 0, "missing": 0, "skipped": 0}
    changed = []
    for info in guests:
        vm = rows.get(info.uuid)
        if vm is None:
            vm = _adopt(pool, info, tenant, notes)
            if vm is None:
                counts["skipped"] += 1
                continue
            counts["added"] += 1
        if vm.state == State.MISSING:
            vm.state = State.PRESENT
        _record_info(vm, info, hosts)
        changed.append(vm)
        _sync_interfaces(vm, info.macs, notes)
    Vm.objects.bulk_update(
        changed,
        ["state", "power_state", "host", "vcpus", "memory_bytes", "boot", "last_sync"],
        batch_size=500,
    )
    seen = {info.uuid for info in guests}
    missing = Vm.objects.filter(pool=pool, state=State.PRESENT).exclude(uuid="")
    counts["missing"] = missing.exclude(uuid__in=seen).update(
        state=State.MISSING, power_state=Vm.PowerState.UNKNOWN, host=None
    )
    return counts


# Creating VMs ---------------------------------------------------------------------------------


def _pool_error(obj, pool, field, label):
    if obj is not None and obj.pool_id != pool.pk:
        raise ValidationError({field: f"{label} {obj.name} is not in the pool {pool}."})


def _check_vm_request(user, pool, tenant, template, storage, networks, vcpus, memory, disk):
    if not rbac.restrict(Pool.objects.filter(pk=pool.pk), user, "view").exists():
        raise ValidationError({"pool": "No such pool."})
    if tenant is None:
        raise ValidationError({"tenant": "A VM belongs to a tenant."})
    rbac.check_tenant(user, tenant)
    if pool.tenant_id is not None and tenant.pk != pool.tenant_id:
        raise ValidationError({"tenant": f"The pool {pool} is {pool.tenant}'s only."})
    if template is None:
        raise ValidationError({"template": "Choose a template."})
    _pool_error(template, pool, "template", "The template")
    _pool_error(storage, pool, "storage", "The storage repository")
    for network in networks:
        _pool_error(network, pool, "networks", "The network")
    errors = {}
    if not isinstance(vcpus, int) or not 1 <= vcpus <= MAX_VCPUS:
        errors["vcpus"] = f"Between 1 and {MAX_VCPUS} VCPUs."
    if not isinstance(memory, int) or memory < MIN_MEMORY:
        errors["memory_bytes"] = "At least 16 MiB of memory."
    if not isinstance(disk, int) or disk < 0:
        errors["disk_bytes"] = "A disk size cannot be negative."
    if storage is not None and disk and disk > storage.free_bytes:
        errors["disk_bytes"] = (
            f"{storage.name} has {storage.free_bytes} bytes free (as last synced); "
            f"{disk} asked for."
        )
    if errors:
        raise ValidationError(errors)


def _new_server(user, name, tenant):
    server = Server(
        hostname=(name or "").strip().lower().rstrip("."),
        kind=Server.Kind.VIRTUAL,
        status=Server.Status.NEW,
        tenant=tenant,
    )
    try:
        server.full_clean()
    except ValidationError as exc:
        messages = exc.message_dict
        raise ValidationError({"name": messages.pop("hostname", [])} if messages else exc) from None
    try:
        with transaction.atomic():
            server.save()
    except IntegrityError:
        raise ValidationError({"name": f"A server named {server.hostname} exists."}) from None
    audit.created(user=user, obj=server)
    return server


@transaction.atomic
def create_vm(
    *,
    user,
    pool,
    name,
    tenant,
    template,
    vcpus,
    memory_bytes,
    disk_bytes=0,
    storage=None,
    networks=(),
    install_profile=None,
    start=True,
):
    rbac.require(user, "virt.add_vm")
    networks = list(networks)
    _check_vm_request(
        user, pool, tenant, template, storage, networks, vcpus, memory_bytes, disk_bytes
    )
    if install_profile is not None:
        rbac.require(user, "virt.install_vm")
        install_profile = deploy_services.usable_profile(user, install_profile)
        if not networks:
            raise ValidationError({"networks": "A network install needs a network."})
    server = _new_server(user, name, tenant)
    vm = Vm(
        server=server,
        pool=pool,
        template=template,
        storage=storage,
        vcpus=vcpus,
        memory_bytes=memory_bytes,
        disk_bytes=disk_bytes,
        install_profile=install_profile,
        state=State.CREATING,
    )
    if getattr(get_driver(pool.driver), "needs_console_port", False):
        vm.vnc_port = allocation.vnc_port(pool)
    vm.save()
    for device, network in enumerate(networks):
        interface = allocation.create_interface(
            server=server, name=f"eth{device}", boot=device == 0
        )
        Vif.objects.create(vm=vm, device=device, interface=interface, network=network)
    audit.created(user=user, obj=vm)
    verb = f" and install {install_profile}" if install_profile else ""
    vm.job = jobs.enqueue(
        CREATE_JOB_KIND,
        user=user,
        obj=vm,
        params={"vm_id": vm.pk, "start": bool(start)},
        title=f"Create VM {server.hostname} in {pool}{verb}",
    )
    Vm.objects.filter(pk=vm.pk).update(job=vm.job)
    return vm


# VM operations --------------------------------------------------------------------------------


def _scoped_vm(user, vm, permission):
    rbac.require(user, permission)
    if not rbac.restrict(Vm.objects.filter(pk=vm.pk), user, permission).exists():
        raise PermissionDenied("That VM is not in your tenants.")


def _needs_uuid(vm, what):
    if not vm.uuid or vm.state in (State.CREATING, State.DESTROYING):
        raise ValidationError({"vm": f"{vm} is {vm.state}: it cannot {what} now."})


def _enqueue(kind, user, vm, params, title):
    job = jobs.enqueue(kind, user=user, obj=vm, params={"vm_id": vm.pk, **params}, title=title)
    Vm.objects.filter(pk=vm.pk).update(job=job)
    vm.job = job
    return job


@transaction.atomic
def vm_action(*, user, vm, action):
    if action not in VM_ACTIONS:
        raise ValidationError(
            {"action": f"Unknown action {action!r}; one of {', '.join(VM_ACTIONS)}."}
        )
    permission, label = VM_ACTIONS[action]
    _scoped_vm(user, vm, permission)
    _needs_uuid(vm, label.lower())
    return _enqueue(POWER_JOB_KIND, user, vm, {"action": action}, f"{label} {vm}")


def vm_actions(*, user, vms, action):
    """One job per VM (vm_action), or none: a ValidationError lists every VM that refused."""
    return services.each_or_none(
        vms,
        lambda vm: vm_action(user=user, vm=vm, action=action),
        name=lambda vm: vm.server.hostname,
    )


@transaction.atomic
def destroy_vm(*, user, vm, confirm):
    _scoped_vm(user, vm, "virt.delete_vm")
    if (confirm or "").strip().lower() != vm.server.hostname:
        raise ValidationError({"confirm": f"Type the VM's name, {vm.server.hostname}, to confirm."})
    if vm.state == State.DESTROYING:
        raise ValidationError({"vm": f"{vm} is being destroyed already."})
    before = vm.state
    Vm.objects.filter(pk=vm.pk).update(state=State.DESTROYING)
    vm.state = State.DESTROYING
    audit.record(
        user=user, action="action", verb="destroy-requested", obj=vm, extra={"state": before}
    )
    return _enqueue(DESTROY_JOB_KIND, user, vm, {}, f"Destroy VM {vm}")


@transaction.atomic
def migrate_vm(*, user, vm, host):
    _scoped_vm(user, vm, "virt.pool_migrate")
    _needs_uuid(vm, "migrate")
    if host is None or host.pool_id != vm.pool_id:
        raise ValidationError({"host": f"Choose a host of the pool {vm.pool}."})
    if vm.host_id == host.pk:
        raise ValidationError({"host": f"{vm} runs on {host.name} already."})
    if vm.power_state != Vm.PowerState.RUNNING:
        raise ValidationError({"vm": f"{vm} is {vm.power_state}: only a running VM migrates."})
    return _enqueue(
        MIGRATE_JOB_KIND, user, vm, {"host_id": host.pk}, f"Migrate {vm} to {host.name}"
    )


@transaction.atomic
def install_vm(*, user, vm, profile):
    _scoped_vm(user, vm, "virt.install_vm")
    _needs_uuid(vm, "install")
    profile = deploy_services.usable_profile(user, profile)
    if not Vif.objects.filter(vm=vm).exists():
        raise ValidationError({"vm": f"{vm} has no network interface to boot from."})
    Vm.objects.filter(pk=vm.pk).update(install_profile=profile)
    vm.install_profile = profile
    return _enqueue(INSTALL_JOB_KIND, user, vm, {}, f"Install {vm} with {profile}")


# Job bodies (virt.jobs calls these) -----------------------------------------------------------


def vm_for_job(vm_id):
    return (
        Vm.objects.select_related("server__tenant", "pool", "template", "storage", "host")
        .prefetch_related("vifs__interface", "vifs__network")
        .filter(pk=vm_id)
        .first()
    )


def recheck(ctx, vm, permission):
    """A job re-checks its user's right when it runs (None: queued by the portal itself)."""
    if ctx.user is not None:
        _scoped_vm(ctx.user, vm, permission)


def _save_vm(vm, **fields):
    fields["updated"] = timezone.now()
    Vm.objects.filter(pk=vm.pk).update(**fields)
    for name, value in fields.items():
        setattr(vm, name, value)


def _refresh(driver, vm):
    """Read the guest back from the hypervisor onto its row."""
    values = _record_info(vm, driver.vm(vm.uuid))
    _save_vm(vm, **values)


def _failed(vm, exc, *, state=None):
    fields = {"last_error": str(exc)[:4000]}
    if state:
        fields["state"] = state
    _save_vm(vm, **fields)
    code = f"{exc.code}: " if isinstance(exc, DriverError) else ""
    return VmOperationFailed(f"{vm}: {code}{exc}")


def _spec(vm):
    return VmSpec(
        name=vm.server.hostname,
        template=vm.template.uuid,
        vcpus=vm.vcpus,
        memory_bytes=vm.memory_bytes,
        disk_bytes=vm.disk_bytes,
        sr=vm.storage.uuid if vm.storage_id else "",
        networks=[
            (vif.network.uuid, vif.interface.mac)
            for vif in sorted(vm.vifs.all(), key=lambda vif: vif.device)
            if vif.network_id
        ],
        vnc_port=vm.vnc_port,
        other_config={"dcportal_server": str(vm.server_id)},
    )


def run_create(ctx, vm, *, start=True):
    if vm.state != State.CREATING:
        raise VmOperationFailed(f"{vm} is {vm.state}, not being created.")
    if vm.template_id is None:
        raise _failed(vm, "its template is gone (removed by a sync)", state=State.FAILED)
    ctx.progress(5, f"waiting for a slot of {vm.pool}")
    with pool_driver(vm.pool) as driver:
        ctx.progress(10, f"creating {vm} from {vm.template.name}")
        try:
            uuid = driver.create_vm(_spec(vm))
        except DriverError as exc:
            raise _failed(vm, exc, state=State.FAILED) from None
        _created(vm, uuid)
        ctx.log(f"{vm}: created as {uuid}")
        try:
            if vm.install_profile_id:
                _begin_install(ctx, driver, vm)
            elif start:
                ctx.progress(70, f"starting {vm}")
                driver.start(uuid)
            _refresh(driver, vm)
        except DriverError as exc:
            raise _failed(vm, exc) from None
    return _vm_result(vm)


def _created(vm, uuid):
    try:
        server_uuid = normalise_uuid(uuid)
    except (ValidationError, ValueError):
        server_uuid = None
    with transaction.atomic():
        _save_vm(vm, uuid=uuid, state=State.PRESENT, power_state=Vm.PowerState.HALTED)
        if server_uuid:
            Server.objects.filter(pk=vm.server_id).update(uuid=server_uuid)
            vm.server.uuid = server_uuid
        audit.record(user=None, action="action", verb="vm-created", obj=vm, extra={"uuid": uuid})


def _begin_install(ctx, driver, vm):
    """Network boot through the deploy flow: a build token, PXE first, and the guest on."""
    profile = vm.install_profile
    ctx.progress(40, f"nodeset install {profile}")
    deploy_services.nodeset(
        user=ctx.user,
        servers=[vm.server],
        next_boot=ServerDeploy.NextBoot.INSTALL,
        profile=profile,
        permission="virt.install_vm",
    )
    ServerDeploy.objects.filter(server_id=vm.server_id).update(job=ctx.job)
    if driver.vm(vm.uuid).power_state != PowerState.HALTED:
        ctx.progress(50, f"switching {vm} off")
        driver.shutdown(vm.uuid, ShutdownMode.HARD)
    ctx.progress(60, "network boot first")
    driver.set_pxe_boot(vm.uuid)
    ctx.progress(70, f"starting {vm} to install {profile}")
    driver.start(vm.uuid)
    _save_vm(vm, state=State.INSTALLING, boot="network", last_error="")
    ctx.log(f"{vm}: installing {profile}; it returns to disk boot when the installer is done")


def run_install(ctx, vm):
    if vm.install_profile_id is None:
        raise VmOperationFailed(f"{vm} has no profile to install.")
    ctx.progress(5, f"waiting for a slot of {vm.pool}")
    with pool_driver(vm.pool) as driver:
        try:
            _begin_install(ctx, driver, vm)
            _refresh(driver, vm)
        except DriverError as exc:
            raise _failed(vm, exc) from None
    return _vm_result(vm)


def _wait_halted(driver, vm, timeout, log):
    """Clean shutdown, forced when the guest does not halt within `timeout` seconds."""
    if driver.vm(vm.uuid).power_state == PowerState.HALTED:
        return
    try:
        driver.shutdown(vm.uuid, ShutdownMode.CLEAN)
    except (BadPowerState, NotSupported) as exc:
        # Paused, halting already, or no PV drivers to ask (XAPI VM_MISSING_PV_DRIVERS):
        # forced below if it does not halt.
        log(f"{vm}: clean shutdown refused ({exc.code}: {exc})", "warning")
        timeout = min(timeout, POLL_SECONDS)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if driver.vm(vm.uuid).power_state == PowerState.HALTED:
            return
        time.sleep(POLL_SECONDS)
    log(f"{vm}: no clean shutdown within {timeout:g} s; forcing it off", "warning")
    with contextlib.suppress(BadPowerState):  # halted in the meantime
        driver.shutdown(vm.uuid, ShutdownMode.HARD)


def run_finish_install(ctx, vm):
    """After the installer's `done`: off, disk (PV) boot, on."""
    if vm.state != State.INSTALLING:
        raise VmOperationFailed(f"{vm} is {vm.state}, not installing.")
    ctx.progress(5, f"waiting for a slot of {vm.pool}")
    with pool_driver(vm.pool) as driver:
        try:
            ctx.progress(20, f"shutting {vm} down")
            _wait_halted(driver, vm, settings.VIRT_SHUTDOWN_TIMEOUT, ctx.log)
            ctx.progress(50, "back to disk boot")
            driver.set_disk_boot(vm.uuid)
            ctx.progress(75, f"starting {vm} from its disk")
            driver.start(vm.uuid)
            _refresh(driver, vm)
        except DriverError as exc:
            raise _failed(vm, exc, state=State.FAILED) from None
    _save_vm(vm, state=State.PRESENT, install_profile=None, last_error="")
    audit.record(user=None, action="action", verb="vm-installed", obj=vm, extra={"boot": vm.boot})
    ctx.log(f"{vm}: installed; boots {vm.boot}")
    return _vm_result(vm)


POWER_CALLS = {
    "start": lambda driver, uuid: driver.start(uuid),
    "shutdown": lambda driver, uuid: driver.shutdown(uuid, ShutdownMode.CLEAN),
    "hard-shutdown": lambda driver, uuid: driver.shutdown(uuid, ShutdownMode.HARD),
    "reboot": lambda driver, uuid: driver.reboot(uuid, ShutdownMode.CLEAN),
    "hard-reboot": lambda driver, uuid: driver.reboot(uuid, ShutdownMode.HARD),
}


def run_power(ctx, vm, action):
    permission, label = VM_ACTIONS[action]
    recheck(ctx, vm, permission)
    ctx.progress(5, f"waiting for a slot of {vm.pool}")
    with pool_driver(vm.pool) as driver:
        ctx.progress(30, f"{label.lower()} {vm}")
        try:
            POWER_CALLS[action](driver, vm.uuid)
            _refresh(driver, vm)
        except DriverError as exc:
            audit.record(
                user=ctx.user,
                action="action",
                verb=f"vm-{action}",
                obj=vm,
                extra={"result": "failed", "error": str(exc)},
            )
            raise _failed(vm, exc) from None
    audit.record(
        user=ctx.user,
        action="action",
        verb=f"vm-{action}",
        obj=vm,
        extra={"result": "ok", "state": vm.power_state},
    )
    return _vm_result(vm)


def run_migrate(ctx, vm, host_id):
    recheck(ctx, vm, "virt.pool_migrate")
    host = Host.objects.filter(pk=host_id, pool_id=vm.pool_id).first()
    if host is None:
        raise VmOperationFailed(f"{vm}: the target host is no longer in the pool.")
    ctx.progress(5, f"waiting for a slot of {vm.pool}")
    with pool_driver(vm.pool) as driver:
        ctx.progress(30, f"migrating {vm} to {host.name}")
        try:
            driver.migrate(vm.uuid, host.uuid)
            _refresh(driver, vm)
        except DriverError as exc:
            raise _failed(vm, exc) from None
    audit.record(
        user=ctx.user, action="action", verb="vm-migrate", obj=vm, extra={"host": host.name}
    )
    return _vm_result(vm)


def run_destroy(ctx, vm):
    recheck(ctx, vm, "virt.delete_vm")
    if vm.uuid:
        ctx.progress(5, f"waiting for a slot of {vm.pool}")
        with pool_driver(vm.pool) as driver:
            try:
                ctx.progress(20, f"switching {vm} off")
                with contextlib.suppress(BadPowerState):  # halted already
                    driver.shutdown(vm.uuid, ShutdownMode.HARD)
                ctx.progress(50, f"removing {vm} and its disks")
                driver.destroy(vm.uuid)
            except NotFound:
                ctx.log(f"{vm}: already gone from the hypervisor", "warning")
            except DriverError as exc:
                raise _failed(vm, exc, state=State.PRESENT) from None
    ctx.progress(90, "removing it from the inventory")
    server = vm.server
    result = {"vm": vm.pk, "hostname": server.hostname, "uuid": vm.uuid, "destroyed": True}
    with transaction.atomic():
        before = audit.snapshot(server)
        pk = server.pk
        server.delete()
        server.pk = pk
        audit.deleted(user=ctx.user, obj=server, before=before, verb="vm-destroyed")
    return result


def run_sync(ctx, pool):
    if ctx.user is not None:  # a periodic sync has no user to check
        _scoped_pool(ctx.user, pool, "virt.sync_pool")
    ctx.progress(5, f"reading {pool}")
    result = sync_pool(pool, log=ctx.log)
    vms = result["vms"]
    ctx.progress(100, f"{vms['seen']} VMs ({vms['added']} new, {vms['missing']} missing)")
    return result


def _vm_result(vm):
    return {
        "vm": vm.pk,
        "hostname": vm.server.hostname,
        "uuid": vm.uuid,
        "state": vm.state,
        "power_state": vm.power_state,
        "boot": vm.boot,
    }


def settle_stale_vms():
    """VMs whose create or destroy job ended without finishing them (a worker died, someone
    cancelled the job while queued): a creation counts as failed, a destruction as not done.
    Returns lines to report."""
    ended = [Job.Status.FAILED, Job.Status.CANCELLED]
    lines = []
    stale = Vm.objects.filter(
        state__in=[State.CREATING, State.DESTROYING], job__status__in=ended
    ).select_related("server", "job")
    for vm in stale:
        if vm.state == State.CREATING:
            state = State.PRESENT if vm.uuid else State.FAILED
            why = f"The create job {vm.job.pk} ended {vm.job.status}: {vm.job.error}".strip(": ")
        else:
            state = State.PRESENT
            why = f"The destroy job {vm.job.pk} ended {vm.job.status}: {vm.job.error}".strip(": ")
        updated = Vm.objects.filter(pk=vm.pk, state=vm.state).update(
            state=state, last_error=why[:4000], updated=timezone.now()
        )
        if updated:
            lines.append(f"{vm}: {vm.state} -> {state} ({why})")
    return lines


# The deploy flow's report ---------------------------------------------------------------------


def build_finished(*, server_id, state, message=""):
    """The installer of a VM reported: `done` queues the return to disk boot, `failed` marks
    the VM failed (left as it is, for its console to be looked at)."""
    vm = Vm.objects.select_related("job__user", "server").filter(server_id=server_id).first()
    if vm is None or vm.state != State.INSTALLING:
        return None
    if state == ServerDeploy.State.DEPLOYED:
        user = vm.job.user if vm.job_id else None
        with transaction.atomic():
            return _enqueue(FINISH_INSTALL_JOB_KIND, user, vm, {}, f"Finish the install of {vm}")
    if state == ServerDeploy.State.FAILED:
        _save_vm(vm, state=State.FAILED, last_error=message or "The installer failed.")
    return None

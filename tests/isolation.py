"""One object of every tenant-scoped model, made for a given tenant: the isolation and role
matrix tests build their worlds from here.

`FACTORIES` maps each model to a function `(world, tenant) -> object`. The isolation tests walk
the app registry and fail on a model with tenancy but no factory, so a new model cannot be
left out of the tenant checks by forgetting it here.

Objects are written straight to the database (or through the service where the row needs real
crypto or a hashed key): the tests are about who may see them, not how they are made.
"""

import uuid as uuidlib
from contextlib import contextmanager

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.db import transaction

from dcportal import rbac
from dcportal.models import AuditEvent, Credential, Job, JobLog, Tenant

APPS = ("dcportal", "inventory", "deploy", "virt", "ca")
GIB = 1024**3

FACTORIES = {}


def factory(label):
    def register(function):
        FACTORIES[apps.get_model(label)] = function
        return function

    return register


def tenancy_models():
    """Every model of the portal's apps that belongs to a tenant (directly, through a parent,
    or shared): the ones another tenant must never see."""
    return [
        model
        for label in APPS
        for model in apps.get_app_config(label).get_models()
        if rbac.tenancy_of(model) is not None
    ]


class World:
    """Objects per (model, tenant), made once: an interface of globex and its server are the
    same server as globex's server object."""

    def __init__(self, admin):
        self.admin = admin
        self._made = {}

    def number(self, tenant):
        # Each tenant gets its own addresses, names and MACs.
        return tenant.pk % 200 + 1

    def get(self, model, tenant):
        key = (model, tenant.pk)
        if key not in self._made:
            try:
                make = FACTORIES[model]
            except KeyError:
                raise LookupError(f"no isolation factory for {model._meta.label}") from None
            self._made[key] = make(self, tenant)
        return self._made[key]


def slug(tenant, what):
    return f"{tenant.slug}-{what}"


# dcportal ----------------------------------------------------------------------------------------


@factory("dcportal.Tenant")
def _tenant(world, tenant):
    return tenant


@factory("dcportal.Credential")
def _credential(world, tenant):
    return Credential.objects.create(
        tenant=tenant, name=slug(tenant, "bmc"), username="admin", secret="s3cret"
    )


@factory("dcportal.Job")
def _job(world, tenant):
    server = world.get(apps.get_model("inventory.Server"), tenant)
    return Job.objects.create(
        kind="test.noop",
        queue="default",
        tenant=tenant,
        content_type=ContentType.objects.get_for_model(server),
        object_id=str(server.pk),
        object_repr=server.hostname,
    )


@factory("dcportal.JobLog")
def _joblog(world, tenant):
    return JobLog.objects.create(job=world.get(Job, tenant), message=slug(tenant, "log line"))


@factory("dcportal.AuditEvent")
def _auditevent(world, tenant):
    credential = world.get(Credential, tenant)
    return AuditEvent.objects.create(
        action=AuditEvent.Action.UPDATE,
        content_type=ContentType.objects.get_for_model(credential),
        object_id=str(credential.pk),
        object_repr=credential.name,
        actor_name="someone",
        tenant=tenant,
        request_id=slug(tenant, "request"),
    )


# inventory ---------------------------------------------------------------------------------------


@factory("inventory.Server")
def _server(world, tenant):
    Server = apps.get_model("inventory.Server")
    return Server.objects.create(
        hostname=slug(tenant, "node"),
        tenant=tenant,
        serial=slug(tenant, "serial"),
        vendor="Acme Vendor",
        uuid=uuidlib.uuid4(),
        attributes={"owner": tenant.slug},
        tags=[tenant.slug],
    )


@factory("inventory.Interface")
def _interface(world, tenant):
    return apps.get_model("inventory.Interface").objects.create(
        server=world.get(apps.get_model("inventory.Server"), tenant),
        name="eth0",
        mac=f"52:54:00:aa:00:{world.number(tenant):02x}",
        boot=True,
    )


@factory("inventory.Bmc")
def _bmc(world, tenant):
    return apps.get_model("inventory.Bmc").objects.create(
        server=world.get(apps.get_model("inventory.Server"), tenant),
        address=f"192.0.2.{world.number(tenant)}",
        username="admin",
        password="bmc-pass",
        credential=world.get(Credential, tenant),
    )


@factory("inventory.Subnet")
def _subnet(world, tenant):
    return apps.get_model("inventory.Subnet").objects.create(
        network=f"10.{world.number(tenant)}.0.0/24",
        name=slug(tenant, "lan"),
        tenant=tenant,
        vlan=world.number(tenant),
        domain=f"{tenant.slug}.example",
    )


@factory("inventory.IPRange")
def _iprange(world, tenant):
    n = world.number(tenant)
    return apps.get_model("inventory.IPRange").objects.create(
        subnet=world.get(apps.get_model("inventory.Subnet"), tenant),
        start=f"10.{n}.0.100",
        end=f"10.{n}.0.150",
        kind="dhcp",
        description=slug(tenant, "range"),
    )


@factory("inventory.IPAddress")
def _ipaddress(world, tenant):
    return apps.get_model("inventory.IPAddress").objects.create(
        address=f"10.{world.number(tenant)}.0.10",
        subnet=world.get(apps.get_model("inventory.Subnet"), tenant),
        interface=world.get(apps.get_model("inventory.Interface"), tenant),
        dns_name=slug(tenant, "node"),
        description=slug(tenant, "address"),
    )


@factory("inventory.EnrolmentToken")
def _enrolmenttoken(world, tenant):
    from inventory import registration

    token, _ = registration.create_enrolment_token(
        user=world.admin, tenant=tenant, name=slug(tenant, "enrol")
    )
    return token


@factory("inventory.Conflict")
def _conflict(world, tenant):
    Conflict = apps.get_model("inventory.Conflict")
    return Conflict.objects.create(
        tenant=tenant,
        kind=Conflict.Kind.HOSTNAME,
        server=world.get(apps.get_model("inventory.Server"), tenant),
        detail=slug(tenant, "host name taken"),
        report={"hostname": slug(tenant, "node")},
    )


# deploy ------------------------------------------------------------------------------------------


@factory("deploy.OperatingSystem")
def _os(world, tenant):
    return apps.get_model("deploy.OperatingSystem").objects.create(
        name=slug(tenant, "os"), family="redhat", version="9", kernel="os/vmlinuz", tenant=tenant
    )


@factory("deploy.Template")
def _template(world, tenant):
    Template = apps.get_model("deploy.Template")
    return Template.objects.create(
        name=slug(tenant, "ks"), kind=Template.Kind.KICKSTART, content="text\n", tenant=tenant
    )


@factory("deploy.Profile")
def _profile(world, tenant):
    return apps.get_model("deploy.Profile").objects.create(
        name=slug(tenant, "profile"),
        os=world.get(apps.get_model("deploy.OperatingSystem"), tenant),
        install_template=world.get(apps.get_model("deploy.Template"), tenant),
        tenant=tenant,
    )


@factory("deploy.Parameter")
def _parameter(world, tenant):
    return apps.get_model("deploy.Parameter").objects.create(
        name=slug(tenant, "param").replace("-", "_"), value="x", tenant=tenant
    )


@factory("deploy.ServerDeploy")
def _serverdeploy(world, tenant):
    ServerDeploy = apps.get_model("deploy.ServerDeploy")
    return ServerDeploy.objects.create(
        server=world.get(apps.get_model("inventory.Server"), tenant),
        profile=world.get(apps.get_model("deploy.Profile"), tenant),
        next_boot=ServerDeploy.NextBoot.LOCALBOOT,
    )


# virt --------------------------------------------------------------------------------------------


@factory("virt.Pool")
def _pool(world, tenant):
    return apps.get_model("virt.Pool").objects.create(
        name=slug(tenant, "pool"), url=f"https://192.0.2.{world.number(tenant)}/", tenant=tenant
    )


def _pool_object(label, **fields):
    def make(world, tenant):
        return apps.get_model(label).objects.create(
            pool=world.get(apps.get_model("virt.Pool"), tenant),
            uuid=str(uuidlib.uuid4()),
            name=slug(tenant, label.split(".")[1].lower()),
            **fields,
        )

    return make


factory("virt.Host")(_pool_object("virt.Host"))
factory("virt.VmTemplate")(_pool_object("virt.VmTemplate", vcpus=1, memory_bytes=GIB))
factory("virt.Network")(_pool_object("virt.Network"))
factory("virt.StorageRepository")(_pool_object("virt.StorageRepository", size_bytes=100 * GIB))


@factory("virt.Vm")
def _vm(world, tenant):
    Server = apps.get_model("inventory.Server")
    Vm = apps.get_model("virt.Vm")
    server = Server.objects.create(
        hostname=slug(tenant, "vm"), tenant=tenant, kind=Server.Kind.VIRTUAL, uuid=uuidlib.uuid4()
    )
    return Vm.objects.create(
        server=server,
        pool=world.get(apps.get_model("virt.Pool"), tenant),
        uuid=str(server.uuid),
        state=Vm.State.PRESENT,
        power_state=Vm.PowerState.RUNNING,
        host=world.get(apps.get_model("virt.Host"), tenant),
        template=world.get(apps.get_model("virt.VmTemplate"), tenant),
        vcpus=2,
        memory_bytes=2 * GIB,
    )


@factory("virt.Vif")
def _vif(world, tenant):
    vm = world.get(apps.get_model("virt.Vm"), tenant)
    interface = apps.get_model("inventory.Interface").objects.create(
        server=vm.server, name="eth0", mac=f"52:54:00:bb:00:{world.number(tenant):02x}"
    )
    return apps.get_model("virt.Vif").objects.create(
        vm=vm,
        device=0,
        interface=interface,
        network=world.get(apps.get_model("virt.Network"), tenant),
    )


# ca ----------------------------------------------------------------------------------------------


@factory("ca.Authority")
def _authority(world, tenant):
    from ca import services

    return services.create_authority(
        user=world.admin,
        name=slug(tenant, "ca"),
        slug=slug(tenant, "ca"),
        tenant=tenant,
        key_type="ec-p256",
    )


@factory("ca.RevocationList")
def _crl(world, tenant):
    from ca import services

    authority = world.get(apps.get_model("ca.Authority"), tenant)
    services.publish_crl(authority, user=world.admin)
    return apps.get_model("ca.RevocationList").objects.get(authority=authority)


@factory("ca.CertificateRequest")
def _request(world, tenant):
    from ca import services

    return services.generate_request(
        user=world.admin,
        authority=world.get(apps.get_model("ca.Authority"), tenant),
        tenant=tenant,
        names=[f"{slug(tenant, 'pending')}.example"],
    )


@factory("ca.Certificate")
def _certificate(world, tenant):
    from ca import services

    request = services.generate_request(
        user=world.admin,
        authority=world.get(apps.get_model("ca.Authority"), tenant),
        tenant=tenant,
        names=[f"{slug(tenant, 'cert')}.example"],
        sign=True,
        approve_names=True,
    )
    return apps.get_model("ca.Certificate").objects.get(request=request)


def snapshot(obj):
    """The object's stored column values (None once it is gone), to prove nothing changed."""
    model = type(obj)
    row = model._base_manager.filter(pk=obj.pk).values().first()
    return row


@contextmanager
def shared_world(django_db_blocker, members):
    """acme and globex with one object of every model each, and `members` (username ->
    (role, tenant slugs)), built once inside a transaction that is rolled back afterwards:
    for module-scoped fixtures, whose tests each run in a savepoint within it. Users get no
    password (tests log in with force_login or API tokens)."""
    from django.contrib.auth import get_user_model

    from dcportal.models import Role

    with django_db_blocker.unblock(), transaction.atomic():
        tenants = {
            slug: Tenant.objects.create(name=slug.title(), slug=slug) for slug in ("acme", "globex")
        }
        users = {}
        for name, (role, slugs) in members.items():
            users[name] = get_user_model().objects.create(username=name)
            Role.objects.get(name=role).users.add(users[name])
            for slug_ in slugs:
                tenants[slug_].members.add(users[name])
        admin = next(u for u in users.values() if rbac.is_global(u))
        world = World(admin)
        for tenant in tenants.values():
            for model in tenancy_models():
                world.get(model, tenant)
        yield world, tenants, users
        transaction.set_rollback(True)

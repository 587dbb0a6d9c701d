"""The build state machine: what each server boots next, its one-time build token, and the
reports of its installer.

    nodeset(user=, servers=, next_boot=, profile=)   install / localboot / rescue / discovery for
                                 any number of servers in a few bulk statements
    set_deploy(server, user=, profile=, parameters=)   a server's profile and own parameters
    rinstall(user=, servers=, profile=, timeout=)    nodeset install + one tracked job per server
                                 (one-time network boot, power cycle, follow the build)
    boot_config(kind, mac=, base_url=, uuid=)        the iPXE script / PXELinux / GRUB config a
                                 machine gets (records "booted" for a server in install mode)
    fetch_template / report_progress / report_done / report_failed   the installer's side,
                                 authenticated by the build token alone
    expire_build(server_id, job_id=, reason=)        a rinstall that waited too long

Build state changes are audited on the Server (so they show in its history) with the diff of
its deployment row; the token fields appear only as redacted. Reports from installers have no
user: they are recorded with no actor, via "boot".
"""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import BigIntegerField, Case, QuerySet, Value, When
from django.utils import timezone

from dcportal import audit, jobs, rbac, requestcontext, services
from dcportal.models import AuditEvent, Job, JobLog, Tenant
from deploy import rendering, signals, tokens
from deploy.models import Profile, ServerDeploy
from inventory import power_services
from inventory.models import Server, normalise_uuid

logger = logging.getLogger(__name__)

NODESET_PERMISSION = "deploy.nodeset_server"
RINSTALL_PERMISSIONS = (NODESET_PERMISSION, "inventory.power_server", "inventory.set_boot_device")
RINSTALL_JOB_KIND = "deploy.rinstall"
MAX_SERVERS = 10000  # per call, like power actions
BATCH = 2000  # rows per INSERT/UPDATE statement (x 18 columns: under PostgreSQL's 65535 parameters)
MESSAGE_MAX = 300
ERROR_MAX = 4000
MIN_TIMEOUT = 1.0
JOB_TIMEOUT_MARGIN = 120.0  # a rinstall job must end before RQ's own timeout kills it

NextBoot = ServerDeploy.NextBoot
State = ServerDeploy.State
Stage = ServerDeploy.Stage

# The fields nodeset writes; everything else of a row (its parameters) stays as it is.
NODESET_FIELDS = (
    "profile",
    "next_boot",
    "state",
    "stage",
    "progress",
    "message",
    "error",
    "token_nonce",
    "token_hash",
    "token_expires",
    "build_started",
    "booted",
    "template_fetched",
    "last_report",
    "finished",
    "job",
)
_ATTNAMES = {name: ServerDeploy._meta.get_field(name).attname for name in NODESET_FIELDS}
_DEFAULTS = {name: ServerDeploy._meta.get_field(name).get_default() for name in NODESET_FIELDS}

# A rinstall job's progress for each stage of the build; installing spreads the installer's
# own percentage over INSTALLING_SPAN.
STAGE_PROGRESS = {
    Stage.NONE: 10,
    Stage.WAITING: 10,
    Stage.BOOTED: 20,
    Stage.TEMPLATE: 40,
    Stage.INSTALLING: 40,
    Stage.DONE: 100,
    Stage.FAILED: 100,
}
INSTALLING_SPAN = (40, 95)
STAGE_TEXT = {
    Stage.NONE: "waiting for boot",
    Stage.WAITING: "waiting for boot",
    Stage.BOOTED: "booted: boot script fetched",
    Stage.TEMPLATE: "template fetched",
    Stage.INSTALLING: "installing",
    Stage.DONE: "done",
    Stage.FAILED: "failed",
}


class BuildSuperseded(Exception):
    """The server's build no longer belongs to this rinstall job (a new nodeset replaced it)."""


@dataclass(frozen=True)
class NodesetResult:
    next_boot: str
    profile: str | None  # its name
    servers: tuple  # host names, sorted
    server_ids: tuple
    created: int  # servers that had no deployment row before

    @property
    def count(self):
        return len(self.servers)


@dataclass(frozen=True)
class BootAnswer:
    mode: str
    text: str
    hostname: str | None  # None: an unknown machine


# Helpers --------------------------------------------------------------------------------------


def _next_boot(value):
    if value not in NextBoot.values:
        raise ValidationError(
            {"next_boot": f"{value!r} is not a next boot; one of {', '.join(NextBoot.values)}."}
        )
    return value


def _server_ids(servers):
    if isinstance(servers, QuerySet):
        return list(dict.fromkeys(servers.order_by().values_list("pk", flat=True)))
    ids = []
    for item in servers:
        pk = getattr(item, "pk", item)
        try:
            ids.append(int(pk))
        except (TypeError, ValueError):
            raise ValidationError({"servers": f"{item!r} is not a server."}) from None
    return list(dict.fromkeys(ids))


def _quoted(names, limit=10):
    names = sorted(str(name) for name in names)
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def usable_profile(user, profile):
    """The Profile (given as one or by name) if the user may see it, else ValidationError."""
    profiles = rbac.restrict(Profile.objects.select_related("os"), user, "view")
    if isinstance(profile, Profile):
        found = profiles.filter(pk=profile.pk).first()
        label = profile.name
    else:
        found = profiles.filter(name=str(profile)).first()
        label = str(profile)
    if found is None:
        raise ValidationError({"profile": f"No profile named {label!r}."})
    return found


def _check_profile_tenants(profile, rows):
    foreign = [
        hostname for _, hostname, tenant_id, _ in rows if profile.tenant_id not in (None, tenant_id)
    ]
    if foreign:
        raise ValidationError(
            {"profile": f"{profile} belongs to another tenant than {_quoted(foreign)}."}
        )


def _clip(text, limit):
    text = "" if text is None else str(text)
    text = "".join(ch if ch.isprintable() or ch in "\n\t" else "?" for ch in text)
    return text[:limit]


def _server_content_type():
    return ContentType.objects.get_for_model(Server, for_concrete_model=False)


def _event(user, *, server_id, hostname, tenant_id, verb, changes):
    """An unsaved AuditEvent on a server, as audit.record writes them (for bulk_create)."""
    ctx = requestcontext.current()
    actor = user if user is not None and user.is_authenticated else None
    return AuditEvent(
        time=timezone.now(),
        actor=actor,
        actor_name=actor.get_username() if actor else "system",
        token_id=ctx.token_id,
        via=ctx.via or "system",
        action=AuditEvent.Action.ACTION,
        verb=verb,
        content_type=_server_content_type(),
        object_id=str(server_id),
        object_repr=hostname[:200],
        tenant_id=tenant_id,
        changes=changes,
        request_id=ctx.request_id,
        source=ctx.source[:200],
    )


def _row_values(row):
    """{field name: value} of the nodeset fields of a ServerDeploy (foreign keys as ids)."""
    return {name: getattr(row, _ATTNAMES[name]) for name in NODESET_FIELDS}


def _changes(before, after, *, server_status=None):
    changes = audit.diff(ServerDeploy, before, after)
    if server_status and server_status[0] != server_status[1]:
        changes["server_status"] = list(server_status)
    return changes


# nodeset --------------------------------------------------------------------------------------


def _nodeset_values(values, next_boot, profile, now):
    """The row's nodeset fields after entering `next_boot` (values: the fields before)."""
    values = dict(values)
    values.update(next_boot=next_boot, job=None)
    if profile is not None:
        values["profile"] = profile.pk
    if next_boot == NextBoot.INSTALL:
        values.update(
            state=State.BUILDING,
            stage=Stage.WAITING,
            progress=0,
            message="",
            error="",
            build_started=now,
            booted=None,
            template_fetched=None,
            last_report=None,
            finished=None,
            **tokens.issue(),
        )
    else:
        values.update(tokens.burnt())
        if values["state"] == State.BUILDING:
            values.update(
                state=State.IDLE,
                stage=Stage.NONE,
                progress=0,
                message=f"Build cancelled: next boot set to {next_boot}.",
            )
    return values


@transaction.atomic
def nodeset(*, user, servers, next_boot, profile=None, permission=NODESET_PERMISSION):
    """Set the next boot of `servers` (Server objects, ids or a queryset) to `next_boot`.

    install needs a profile usable by every server's tenant and gives each server a new build
    token (an earlier one dies), state building, stage waiting and server status deploying.
    The other modes burn any token; a build in progress is cancelled (state idle, and a server
    status "deploying" goes back to "ready"). `profile` with another mode only records it.

    All or nothing; a constant number of statements per thousand servers. Returns a
    NodesetResult. `permission` is the action checked on the servers: virt installs its VMs
    under virt.install_vm (XAPI's vm-admin), which is not deploy's nodeset.
    """
    rbac.require(user, permission)
    next_boot = _next_boot(next_boot)
    if isinstance(servers, QuerySet):
        labels = {}
    else:
        servers = list(servers)
        labels = {s.pk: s.hostname for s in servers if isinstance(s, Server)}
    ids = _server_ids(servers)
    if not ids:
        raise ValidationError({"servers": "Name at least one server."})
    if len(ids) > MAX_SERVERS:
        raise ValidationError({"servers": f"At most {MAX_SERVERS} servers at once."})
    if next_boot == NextBoot.INSTALL and profile is None:
        raise ValidationError({"profile": "An install needs a profile."})
    profile = usable_profile(user, profile) if profile is not None else None

    scoped = rbac.restrict(Server.objects.filter(pk__in=ids), user, permission)
    rows = list(scoped.order_by("hostname").values_list("pk", "hostname", "tenant_id", "status"))
    found = {pk for pk, *_ in rows}
    outside = [labels.get(pk, f"#{pk}") for pk in ids if pk not in found]
    if outside:
        raise PermissionDenied(f"No such server in your tenants: {_quoted(outside)}.")
    if profile is not None:
        _check_profile_tenants(profile, rows)

    # Lock the rows that exist (in server order, as every nodeset does: no deadlock between
    # two overlapping ranges); the missing ones are inserted by the upsert below.
    existing = {
        row["server_id"]: row
        for row in ServerDeploy.objects.filter(server_id__in=found)
        .order_by("server_id")
        .select_for_update(of=("self",))
        .values("server_id", *(_ATTNAMES[name] for name in NODESET_FIELDS))
    }
    now = timezone.now()
    objects, events = [], []
    for pk, hostname, tenant_id, status in rows:
        stored = existing.get(pk)
        before = {name: stored[_ATTNAMES[name]] for name in NODESET_FIELDS} if stored else {}
        after = _nodeset_values(before or _DEFAULTS, next_boot, profile, now)
        if next_boot == NextBoot.INSTALL:
            new_status = Server.Status.DEPLOYING
        elif status == Server.Status.DEPLOYING:
            new_status = Server.Status.READY
        else:
            new_status = status
        objects.append(
            ServerDeploy(server_id=pk, **{_ATTNAMES[name]: after[name] for name in after})
        )
        changes = _changes(before, after, server_status=(status, new_status))
        changes["next_boot"] = [before.get("next_boot"), next_boot]  # always said, even unchanged
        events.append(
            _event(
                user,
                server_id=pk,
                hostname=hostname,
                tenant_id=tenant_id,
                verb="nodeset",
                changes=changes,
            )
        )
    ServerDeploy.objects.bulk_create(
        objects,
        update_conflicts=True,
        unique_fields=["server"],
        update_fields=[*NODESET_FIELDS, "updated"],
        batch_size=BATCH,
    )
    if next_boot == NextBoot.INSTALL:
        Server.objects.filter(pk__in=found).update(status=Server.Status.DEPLOYING, updated=now)
    else:
        Server.objects.filter(pk__in=found, status=Server.Status.DEPLOYING).update(
            status=Server.Status.READY, updated=now
        )
    AuditEvent.objects.bulk_create(events, batch_size=BATCH)
    return NodesetResult(
        next_boot=next_boot,
        profile=profile.name if profile is not None else None,
        servers=tuple(hostname for _, hostname, _, _ in rows),
        server_ids=tuple(pk for pk, *_ in rows),
        created=len(rows) - len(existing),
    )


# A server's profile and parameters -------------------------------------------------------------


def deploy_of(server):
    """The server's ServerDeploy, or None (it then boots its local disk)."""
    try:
        return server.deploy
    except ObjectDoesNotExist:
        return None


@transaction.atomic
def set_deploy(server, *, user, **fields):
    """Change a server's profile and/or own template parameters (creating its deployment row
    if it has none). The next boot is nodeset's business."""
    unknown = set(fields) - {"profile", "parameters"}
    if unknown:
        raise ValidationError(dict.fromkeys(sorted(unknown), "Set with nodeset, not here."))
    rbac.check_tenant(user, Tenant(pk=server.tenant_id))
    if fields.get("profile") is not None:
        fields["profile"] = usable_profile(user, fields["profile"])
    if "parameters" in fields and fields["parameters"] is None:
        fields["parameters"] = {}
    row = ServerDeploy.objects.select_for_update(of=("self",)).filter(server=server).first()
    if row is None:
        return services.create_object(ServerDeploy, user=user, server=server, **fields)
    return services.update_object(row, user=user, **fields)


# What a machine boots ---------------------------------------------------------------------------


def _server_by_identity(mac, uuid):
    servers = rendering.servers_for_rendering()
    server = servers.filter(interfaces__mac=mac).first() if mac else None
    if server is None and uuid:
        try:
            uuid = normalise_uuid(uuid)
        except ValidationError:
            uuid = None
        if uuid:
            server = servers.filter(uuid=uuid).first()
    return server


def _token_alive(row, now):
    return (
        row.state == State.BUILDING
        and bool(row.token_nonce)
        and row.token_expires is not None
        and row.token_expires > now
    )


def boot_config(kind, *, mac, base_url, uuid=None, discover=True):
    """The `kind` (ipxe, pxelinux, grub) script or config of the machine with `mac` (or, when
    no interface has that MAC, of the server with the SMBIOS `uuid`).

    An unknown machine gets discovery (None with discover=False); a server without a
    deployment row, localboot; one in install mode with a live token gets the installer, its
    token in the URLs, and its build moves to "booted". A build whose token expired boots the
    local disk instead. Raises rendering.TemplateError (and LookupError for an install whose
    profile is gone)."""
    server = _server_by_identity(mac, uuid)
    if server is None:
        if not discover:
            return None
        text = rendering.render_boot(kind, mode=NextBoot.DISCOVERY, base_url=base_url, mac=mac)
        return BootAnswer(NextBoot.DISCOVERY, text, None)
    row = deploy_of(server)
    mode = row.next_boot if row is not None else NextBoot.LOCALBOOT
    token = None
    if mode == NextBoot.INSTALL:
        if _token_alive(row, timezone.now()):
            token = tokens.token_for(row.token_nonce)
        else:
            logger.warning("%s is in install mode without a live build token: localboot", server)
            mode = NextBoot.LOCALBOOT
    text = rendering.render_boot(
        kind, mode=mode, base_url=base_url, mac=mac, server=server, token=token
    )
    if token is not None:
        _record_booted(server, row, kind)
    return BootAnswer(mode, text, server.hostname)


def default_config(kind, *, base_url):
    """The config for no machine in particular (pxelinux.cfg/default, grub.cfg): local disk."""
    text = rendering.render_boot(kind, mode=NextBoot.LOCALBOOT, base_url=base_url, mac="")
    return BootAnswer(NextBoot.LOCALBOOT, text, None)


def config_for(request, *, base_url):
    """The BootAnswer for a deploy.boot.ipxe.ConfigRequest (a PXELinux or GRUB config name),
    the same for HTTP and TFTP; None for a UUID the portal does not know."""
    if request.mac:
        return boot_config(request.kind, mac=request.mac, base_url=base_url)
    if request.uuid:
        return boot_config(
            request.kind, mac=None, uuid=request.uuid, base_url=base_url, discover=False
        )
    return default_config(request.kind, base_url=base_url)


def _record_booted(server, row, kind):
    now = timezone.now()
    with transaction.atomic():
        changed = ServerDeploy.objects.filter(
            pk=row.pk, token_hash=row.token_hash, state=State.BUILDING
        ).update(booted=now, stage=Stage.BOOTED, progress=0, updated=now)
        if not changed or row.stage == Stage.BOOTED:
            return
        after = {**_row_values(row), "booted": now, "stage": Stage.BOOTED, "progress": 0}
        _audit_report(server, "build-booted", _row_values(row), after, extra={"via": kind})
        _job_note(row, f"{server.hostname}: booted, {kind} script fetched", Stage.BOOTED)


# The installer's reports ------------------------------------------------------------------------


def _authenticated(token, *, lock):
    queryset = ServerDeploy.objects.select_related("server")
    if lock:
        queryset = queryset.select_for_update(of=("self",))
    return tokens.authenticate(token, queryset=queryset)


def _audit_report(server, verb, before, after, *, server_status=None, extra=None):
    changes = _changes(before, after, server_status=server_status)
    changes.update(extra or {})
    _event(
        None,
        server_id=server.pk,
        hostname=server.hostname,
        tenant_id=server.tenant_id,
        verb=verb,
        changes=changes,
    ).save()


def job_progress(stage, percent=0):
    """A rinstall job's progress (0-100) for a build at `stage`, `percent` into installing."""
    if stage == Stage.INSTALLING:
        low, high = INSTALLING_SPAN
        return low + (high - low) * max(0, min(100, percent or 0)) // 100
    return STAGE_PROGRESS.get(stage, 10)


def _job_note(row, message, stage, *, percent=0, level="info"):
    """A log line and the progress on the rinstall job following this build, if it runs."""
    if not row.job_id:
        return
    fields = {"progress": job_progress(stage, percent), "message": message[:300]}
    if Job.objects.filter(pk=row.job_id, status=Job.Status.RUNNING).update(**fields):
        JobLog.objects.create(job_id=row.job_id, level=level, message=message)


def fetch_template(token, *, name, base_url):
    """(text, content type) of the install file `name` for the build of `token`; the build
    moves to "template fetched". Raises tokens.InvalidToken, LookupError (no such file) and
    rendering.TemplateError."""
    row = _authenticated(token, lock=False)
    server = rendering.servers_for_rendering().get(pk=row.server_id)
    text, content_type = rendering.render_install(server, base_url=base_url, token=token, name=name)
    now = timezone.now()
    with transaction.atomic():
        current = ServerDeploy.objects.filter(pk=row.pk, token_hash=row.token_hash)
        first = current.filter(stage__in=[Stage.WAITING, Stage.BOOTED]).update(
            stage=Stage.TEMPLATE, template_fetched=now, updated=now
        )
        if first:
            after = {**_row_values(row), "stage": Stage.TEMPLATE, "template_fetched": now}
            _audit_report(server, "build-template", _row_values(row), after, extra={"file": name})
            _job_note(row, f"{server.hostname}: template {name} fetched", Stage.TEMPLATE)
        else:
            current.update(template_fetched=now, updated=now)
    return text, content_type


def _percent(value):
    if value in (None, ""):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError({"percent": f"{value!r} is not a number."}) from None
    if not 0 <= number <= 100:
        raise ValidationError({"percent": "A percentage is between 0 and 100."})
    return int(number)


@transaction.atomic
def report_progress(token, *, percent=None, message=""):
    """The installer is at work: stage installing, its percentage and message."""
    row = _authenticated(token, lock=True)
    percent = _percent(percent)
    message = _clip(message, MESSAGE_MAX)
    before = _row_values(row)
    now = timezone.now()
    row.stage = Stage.INSTALLING
    if percent is not None:
        row.progress = percent
    if message:
        row.message = message
    row.last_report = now
    row.save(update_fields=["stage", "progress", "message", "last_report", "updated"])
    if before["stage"] != Stage.INSTALLING:
        # The first report of a build is a state change; the percentages after it are not.
        _audit_report(row.server, "build-installing", before, _row_values(row))
    said = f"installing {row.progress}%" + (f": {message}" if message else "")
    _job_note(row, f"{row.server.hostname}: {said}", Stage.INSTALLING, percent=row.progress)
    return row


@transaction.atomic
def report_done(token, *, message=""):
    """The install finished: the token is burnt, the server boots its disk and is deployed."""
    row = _authenticated(token, lock=True)
    before = _row_values(row)
    now = timezone.now()
    row.next_boot = NextBoot.LOCALBOOT
    row.state = State.DEPLOYED
    row.stage = Stage.DONE
    row.progress = 100
    row.message = _clip(message, MESSAGE_MAX) or "Installed."
    row.error = ""
    row.finished = row.last_report = now
    for name, value in tokens.burnt().items():
        setattr(row, name, value)
    row.save()
    server = row.server
    Server.objects.filter(pk=server.pk).update(status=Server.Status.DEPLOYED, updated=now)
    _audit_report(
        server,
        "build-done",
        before,
        _row_values(row),
        server_status=(server.status, Server.Status.DEPLOYED),
    )
    _job_note(row, f"{server.hostname}: installed; next boot localboot", Stage.DONE)
    _announce(row)
    return row


def _announce(row):
    """Tell the listeners once the report is committed; a listener's failure is logged and
    never turns the installer's committed report into an error."""
    server_id, state, message = row.server_id, row.state, row.error or row.message

    def send():
        answers = signals.build_finished.send_robust(
            sender=ServerDeploy, server_id=server_id, state=state, message=message
        )
        for receiver, answer in answers:
            if isinstance(answer, Exception):
                logger.error(
                    "build_finished listener %s failed for server %s: %r",
                    getattr(receiver, "__qualname__", receiver),
                    server_id,
                    answer,
                )

    transaction.on_commit(send)


def _fail(row, error, now):
    row.next_boot = NextBoot.LOCALBOOT
    row.state = State.FAILED
    row.stage = Stage.FAILED
    row.error = _clip(error, ERROR_MAX)
    row.message = _clip(error.splitlines()[0] if error else "", MESSAGE_MAX)
    row.finished = row.last_report = now
    for name, value in tokens.burnt().items():
        setattr(row, name, value)
    row.save()
    Server.objects.filter(pk=row.server_id).update(status=Server.Status.FAILED, updated=now)


@transaction.atomic
def report_failed(token, *, message=""):
    """The installer gave up: the build fails with its reason, the token is burnt and the server
    boots its disk until an operator sets it again."""
    row = _authenticated(token, lock=True)
    before = _row_values(row)
    error = _clip(message, ERROR_MAX).strip() or "The installer reported a failure."
    _fail(row, error, timezone.now())
    server = row.server
    _audit_report(
        server,
        "build-failed",
        before,
        _row_values(row),
        server_status=(server.status, Server.Status.FAILED),
    )
    _job_note(row, f"{server.hostname}: install failed: {error}", Stage.FAILED, level="error")
    _announce(row)
    return row


@transaction.atomic
def expire_build(server_id, *, job_id, reason):
    """Fail the build a rinstall job follows when the job gives up waiting. False when the
    build is no longer that job's or no longer building (nothing changed)."""
    row = (
        ServerDeploy.objects.select_for_update(of=("self",))
        .select_related("server")
        .filter(server_id=server_id, job_id=job_id, state=State.BUILDING)
        .first()
    )
    if row is None:
        return False
    before = _row_values(row)
    _fail(row, reason, timezone.now())
    server = row.server
    _audit_report(
        server,
        "build-timeout",
        before,
        _row_values(row),
        server_status=(server.status, Server.Status.FAILED),
    )
    return True


def build_status(server_id):
    """What a rinstall job follows: {state, stage, progress, message, error, job, next_boot}
    of the server's build, or None when the row is gone."""
    return (
        ServerDeploy.objects.filter(server_id=server_id)
        .values("state", "stage", "progress", "message", "error", "job", "next_boot")
        .first()
    )


# rinstall -------------------------------------------------------------------------------------


def _timeout(value):
    limit = settings.RQ_QUEUES["deploy"]["DEFAULT_TIMEOUT"] - JOB_TIMEOUT_MARGIN
    if value in (None, ""):
        return float(min(settings.RINSTALL_TIMEOUT, limit))
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValidationError({"timeout": f"{value!r} is not a number of seconds."}) from None
    if not MIN_TIMEOUT <= value <= limit:
        raise ValidationError(
            {"timeout": f"The timeout is between {MIN_TIMEOUT:g} and {limit:g} seconds."}
        )
    return value


def _current_profiles(user, servers):
    """[(profile, [server ids])] of the servers' own profiles, for a rinstall without one; every
    server must have one (and be in scope: nodeset checks that again)."""
    ids = _server_ids(servers)
    if not ids:
        raise ValidationError({"servers": "Name at least one server."})
    scoped = rbac.restrict(Server.objects.filter(pk__in=ids), user, NODESET_PERMISSION)
    rows = list(scoped.values_list("pk", "hostname", "deploy__profile"))
    missing = [hostname for _, hostname, profile_id in rows if profile_id is None]
    if missing:
        raise ValidationError(
            {"profile": f"Name a profile: {_quoted(missing)} have none of their own."}
        )
    groups = {}
    for pk, _, profile_id in rows:
        groups.setdefault(profile_id, []).append(pk)
    profiles = Profile.objects.in_bulk(list(groups))
    return [(profiles[profile_id], pks) for profile_id, pks in sorted(groups.items())]


@transaction.atomic
def rinstall(*, user, servers, profile=None, timeout=None):
    """Reinstall `servers` with `profile` (None: each with its own): nodeset install, then one
    tracked job per server on the "deploy" queue that sets a one-time network boot,
    power-cycles the server (or switches it on) and follows its build until done, failed or
    `timeout` seconds (default settings.RINSTALL_TIMEOUT). All or nothing: every server must
    be in scope and have a BMC. Returns the Job rows, by host name."""
    for permission in RINSTALL_PERMISSIONS:
        rbac.require(user, permission)
    timeout = _timeout(timeout)
    if profile is not None:
        results = [nodeset(user=user, servers=servers, next_boot=NextBoot.INSTALL, profile=profile)]
    else:
        results = [
            nodeset(user=user, servers=ids, next_boot=NextBoot.INSTALL, profile=current)
            for current, ids in _current_profiles(user, servers)
        ]
    ids = [pk for result in results for pk in result.server_ids]
    names = dict(zip(ids, [name for result in results for name in result.servers], strict=True))
    profiles = {pk: result.profile for result in results for pk in result.server_ids}
    with_bmc = power_services.powered_ids(ids)
    without = [names[pk] for pk in ids if pk not in with_bmc]
    if without:
        raise ValidationError({"servers": f"No BMC configured for {_quoted(without)}."})
    started = []
    for server in Server.objects.filter(pk__in=ids).select_related("tenant").order_by("hostname"):
        started.append(
            jobs.enqueue(
                RINSTALL_JOB_KIND,
                user=user,
                obj=server,
                params={"server_id": server.pk, "timeout": timeout},
                title=f"Reinstall {server.hostname} with {profiles[server.pk]}",
            )
        )
    for chunk in range(0, len(started), BATCH):
        batch = started[chunk : chunk + BATCH]
        whens = [When(server_id=int(job.object_id), then=Value(job.pk)) for job in batch]
        ServerDeploy.objects.filter(server_id__in=[int(job.object_id) for job in batch]).update(
            job=Case(*whens, output_field=BigIntegerField())
        )
    return started

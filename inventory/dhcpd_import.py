"""Import an ISC dhcpd.conf into the inventory: subnets with their DHCP ranges, servers, their
interfaces and fixed addresses.

    result = import_dhcpd(text, user=user, tenant=tenant, dry_run=True, source="dhcpd.conf")

Planning reads the parsed file and the database and decides, per object, create / update /
unchanged, or records an error at the line it comes from. Applying writes every object through
dcportal.services (permission, tenant, full_clean, audit) inside one transaction: any error and
nothing is written. A dry run applies too, in a savepoint that is always rolled back, so it meets
every check the real run would (database constraints included) and still changes nothing.

What is matched (the file is the newer truth about DHCP, the inventory about everything else):
- a subnet by its exact network; options the file gives (routers, name servers, domain-name)
  update gateway, dns_servers and domain; a subnet overlapping another one is an error;
- a range by its exact start and end in its subnet (kind "dhcp"); an overlap is an error;
- a server by the MAC of `hardware ethernet` first, then by host name (`option host-name`, else
  the host block's name); several host blocks with one host name are one server's interfaces;
- an interface by MAC; a new one is named eth0, eth1... and is the boot interface when the server
  has none yet;
- a `fixed-address` by address, in the file's or the database's subnet that holds it;
- `filename`, `next-server` and `server-name` (inherited from groups too) go into
  `server.attributes["dhcp"]`, replacing what an earlier import put there.
The import only adds and updates: objects absent from the file are left alone.
"""

import bisect
import ipaddress
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction

from dcportal import rbac, services
from dcportal.models import Tenant
from deploy.dhcp import isc_parser
from deploy.dhcp.isc_parser import Problem
from inventory.models import Interface, IPAddress, IPRange, Server, Subnet, validate_hostname

# What an import may do; checked up front so a refusal comes before any work.
IMPORT_PERMISSIONS = (
    "inventory.add_server",
    "inventory.change_server",
    "inventory.add_interface",
    "inventory.add_subnet",
    "inventory.change_subnet",
    "inventory.add_iprange",
    "inventory.add_ipaddress",
    "inventory.change_ipaddress",
)

CREATE, UPDATE, UNCHANGED = "create", "update", "unchanged"
_SIGNS = {CREATE: "+", UPDATE: "~", UNCHANGED: "="}


class DhcpdImportError(Exception):
    """The file cannot be imported; nothing was written. `problems` carry line numbers."""

    def __init__(self, problems, warnings=()):
        self.problems = sorted(problems, key=lambda p: (p.line, p.column or 0))
        self.warnings = list(warnings)
        super().__init__("; ".join(str(p) for p in self.problems))


@dataclass
class Change:
    """One object the import creates, updates or finds unchanged."""

    kind: str  # subnet, range, server, interface, address
    action: str
    label: str
    line: int
    changes: dict = field(default_factory=dict)  # field -> [old, new], for people
    model: type | None = None
    target: object = None  # the existing object; the saved one after apply
    fields: dict = field(default_factory=dict)  # what apply sets; Change values are references

    def as_dict(self):
        return {
            "kind": self.kind,
            "action": self.action,
            "object": self.label,
            "line": self.line,
            "changes": {name: _jsonable(values) for name, values in self.changes.items()},
        }


@dataclass
class ImportResult:
    source: str
    tenant: str
    dry_run: bool
    changes: list
    warnings: list

    @property
    def applied(self):
        return not self.dry_run

    def summary(self):
        counts = {CREATE: 0, UPDATE: 0, UNCHANGED: 0}
        for change in self.changes:
            counts[change.action] += 1
        return counts

    def as_dict(self):
        return {
            "source": self.source,
            "tenant": self.tenant,
            "dry_run": self.dry_run,
            "applied": self.applied,
            "summary": self.summary(),
            "changes": [change.as_dict() for change in self.changes],
            "warnings": [problem_dict(w) for w in self.warnings],
        }

    def diff_lines(self, *, verbose=False):
        """The plan as a readable diff: + create, ~ update, = unchanged (listed when verbose)."""
        lines = []
        for change in self.changes:
            if change.action == UNCHANGED and not verbose:
                continue
            lines.append(
                f"{_SIGNS[change.action]} {change.kind} {change.label}  "
                f"({self.source}:{change.line})"
            )
            for name, (old, new) in change.changes.items():
                new_text = _show(new)
                if change.action == CREATE:
                    lines.append(f"      {name}: {new_text}")
                else:
                    lines.append(f"      {name}: {_show(old)} -> {new_text}")
        counts = self.summary()
        if self.dry_run:
            lines.append(
                f"{counts[CREATE]} to create, {counts[UPDATE]} to update, "
                f"{counts[UNCHANGED]} unchanged (dry run: nothing was written)"
            )
        else:
            lines.append(
                f"{counts[CREATE]} created, {counts[UPDATE]} updated, {counts[UNCHANGED]} unchanged"
            )
        return lines


def problem_dict(problem):
    return {"line": problem.line, "column": problem.column, "message": problem.message}


def located(source, problem, *, level=""):
    """'FILE:LINE: message', the form compilers use and editors jump to."""
    column = f" (column {problem.column})" if problem.column else ""
    prefix = f"{level}: " if level else ""
    return f"{source}:{problem.line}: {prefix}{problem.message}{column}"


def _show(value):
    if value is None or value == "" or value == []:
        return "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return " ".join(f"{key}={item}" for key, item in value.items())
    return str(value)


def _jsonable(value):
    # Plan values are plain data plus ipaddress objects (gateway, dns_servers).
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


class _Rollback(Exception):
    """Raised at the end of a dry run to undo everything it wrote."""


def import_dhcpd(text, *, user, tenant, dry_run=False, source="dhcpd.conf"):
    """Parse `text`, plan and apply (or, with dry_run, apply and roll back). Returns an
    ImportResult; raises DhcpdImportError (nothing written) or PermissionDenied."""
    for permission in IMPORT_PERMISSIONS:
        rbac.require(user, permission)
    rbac.check_tenant(user, tenant)
    try:
        config = isc_parser.parse(text)
    except isc_parser.DhcpdConfigError as exc:
        raise DhcpdImportError(exc.problems) from None
    result = None
    try:
        with transaction.atomic():
            planner = _Planner(config, tenant)
            changes = planner.plan()
            if planner.errors:
                raise DhcpdImportError(planner.errors, planner.warnings)
            _apply(changes, user)
            result = ImportResult(
                source=source,
                tenant=tenant.slug,
                dry_run=dry_run,
                changes=changes,
                warnings=planner.warnings,
            )
            if dry_run:
                raise _Rollback
    except _Rollback:
        pass
    return result


# Planning ------------------------------------------------------------------------------------


@dataclass
class _ServerPlan:
    change: Change
    hostname: str
    line: int
    block: str  # the name of the host block that introduced it
    existing: Server | None = None
    interface_names: set = field(default_factory=set)
    has_boot: bool = False
    dhcp: dict | None = None
    interfaces: list = field(default_factory=list)  # Change
    addresses: list = field(default_factory=list)  # Change


class _SubnetIndex:
    """Subnets by address, for "which subnet holds this address?". Subnets never overlap (the
    database refuses it, and so does the parser within a file), so the one with the greatest
    network address not above the address is the only candidate."""

    def __init__(self, entries):
        self.keys = {4: [], 6: []}
        self.entries = {4: [], 6: []}
        by_start = sorted(entries.items(), key=lambda i: (i[0].version, int(i[0].network_address)))
        for network, entry in by_start:
            self.keys[network.version].append(int(network.network_address))
            self.entries[network.version].append((network, entry))

    def find(self, address):
        version = address.version
        position = bisect.bisect(self.keys[version], int(address)) - 1
        if position < 0:
            return None
        network, entry = self.entries[version][position]
        return entry if address in network else None


class _Planner:
    def __init__(self, config, tenant):
        self.config = config
        self.tenant = tenant
        self.errors = []
        self.warnings = list(config.warnings)
        self._warned = set()
        self.subnet_changes = []  # subnets and their ranges, in file order
        self.subnets = {}  # network -> (Subnet change or Subnet, tenant id)
        self.index = None
        self.servers = []  # _ServerPlan, in file order
        self.servers_by_name = {}
        self.servers_by_pk = {}

    def error(self, line, message):
        self.errors.append(Problem(line, message))

    def warn(self, line, message):
        if (line, message) not in self._warned:
            self._warned.add((line, message))
            self.warnings.append(Problem(line, message))

    def plan(self):
        self.plan_subnets()
        self.plan_hosts()
        changes = list(self.subnet_changes)
        for plan in self.servers:
            changes.append(plan.change)
            changes.extend(plan.interfaces)
            changes.extend(plan.addresses)
        self.warnings.sort(key=lambda p: (p.line, p.column or 0))
        return changes

    # Subnets ---------------------------------------------------------------------------------

    def plan_subnets(self):
        for existing in Subnet.objects.only("id", "network", "tenant_id"):
            self.subnets[existing.network] = (existing, existing.tenant_id)
        for subnet in self.config.subnets:
            self.plan_subnet(subnet)
        self.index = _SubnetIndex(self.subnets)

    def plan_subnet(self, subnet):
        network = subnet.network
        overlapping = list(Subnet.objects.filter(network__overlaps=network))
        same = next((s for s in overlapping if s.network == network), None)
        if same is not None and same.tenant_id != self.tenant.pk:
            self.error(subnet.line, f"subnet {network} belongs to another tenant")
            return
        if same is None and overlapping:
            other = overlapping[0]
            whose = (
                f"the existing subnet {other.network}"
                if other.tenant_id == self.tenant.pk
                else "an existing subnet of another tenant"
            )
            self.error(subnet.line, f"subnet {network} overlaps {whose}")
            return
        wanted = self.subnet_fields(subnet)
        if same is None:
            fields = {"network": network, "tenant": self.tenant, **wanted}
            if subnet.shared_network:
                fields["name"] = subnet.shared_network[:100]
            change = Change(
                "subnet",
                CREATE,
                str(network),
                subnet.line,
                changes={k: [None, v] for k, v in fields.items() if k not in ("network", "tenant")},
                model=Subnet,
                fields=fields,
            )
        else:
            diff = {
                name: [getattr(same, name), value]
                for name, value in wanted.items()
                if _comparable(getattr(same, name)) != _comparable(value)
            }
            change = Change(
                "subnet",
                UPDATE if diff else UNCHANGED,
                str(network),
                subnet.line,
                changes=diff,
                model=Subnet,
                target=same,
                fields={name: values[1] for name, values in diff.items()},
            )
        self.subnet_changes.append(change)
        self.subnets[network] = (change, self.tenant.pk)
        self.plan_ranges(subnet, change, same)

    def subnet_fields(self, subnet):
        """The subnet fields the file speaks about; the others stay as they are."""
        network, fields = subnet.network, {}
        if subnet.routers:
            gateways = [
                address
                for address in map(_ip_or_none, subnet.routers)
                if address is not None and address in network
            ]
            if gateways:
                fields["gateway"] = gateways[0]
            else:
                self.warn(
                    subnet.line,
                    f"subnet {network}: no router address inside the subnet "
                    f"({', '.join(subnet.routers)}); gateway not recorded",
                )
        if subnet.name_servers:
            servers = [_ip_or_none(value) for value in subnet.name_servers]
            named = [v for v, ip in zip(subnet.name_servers, servers, strict=True) if ip is None]
            if named:
                self.warn(
                    subnet.line,
                    f"subnet {network}: name servers given by name are not recorded "
                    f"({', '.join(named)})",
                )
            if any(servers):
                fields["dns_servers"] = [ip for ip in servers if ip is not None]
        if subnet.domain_name:
            domain = subnet.domain_name.strip().lower().rstrip(".")
            try:
                validate_hostname(domain)
            except ValidationError:
                self.warn(
                    subnet.line,
                    f"subnet {network}: domain-name {subnet.domain_name!r} is not one domain; "
                    "not recorded",
                )
            else:
                fields["domain"] = domain
        return fields

    def plan_ranges(self, subnet, subnet_change, existing_subnet):
        existing = list(IPRange.objects.filter(subnet=existing_subnet)) if existing_subnet else []
        seen = []
        for item in sorted(subnet.ranges, key=lambda r: r.start):
            label = f"{item.start}-{item.end}"
            clash = next((r for r in seen if r.start <= item.end and item.start <= r.end), None)
            if clash is not None:
                self.error(item.line, f"range {label} overlaps the range on line {clash.line}")
                continue
            seen.append(item)
            same = next((r for r in existing if (r.start, r.end) == (item.start, item.end)), None)
            if same is not None:
                self.subnet_changes.append(
                    Change("range", UNCHANGED, label, item.line, model=IPRange, target=same)
                )
                continue
            other = next((r for r in existing if r.start <= item.end and item.start <= r.end), None)
            if other is not None:
                self.error(item.line, f"range {label} overlaps the existing range {other}")
                continue
            description = "dynamic-bootp" if item.dynamic_bootp else ""
            fields = {
                "subnet": subnet_change,
                "start": item.start,
                "end": item.end,
                "kind": IPRange.Kind.DHCP,
                "description": description,
            }
            self.subnet_changes.append(
                Change(
                    "range",
                    CREATE,
                    label,
                    item.line,
                    changes={"subnet": [None, str(subnet.network)], "kind": [None, "dhcp"]},
                    model=IPRange,
                    fields=fields,
                )
            )

    # Hosts -----------------------------------------------------------------------------------

    def plan_hosts(self):
        hosts = []
        for host in self.config.hosts:
            if host.mac is None:
                what = f"hardware {host.hardware_type}" if host.hardware_type else "no MAC address"
                self.warn(host.line, f"host {host.name}: {what}; skipped (servers match by MAC)")
                continue
            hosts.append(host)
        macs = {host.mac for host in hosts}
        names = {_hostname(host) for host in hosts}
        addresses = {
            ipaddress.ip_address(a.value) for host in hosts for a in host.fixed_addresses if a.is_ip
        }
        self.db_interfaces = {
            i.mac: i for i in Interface.objects.select_related("server").filter(mac__in=macs)
        }
        self.db_servers = {s.hostname: s for s in Server.objects.filter(hostname__in=names)}
        self.db_addresses = {
            a.address: a
            for a in IPAddress.objects.select_related("subnet", "interface__server").filter(
                address__in=[str(a) for a in addresses]
            )
        }
        self.seen_macs = {}
        self.seen_addresses = {}
        for host in hosts:
            self.plan_host(host)

    def plan_host(self, host):
        earlier = self.seen_macs.get(host.mac)
        if earlier is not None:
            self.error(
                host.hardware_line or host.line,
                f"host {host.name}: MAC {host.mac} is also the MAC of host {earlier.name} "
                f"on line {earlier.line}",
            )
            return
        self.seen_macs[host.mac] = host
        hostname = _hostname(host)
        try:
            validate_hostname(hostname)
        except ValidationError:
            self.error(
                host.line,
                f"host {host.name}: {hostname!r} is not a valid host name (letters, digits and "
                "hyphens in dot-separated labels)",
            )
            return
        plan = self.server_plan(host, hostname)
        if plan is None:
            return
        interface = self.plan_interface(host, plan)
        self.plan_dhcp(host, plan)
        for fixed in host.fixed_addresses:
            self.plan_address(host, fixed, plan, interface)

    def server_plan(self, host, hostname):
        """The server this host block describes, planned once per server; None on an error."""
        interface = self.db_interfaces.get(host.mac)
        if interface is not None:
            server = interface.server
            if server.tenant_id != self.tenant.pk:
                self.error(
                    host.hardware_line or host.line,
                    f"host {host.name}: MAC {host.mac} belongs to a server of another tenant",
                )
                return None
            plan = self.servers_by_pk.get(server.pk)
            if plan is not None:
                if plan.hostname != hostname:
                    self.error(
                        host.line,
                        f"host {host.name}: MAC {host.mac} is on server {server.hostname}, "
                        f"which host {plan.block} on line {plan.line} names {plan.hostname}",
                    )
                    return None
                return plan
            if not self.hostname_free(host, hostname, server):
                return None
            return self.new_plan(host, hostname, server)
        plan = self.servers_by_name.get(hostname)
        if plan is not None:
            return plan  # another interface of a server an earlier host block planned
        server = self.db_servers.get(hostname)
        if server is not None:
            if server.tenant_id != self.tenant.pk:
                self.error(
                    host.line,
                    f"host {host.name}: host name {hostname} belongs to a server of another tenant",
                )
                return None
            plan = self.servers_by_pk.get(server.pk)
            if plan is not None:  # that server is being renamed by an earlier host block
                self.error(
                    host.line,
                    f"host {host.name}: server {hostname} is renamed to {plan.hostname} by host "
                    f"{plan.block} on line {plan.line}",
                )
                return None
        return self.new_plan(host, hostname, server)

    def hostname_free(self, host, hostname, server):
        planned = self.servers_by_name.get(hostname)
        if planned is not None:
            self.error(
                host.line,
                f"host {host.name}: host name {hostname} is already given to another server "
                f"by host {planned.block} on line {planned.line}",
            )
            return False
        holder = self.db_servers.get(hostname)
        if holder is not None and holder.pk != server.pk:
            whose = (
                f"server {holder.hostname}"
                if holder.tenant_id == self.tenant.pk
                else "a server of another tenant"
            )
            self.error(
                host.line,
                f"host {host.name}: MAC {host.mac} is on server {server.hostname}, and the host "
                f"name {hostname} is taken by {whose}",
            )
            return False
        return True

    def new_plan(self, host, hostname, server):
        if server is None:
            change = Change(
                "server",
                CREATE,
                hostname,
                host.line,
                changes={"hostname": [None, hostname]},
                model=Server,
                fields={"hostname": hostname, "tenant": self.tenant, "attributes": {}},
            )
        else:
            change = Change("server", UNCHANGED, hostname, host.line, model=Server, target=server)
            if server.hostname != hostname:
                self.set_field(change, "hostname", server.hostname, hostname)
        plan = _ServerPlan(change, hostname, host.line, host.name, existing=server)
        if server is not None:
            for name, boot in Interface.objects.filter(server=server).values_list("name", "boot"):
                plan.interface_names.add(name)
                plan.has_boot = plan.has_boot or boot
        self.servers.append(plan)
        self.servers_by_name[hostname] = plan
        if server is not None:
            self.servers_by_pk[server.pk] = plan
        return plan

    @staticmethod
    def set_field(change, name, old, new):
        change.changes[name] = [old, new]
        change.fields[name] = new
        if change.action == UNCHANGED:
            change.action = UPDATE

    def plan_interface(self, host, plan):
        existing = self.db_interfaces.get(host.mac)
        label = f"{host.mac} on {plan.hostname}"
        if existing is not None:
            change = Change(
                "interface",
                UNCHANGED,
                f"{label} ({existing.name})",
                host.hardware_line or host.line,
                model=Interface,
                target=existing,
            )
        else:
            name = _free_name(plan.interface_names)
            plan.interface_names.add(name)
            boot = not plan.has_boot
            plan.has_boot = True
            change = Change(
                "interface",
                CREATE,
                f"{label} ({name})",
                host.hardware_line or host.line,
                changes={"name": [None, name], "mac": [None, host.mac], "boot": [None, boot]},
                model=Interface,
                fields={"server": plan.change, "name": name, "mac": host.mac, "boot": boot},
            )
        plan.interfaces.append(change)
        return change

    def plan_dhcp(self, host, plan):
        dhcp = {
            key: value
            for key, value in (
                ("filename", host.filename),
                ("next_server", host.next_server),
                ("server_name", host.server_name),
            )
            if value
        }
        if not dhcp:
            return
        if plan.dhcp is not None:
            if plan.dhcp != dhcp:
                self.warn(
                    host.line,
                    f"host {host.name}: its boot settings differ from those of host "
                    f"{plan.block} on line {plan.line} for the same server; those are kept",
                )
            return
        plan.dhcp = dhcp
        change = plan.change
        if change.action == CREATE:
            change.fields["attributes"] = {"dhcp": dhcp}
            change.changes["attributes.dhcp"] = [None, dhcp]
            return
        attributes = plan.existing.attributes if isinstance(plan.existing.attributes, dict) else {}
        old = attributes.get("dhcp")
        if old != dhcp:
            change.changes["attributes.dhcp"] = [old, dhcp]
            change.fields["attributes"] = {**attributes, "dhcp": dhcp}
            if change.action == UNCHANGED:
                change.action = UPDATE

    def plan_address(self, host, fixed, plan, interface):
        if not fixed.is_ip:
            self.warn(
                fixed.line,
                f"host {host.name}: fixed-address {fixed.value} is a host name; names are not "
                "resolved, so no address is recorded",
            )
            return
        address = ipaddress.ip_address(fixed.value)
        earlier = self.seen_addresses.get(address)
        if earlier is not None:
            self.error(
                fixed.line,
                f"host {host.name}: fixed-address {address} is also given to host {earlier.name} "
                f"on line {earlier.line}",
            )
            return
        self.seen_addresses[address] = host
        found = self.index.find(address)
        if found is None:
            self.error(
                fixed.line,
                f"host {host.name}: fixed-address {address} is outside every subnet (declare the "
                "subnet in the file or create it first)",
            )
            return
        subnet_ref, tenant_id = found
        if tenant_id != self.tenant.pk:
            self.error(
                fixed.line,
                f"host {host.name}: fixed-address {address} is in a subnet of another tenant",
            )
            return
        network = _network_of(subnet_ref)
        if (
            network.version == 4
            and network.num_addresses > 2
            and address in (network.network_address, network.broadcast_address)
        ):
            self.error(
                fixed.line,
                f"host {host.name}: fixed-address {address} is the network or broadcast address "
                f"of {network}",
            )
            return
        label = f"{address} on {plan.hostname}"
        existing = self.db_addresses.get(address)
        if existing is None:
            plan.addresses.append(
                Change(
                    "address",
                    CREATE,
                    label,
                    fixed.line,
                    changes={
                        "subnet": [None, str(network)],
                        "interface": [None, host.mac],
                        "dns_name": [None, plan.hostname],
                    },
                    model=IPAddress,
                    fields={
                        "address": address,
                        "subnet": subnet_ref,
                        "interface": interface,
                        "dns_name": plan.hostname,
                        "status": IPAddress.Status.ACTIVE,
                    },
                )
            )
            return
        if existing.subnet.tenant_id != self.tenant.pk:
            self.error(fixed.line, f"host {host.name}: {address} belongs to another tenant")
            return
        current = existing.interface
        if current is not None and current.mac != host.mac:
            self.error(
                fixed.line,
                f"host {host.name}: {address} is already assigned to "
                f"{current.server.hostname} ({current.mac})",
            )
            return
        change = Change("address", UNCHANGED, label, fixed.line, model=IPAddress, target=existing)
        if current is None:
            change.changes["interface"] = [None, host.mac]
            change.fields["interface"] = interface
            change.action = UPDATE
        if existing.dns_name != plan.hostname:
            self.set_field(change, "dns_name", existing.dns_name, plan.hostname)
        plan.addresses.append(change)


# Applying ------------------------------------------------------------------------------------


def _apply(changes, user):
    for change in changes:
        if change.action == UNCHANGED:
            continue
        fields = {name: _resolve(value) for name, value in change.fields.items()}
        try:
            if change.action == CREATE:
                change.target = services.create_object(change.model, user=user, **fields)
            else:
                change.target = services.update_object(change.target, user=user, **fields)
        except ValidationError as exc:
            raise DhcpdImportError(
                [Problem(change.line, f"{change.kind} {change.label}: {_message(exc)}")]
            ) from None


def _resolve(value):
    # A planned object referred to by another (a new server's interface): saved by now.
    return value.target if isinstance(value, Change) else value


# Helpers -------------------------------------------------------------------------------------


def _hostname(host):
    return (host.host_name or host.name).strip().lower().rstrip(".")


def _free_name(taken):
    number = 0
    while f"eth{number}" in taken:
        number += 1
    return f"eth{number}"


def _ip_or_none(value):
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _network_of(subnet_ref):
    if isinstance(subnet_ref, Change):
        return subnet_ref.fields.get("network") or subnet_ref.target.network
    return subnet_ref.network


def _comparable(value):
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return None if value in (None, "") else str(value)


def _message(exc):
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in exc.message_dict.items())
    return " ".join(exc.messages)


def resolve_tenant(user, slug):
    """The tenant an import goes into: the one named, or the user's only tenant. Another
    tenant's slug reads as unknown, as everywhere else."""
    if slug:
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None or not (rbac.is_global(user) or tenant.pk in rbac.tenant_ids(user)):
            raise ValidationError({"tenant": f"No tenant {slug!r}."})
        return tenant
    ids = rbac.tenant_ids(user)
    if len(ids) == 1:
        return Tenant.objects.get(pk=next(iter(ids)))
    raise ValidationError({"tenant": "Name the tenant to import into (its slug)."})


def decode(data):
    """dhcpd.conf is ASCII in practice; old hand-written files may carry Latin-1 comments."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")

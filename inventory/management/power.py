"""What rpower, rsetboot and rvitals share: resolve the node range, run the action on every node
in a thread pool (in this process, so no worker is needed), print one line per node as the
results come, then a summary; the exit status is non-zero if any node failed.

Parallelism is bounded twice: the pool has at most POWER_MAX_PARALLEL threads, and every action
takes its slot in the same Redis semaphores as the power jobs (global and per rack), so a range
run from the CLI and jobs run by workers share one limit.
"""

import contextvars
import itertools
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed

from django.conf import settings
from django.core.management.base import CommandError
from django.db import connections

from dcportal import rbac
from dcportal.management.base import PortalCommand
from inventory import power_services, selectors


def interleaved(servers):
    """Servers ordered round-robin over their racks, so the first threads do not all queue up
    behind one rack's limit while other racks wait."""
    by_rack = defaultdict(list)
    for server in servers:
        by_rack[server.rack_id].append(server)
    rounds = itertools.zip_longest(*by_rack.values())
    return [server for batch in rounds for server in batch if server is not None]


class PowerCommand(PortalCommand):
    """Subclasses parse their arguments into (action, persistent) and may format results."""

    def add_noderange_argument(self, parser):
        parser.add_argument("noderange", help="Node range, e.g. node[01-20],db1 or a tag.")

    def run_range(self, options, noderange, action, *, persistent=False):
        user = self.acting_user(options)
        # The action first: a user without it hears "permission denied", not "no such node".
        rbac.require(user, power_services.permission_for(action))
        rbac.tenant_ids(user)  # fill the per-user caches once, before threads share the user
        servers = selectors.resolve_noderange(noderange, user=user).select_related("rack")
        servers = interleaved(list(servers.order_by("hostname")))
        counts = {"ok": 0, "requested": 0, "failed": 0}
        workers = max(1, min(settings.POWER_MAX_PARALLEL, len(servers)))
        with ThreadPoolExecutor(workers, thread_name_prefix="power") as pool:
            futures = [
                # Each task runs in a copy of this context: the CLI's request id and source
                # reach the audit events written from the threads.
                pool.submit(
                    contextvars.copy_context().run, _run_one, user, server, action, persistent
                )
                for server in servers
            ]
            for future in as_completed(futures):
                result = future.result()
                counts[result["status"]] += 1
                for line in self.format_result(result):
                    self.stdout.write(line)
                self.stdout.flush()
        total = len(servers)
        parts = [f"{counts['ok']} ok"]
        if counts["requested"]:
            parts.append(f"{counts['requested']} requested")
        parts.append(f"{counts['failed']} failed")
        self.stdout.write(f"{total} node{'s' if total != 1 else ''}: {', '.join(parts)}")
        if counts["failed"]:
            raise CommandError(
                f"{counts['failed']} of {total} node{'s' if total != 1 else ''} failed",
                returncode=1,
            )

    def format_result(self, result):
        host = result["hostname"]
        if not result["ok"]:
            return [f"{host}: Error: {result['message']}"]
        return [f"{host}: {result['message']}"]


def _run_one(user, server, action, persistent):
    try:
        return power_services.run_power_action(
            user=user, server=server, action=action, persistent=persistent
        )
    except Exception as exc:  # one node's surprise must not hide the other nodes' results
        message = " ".join(getattr(exc, "messages", None) or [str(exc) or type(exc).__name__])
        return {
            "server": server.pk,
            "hostname": server.hostname,
            "action": action,
            "ok": False,
            "status": power_services.FAILED,
            "state": None,
            "message": message,
            "error": power_services.INTERNAL,
        }
    finally:
        # Each pool thread opened its own database connection; it must not outlive the run.
        connections.close_all()

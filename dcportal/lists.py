"""The platform's lists as portal tables (dcportal.tables): jobs, the audit trail, API tokens."""

from django.urls import reverse
from django.utils import timezone

from dcportal.filtersets import AuditEventFilterSet, JobFilterSet, OwnTokenFilterSet
from dcportal.tables import BulkAction, Column, Table


def _job_user(job):
    return job.user.username if job.user_id else "system"


def _audit_action(event):
    return f"{event.action}: {event.verb}" if event.verb else event.action


def _audit_type(event):
    return f"{event.content_type.app_label}.{event.content_type.model}"


def _audit_changes(event):
    return "; ".join(
        f"{name}: {' → '.join(map(str, change)) if isinstance(change, list) else change}"
        for name, change in (event.changes or {}).items()
    )


def _actor(event):
    return f"{event.actor_name} (token {event.token_id})" if event.token_id else event.actor_name


def token_state(token):
    if token.revoked:
        return "revoked"
    if token.expires and token.expires <= timezone.now():
        return "expired"
    return "active"


class JobTable(Table):
    name = "jobs"
    filterset_class = JobFilterSet
    search_fields = ("kind", "object_repr", "message")
    default_sort = "-created"
    empty_text = "No jobs match."
    columns = (
        Column(
            "id",
            "Job",
            value=lambda j: f"#{j.pk}",
            sort="id",
            link=lambda j: reverse("job", args=[j.pk]),
        ),
        Column("kind", "Kind", sort="kind"),
        Column("object", "Object", value="object_repr", sort="object_repr"),
        Column("status", "Status", sort="status", cell="badge"),
        Column("progress", "Progress", sort="progress", cell="progress"),
        Column("message", "Step", default=False),
        Column("queue", "Queue", sort="queue", default=False),
        Column("user", "By", value=_job_user),
        Column("tenant", "Tenant", value="tenant.name", default=False),
        Column("created", "Created", sort="created"),
        Column("started", "Started", default=False),
        Column("finished", "Finished", default=False),
    )

    @property
    def bulk_actions(self):
        return (
            BulkAction(
                "cancel",
                "Cancel",
                reverse("jobs"),
                permission="dcportal.cancel_job",
                danger=True,
            ),
        )

    @property
    def busy(self):
        """Whether a listed job is still queued or running: the page then refreshes itself."""
        return any(row.obj.status not in row.obj.FINISHED for row in self.rows)


class AuditTable(Table):
    name = "audit"
    filterset_class = AuditEventFilterSet
    search_fields = ("object_repr", "actor_name")
    default_sort = "-time"
    empty_text = "No changes recorded."
    columns = (
        Column("time", "Time", sort="time"),
        Column("actor", "Actor", value=_actor, sort="actor_name"),
        Column("via", "Via", sort="via"),
        Column("action", "Action", value=_audit_action, sort="action"),
        Column("type", "Type", value=_audit_type, default=False, cell="mono"),
        Column("object", "Object", value="object_repr", sort="object_repr"),
        Column("object_id", "Object id", default=False, cell="mono"),
        Column("changes", "Changes", value=_audit_changes),
        Column("tenant", "Tenant", value="tenant.name", default=False),
        Column("source", "Source", default=False, cell="mono"),
        Column(
            "request_id",
            "Request",
            value=lambda e: e.request_id[:8],
            link=lambda e: f"{reverse('audit')}?request_id={e.request_id}" if e.request_id else "",
            cell="mono",
        ),
    )


class TokenTable(Table):
    """The user's own API tokens."""

    name = "tokens"
    filterset_class = OwnTokenFilterSet
    search_fields = ("name", "prefix")
    default_sort = "-created"
    empty_text = "No tokens yet."
    row_template = "dcportal/_token_row_actions.html"
    columns = (
        Column("name", "Name", sort="name"),
        Column("prefix", "Prefix", sort="prefix", cell="mono"),
        Column("write", "Access", value=lambda t: "read and write" if t.write else "read only"),
        Column("created", "Created", sort="created"),
        Column("expires", "Expires", value=lambda t: t.expires or "never"),
        Column("last_used", "Last used", value=lambda t: t.last_used or "never"),
        Column("state", "State", value=token_state, cell="badge"),
    )

    @property
    def bulk_actions(self):
        # Everyone may revoke their own tokens: the list holds nothing else.
        return (BulkAction("revoke", "Revoke", reverse("tokens"), danger=True),)

"""Who is acting, from where, under which request id: set once per request, CLI call or job.

Services read it when they write audit events, so they need not be handed the request.
"""

import contextvars
import getpass
import logging
import socket
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    source: str = ""  # IP address for web/API, "cli:user@host" for commands, "job:ID" in workers
    via: str = ""  # web, api, admin, cli, job
    token_id: int | None = None


_EMPTY = RequestContext()
_current = contextvars.ContextVar("dcportal_request_context", default=_EMPTY)  # noqa: B039 (frozen)


def current():
    return _current.get()


def new_request_id():
    return uuid.uuid4().hex


@contextmanager
def bound(**values):
    """Run a block with the context updated by `values`; restores the previous one after."""
    token = _current.set(replace(_current.get(), **values))
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def set_token(token_id):
    """Record the API token that authenticated the current request (set by the API auth class)."""
    _current.set(replace(_current.get(), token_id=token_id))


def cli_context():
    return bound(
        request_id=new_request_id(),
        source=f"cli:{getpass.getuser()}@{socket.gethostname()}",
        via="cli",
        token_id=None,
    )


class LogFilter(logging.Filter):
    """Adds the request id to every log record so a request can be followed across log lines."""

    def filter(self, record):
        record.request_id = _current.get().request_id or "-"
        return True

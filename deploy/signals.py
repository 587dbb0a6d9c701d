"""Signals other apps listen to, so that deploy does not need to know them.

build_finished(sender=ServerDeploy, server_id, state, message): sent once the report of a
server's installer (`done` -> state "deployed", `failed` -> "failed") is committed. virt uses it
to return an installed VM to disk boot.
"""

from django.dispatch import Signal

build_finished = Signal()

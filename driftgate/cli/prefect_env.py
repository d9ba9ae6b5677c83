"""The CLI's side of Prefect: its settings, its server, its logs in the terminal,
links to its UI, and blocks (credentials and the record's database).

Prefect is imported lazily, only by the commands that need it (``sync``,
``approve``/``reject``, ``approvals``, ``serve``, ``blocks``, and any command
of an environment that names blocks): ``plan`` and ``history`` stay fast.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING

from driftgate.cli.common import fail

if TYPE_CHECKING:
    from driftgate.access import Access
    from driftgate.config import Environment


def prefect_defaults() -> None:
    """Settings that make the CLI pleasant unless the user chose otherwise (set
    before Prefect is imported, which reads them once)."""
    # Warnings in the terminal, but every INFO line still reaches the run's Logs tab in the
    # UI (PREFECT_LOGGING_LEVEL=WARNING would have kept them from the API too).
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # A temporary server takes 8-20 s to start here; Prefect's default gives up at 20 s.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


@contextmanager
def prefect_server() -> Iterator[None]:
    """The server named by ``PREFECT_API_URL``; without one, a temporary server
    for this command that dies with it, even when the command is killed (set
    before Prefect is imported, which reads the URL once)."""
    if os.environ.get("PREFECT_API_URL"):
        yield
        return
    from driftgate.flows.temporary_server import temporary_server

    with ExitStack() as stack:
        try:
            stack.enter_context(temporary_server(float(os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"])))
        except RuntimeError as exc:  # it did not start
            fail(str(exc))
        yield


def send_what_is_left() -> None:
    """Prefect's queued logs and events go to the server now, while it runs:
    for a process that stops the server it ran flows against (the demo)."""
    from driftgate.flows.temporary_server import send_what_is_left as send

    send()


def api_description() -> str:
    url = os.environ.get("PREFECT_API_URL")
    return f"the Prefect server at {url}" if url else "a temporary Prefect server (set PREFECT_API_URL to use yours)"


def flow_run_url(flow_run_id: str | None) -> str | None:
    api = os.environ.get("PREFECT_API_URL")
    if not (api and flow_run_id):
        return None
    return f"{api.removesuffix('/').removesuffix('/api')}/runs/flow-run/{flow_run_id}"


def paused_run(environment: str) -> str:
    """The id of ``environment``'s run waiting for approval ("" when none)."""
    prefect_defaults()
    from driftgate.flows.approval import paused_runs

    return next((run.id for run in paused_runs() if run.environment == environment), "")


def load_access(env: Environment) -> Access:
    """``env``'s credentials, as the flows' credentials task loads them
    (`driftgate.access.load_access`); blocks need the Prefect API, so they are
    imported only when the environment names one."""
    from driftgate import access as credentials

    return credentials.load_access(env, from_blocks=_from_blocks)


def _from_blocks(env: Environment) -> Access:
    from driftgate.blocks import load_access as from_blocks

    return from_blocks(env)

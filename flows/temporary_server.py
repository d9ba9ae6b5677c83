"""A Prefect server for one command, that dies with it.

Without ``PREFECT_API_URL`` Prefect starts a temporary server in a subprocess
of its own (`prefect.server.api.server.SubprocessASGIServer`) and stops it at
exit, but a command killed with -9 leaves that server running, holding its
leases in memory. `driftgate sync` starts the same server itself instead:

- the kernel kills it when the command dies, however it dies
  (``PR_SET_PDEATHSIG``, Linux);
- its concurrency leases are kept in files under ``PREFECT_HOME``
  (Prefect's filesystem lease storage), like the runs in its database, so the
  next command's server still knows a dead run's lease and can revoke it.

Called by the CLI before Prefect is imported: it sets ``PREFECT_API_URL``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx

_PR_SET_PDEATHSIG = 1
LEASES_IN_FILES = "prefect.server.concurrency.lease_storage.filesystem"


@contextmanager
def temporary_server(startup_timeout: float) -> Iterator[str]:
    """Start the server, point this process at it (``PREFECT_API_URL``), yield
    its API URL; stop it afterwards. Raises RuntimeError if it does not answer
    within ``startup_timeout`` seconds."""
    server, url = _start(startup_timeout)
    os.environ["PREFECT_API_URL"] = url
    try:
        yield url
    finally:
        send_what_is_left()
        os.environ.pop("PREFECT_API_URL", None)
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _start(startup_timeout: float) -> tuple[subprocess.Popen[bytes], str]:
    deadline = time.monotonic() + startup_timeout
    while True:
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "error", "--lifespan", "on"],
            env={
                **os.environ,
                "PREFECT_UI_ENABLED": "0",
                "PREFECT__SERVER_EPHEMERAL": "1",  # what Prefect's own temporary server sets: no UI, few services
                "PREFECT__SERVER_FINAL": "1",
                "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": os.environ.get("PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE", LEASES_IN_FILES),
            },
            preexec_fn=_dies_with(os.getpid()),
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}/api"
        while time.monotonic() < deadline:
            if server.poll() is not None:
                break  # e.g. the port was taken meanwhile: try another
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    return server, url
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        if server.poll() is None:
            server.kill()
            server.wait()
        if time.monotonic() >= deadline:
            raise RuntimeError(
                f"the temporary Prefect server did not answer within {startup_timeout:.0f} s "
                "(raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or set PREFECT_API_URL to a running server)"
            )


def send_what_is_left() -> None:
    """Logs and events still queued go to the server before it stops; else
    Prefect tries a stopped server at exit (a minute here, then an error)."""
    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    EventsWorker.drain_all(timeout=10)


def _dies_with(parent: int) -> Callable[[], None]:
    """Runs in the child before exec: ask the kernel for SIGKILL when the parent
    dies, and leave if it already has (it may die before this runs)."""

    def set_parent_death_signal() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return set_parent_death_signal


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

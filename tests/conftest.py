"""Shared fixtures: a private DRIFTGATE_HOME per test, the demo world (a real
Git repository with an Ansible playbook for localhost), and one Prefect test
server for the whole session."""

from __future__ import annotations

import contextvars
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

# Set before Prefect is imported anywhere: offline, quiet, patient start-up.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

# Prefect's test utilities add a second FileFinder path hook (via beartype's
# import hooks); ansible's collection loader refuses to import after that
# ("need exactly one FileFinder import hook"). Load ansible first.
import ansible.inventory.manager  # noqa: E402,F401

from driftgate.demo_repo import DemoWorld, create_demo_world  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DRIFTGATE = Path(sys.executable).with_name("driftgate")


@pytest.fixture(autouse=True)
def driftgate_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own cache, renders and record."""
    home = tmp_path / "dg-home"
    monkeypatch.setenv("DRIFTGATE_HOME", str(home))
    for name in ("DRIFTGATE_DATABASE_URL", "DRIFTGATE_CONFIG", "DRIFTGATE_USER"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def world(tmp_path: Path) -> DemoWorld:
    return create_demo_world(tmp_path / "world")


def edit_config(world: DemoWorld, env_name: str = "demo", **environment_overrides: object) -> None:
    """Merge settings into one environment (default: the demo's) of driftgate.yaml."""
    data = yaml.safe_load(world.config.read_text())
    env = data["environments"][env_name]
    for key, value in environment_overrides.items():
        if isinstance(value, dict) and isinstance(env.get(key), dict):
            env[key] = {**env[key], **value}
        else:
            env[key] = value
    world.config.write_text(yaml.safe_dump(data, sort_keys=False))


# A task that check mode skips and apply fails (a `run` change: risky unless approval.mode is never).
FAILS_ON_APPLY = (
    "    - name: fails only for real\n"
    "      ansible.builtin.fail:\n"
    "        msg: disk full on purpose\n"
    "      when: not ansible_check_mode\n"
)


def add_tasks(world: DemoWorld, message: str, *tasks_yaml: str) -> str:
    """Append tasks (YAML lines, indented as in the play) to the demo playbook and commit."""
    from driftgate.demo_repo import commit_change

    playbook = (world.repo / "ansible/site.yml").read_text() + "".join(tasks_yaml)
    return commit_change(world.repo, "ansible/site.yml", playbook, message)


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Prefect test server for the session, with its own PREFECT_HOME so
    cached results cannot leak in from elsewhere. Yields the API URL."""
    home = tmp_path_factory.mktemp("prefect-home")
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, PREFECT_LOCAL_STORAGE_PATH, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with temporary_settings({PREFECT_HOME: home, PREFECT_LOCAL_STORAGE_PATH: home / "storage"}):
        with prefect_test_harness(server_startup_timeout=120):
            yield str(PREFECT_API_URL.value())


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """The real console script, in its own process."""
    return subprocess.run(
        [str(DRIFTGATE), *args],
        env={**os.environ, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `prefect server start` (API, UI and background services such as the
    scheduler, which the test harness lacks) on a free loopback port; yields its base URL."""
    port = _free_port()
    home = tmp_path_factory.mktemp("prefect-server-home")
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        # `--port` alone would leave the UI calling port 4200.
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        # Schedule new runs within seconds, not the default minute.
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
    }
    env.pop("PREFECT_API_URL", None)
    log = (home / "server.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("prefect")), "server", "start"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert server.poll() is None, (home / "server.log").read_text()[-2000:]
            try:
                if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            pytest.fail(f"prefect server did not answer within 120 s: {(home / 'server.log').read_text()[-2000:]}")
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # its own session: the server and nothing else
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(5)
        log.close()


@contextmanager
def as_cli(user: str | None = None, *, yes: bool = False, key: Path | None = None) -> Iterator[None]:
    """Flows started in this block run as `driftgate sync [--yes [--key KEY]]` by ``user`` would
    (the CLI's in-process request; deployment parameters cannot say this)."""
    from driftgate.models import Trigger
    from flows.requests import RunRequest, cli_request, requested

    request = (
        RunRequest(Trigger.CLI, user, pre_approve=yes, signing_key=key) if user
        else cli_request(pre_approve=yes, signing_key=key)
    )  # fmt: skip
    with requested(request):
        yield


@contextmanager
def approver(act: Callable[[Any], None], *, pauses: int = 1) -> Iterator[list[Any]]:
    """A person in another thread: for each of ``pauses`` pauses, waits for the
    paused run (by its pause) and calls ``act(paused_run)``. Yields the
    PausedRuns seen; re-raises what went wrong in the thread."""
    from flows.approval import paused_runs

    seen: list[Any] = []
    errors: list[BaseException] = []

    def watch() -> None:
        try:
            deadline = time.monotonic() + 90
            while len(seen) < pauses and time.monotonic() < deadline:
                fresh = [r for r in paused_runs() if r.pause_key not in {s.pause_key for s in seen}]
                if not fresh:
                    time.sleep(0.2)
                    continue
                seen.append(fresh[0])
                act(fresh[0])
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            errors.append(exc)

    thread = threading.Thread(target=contextvars.copy_context().run, args=(watch,), daemon=True)
    thread.start()
    yield seen
    thread.join(30)
    if errors:
        raise errors[0]


def answer(decision: str, name: str, reason: str = "") -> Callable[[Any], None]:
    from flows.approval import answer_run

    return lambda run: answer_run(run, decision=decision, approver=name, reason=reason)


@dataclass(frozen=True)
class SSHKey:
    """A real ed25519 key made by ssh-keygen: its private key file and public key ("ssh-ed25519 AAAA...")."""

    path: Path
    public: str

    def signer_line(self, principal: str, options: str = "") -> str:
        """Its line in an OpenSSH allowed_signers file."""
        return " ".join(p for p in (principal, options, self.public) if p) + "\n"


def make_ssh_key(directory: Path, name: str) -> SSHKey:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True, timeout=30)
    return SSHKey(path, " ".join(path.with_suffix(".pub").read_text().split()[:2]))


@pytest.fixture(scope="session")
def ssh_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SSHKey]:
    """Real SSH keys for alice, bob and mallory (one set per session: ssh-keygen takes a few ms each)."""
    directory = tmp_path_factory.mktemp("ssh-keys")
    return {name: make_ssh_key(directory, name) for name in ("alice", "bob", "mallory")}


@contextmanager
def ssh_fleet_or_skip(n: int, name: str) -> Iterator[Any]:
    """``n`` SSH VMs (tests/sshvm.py) for a test module; skips it, with the reason,
    when this machine cannot make them."""
    from tests import sshvm

    ok, why = sshvm.ssh_available()
    if not ok:
        pytest.skip(f"SSH VMs unavailable: {why}")
    with sshvm.ssh_hosts(n=n, name=name) as fleet:
        yield fleet

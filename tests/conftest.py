"""Shared fixtures: a private DRIFTGATE_HOME per test, the demo world (a real
Git repository with an Ansible playbook for localhost), and one Prefect test
server for the whole session."""

from __future__ import annotations

import contextvars
import os
import shutil
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
from typing import TYPE_CHECKING, Any
from unittest import mock

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
from tests.prefect_database import publish as publish_prefect_database  # noqa: E402
from tests.prefect_database import seed as seed_prefect_database  # noqa: E402

if TYPE_CHECKING:
    from tests.filestarget import FilesWorld  # which imports this module: imported where used

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


@pytest.fixture(scope="session")
def world_template(tmp_path_factory: pytest.TempPathFactory) -> DemoWorld:
    """The demo world, made once per test process; `world` copies it."""
    return create_demo_world(tmp_path_factory.mktemp("world-template") / "world")


def copy_world(template: DemoWorld, root: Path) -> DemoWorld:
    """A private copy of ``template`` under ``root``: the same Git history (the
    repository is copied, not made again), driftgate.yaml pointing at its own host folder."""
    shutil.copytree(template.root, root, symlinks=True)
    config = root / template.config.relative_to(template.root)
    config.write_text(config.read_text().replace(str(template.root), str(root)))
    return DemoWorld(root=root, repo=root / "repo", host_root=root / "host", config=config)


@pytest.fixture
def world(tmp_path: Path, world_template: DemoWorld) -> DemoWorld:
    """The demo world (Git repository, host folder, driftgate.yaml) of this test alone."""
    return copy_world(world_template, tmp_path / "world")


@pytest.fixture(scope="session")
def synced_world_template(tmp_path_factory: pytest.TempPathFactory, world_template: DemoWorld) -> DemoWorld:
    """The demo world with its host already applied by ansible (once per test process)."""
    from driftgate import ansible, git, render
    from driftgate.config import load_config

    synced = copy_world(world_template, tmp_path_factory.mktemp("synced-world") / "world")
    saved = os.environ.get("DRIFTGATE_HOME")
    os.environ["DRIFTGATE_HOME"] = str(synced.root.parent / "dg-home")  # its caches stay out of every test's home
    try:
        env = load_config(synced.config).environment("demo")
        result = ansible.apply(env, render.render_bundle(env, git.fetch(env.source, environment="demo")))
    finally:
        os.environ.pop("DRIFTGATE_HOME") if saved is None else os.environ.__setitem__("DRIFTGATE_HOME", saved)
    assert result.succeeded and synced.config_line.read_text() == "max_connections = 100\n"
    return synced


@pytest.fixture
def synced_world(tmp_path: Path, synced_world_template: DemoWorld) -> DemoWorld:
    """The demo world whose host is what Git says (as after a first sync; nothing in the record):
    for tests whose story starts after that sync."""
    return copy_world(synced_world_template, tmp_path / "world")


@pytest.fixture
def files_world(tmp_path: Path) -> Iterator["FilesWorld"]:
    """The demo's story on the test-only kind ``files`` (tests/filestarget.py): for
    tests whose subject is the gate, the record or the flow, not Ansible. A sync
    costs about 1 CPU-s there, against 3-4 CPU-s per ansible-playbook run here."""
    from tests.filestarget import create_files_world, files_kind_registered

    with files_kind_registered():
        yield create_files_world(tmp_path / "files-world")


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


def count_renders(monkeypatch: pytest.MonkeyPatch, kind: str) -> list[str]:
    """The commits the target kind renders from now on (a reused bundle adds none)."""
    from driftgate import targets

    target = targets.get(kind)
    rendered: list[str] = []
    original = type(target).render

    def counted(self, env, checkout, *args, **kwargs):  # type: ignore[no-untyped-def]
        rendered.append(checkout.commit)
        return original(self, env, checkout, *args, **kwargs)

    monkeypatch.setattr(type(target), "render", counted)
    return rendered


def add_tasks(world: DemoWorld, message: str, *tasks_yaml: str) -> str:
    """Append tasks (YAML lines, indented as in the play) to the demo playbook and commit."""
    from driftgate.demo_repo import commit_change

    playbook = (world.repo / "ansible/site.yml").read_text() + "".join(tasks_yaml)
    return commit_change(world.repo, "ansible/site.yml", playbook, message)


@pytest.fixture(scope="session")
def prefect_templates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory, shared by all workers of the run, where the first Prefect server
    to migrate its database leaves a copy for the later ones (tests/prefect_database.py)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory, prefect_templates: Path) -> Iterator[str]:
    """One Prefect test server for the session, with its own PREFECT_HOME so
    cached results cannot leak in from elsewhere. Yields the API URL."""
    home = tmp_path_factory.mktemp("prefect-home")
    import prefect.testing.utilities
    from prefect.settings import (
        PREFECT_API_URL, PREFECT_HOME, PREFECT_LOCAL_STORAGE_PATH, PREFECT_SERVER_DATABASE_CONNECTION_URL, temporary_settings,
    )  # fmt: skip
    from prefect.testing.utilities import prefect_test_harness

    database = tmp_path_factory.mktemp("prefect-test-server") / "prefect-test.db"

    def directory_with_a_migrated_database() -> str:
        # The harness puts its server's database, prefect-test.db, in a directory of
        # its own making: made here, with the run's migrated copy in it when there is one.
        seed_prefect_database(prefect_templates, database)
        return str(database.parent)

    with temporary_settings({PREFECT_HOME: home, PREFECT_LOCAL_STORAGE_PATH: home / "storage"}):
        with mock.patch.object(prefect.testing.utilities, "mkdtemp", directory_with_a_migrated_database):
            with prefect_test_harness(server_startup_timeout=240):  # three workers start theirs at once
                # Said here, should a new Prefect name its database otherwise: each server would
                # then migrate an empty one, 10-15 s of start-up, and nothing else tell.
                url = PREFECT_SERVER_DATABASE_CONNECTION_URL.value()
                assert url.endswith(str(database)), f"the test server's database is {url}, not {database}"
                publish_prefect_database(database, prefect_templates)
                yield str(PREFECT_API_URL.value())


def artifacts_of(flow_run_id: object) -> list[Any]:
    """The artifacts of one flow run, filtered by the Prefect server. (Reading them
    all and filtering here sees the server's first page only, 200 artifacts, which
    a worker's shared test server outgrows: seen failing on a fresh clone.)"""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    runs = ArtifactFilterFlowRunId(any_=[UUID(str(flow_run_id))])
    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=runs))


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """The real console script, in its own process: for tests of what only a
    process shows (its start-up, its own logging, being killed); `invoke_cli` otherwise.
    A test that uses it is end to end (marked `e2e`)."""
    if _current_test is not None and _current_test.get_closest_marker("e2e") is None:
        pytest.fail(f"{_current_test.nodeid} starts the console script: mark it e2e, or use invoke_cli")
    return subprocess.run(
        [str(DRIFTGATE), *args],
        env={**os.environ, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def invoke_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`driftgate ARGS` in this process, through typer's CliRunner: the same
    commands, output and exit codes as `run_cli` without a new Python process
    (each costs seconds of importing Prefect). ``env`` and ``cwd`` apply for the
    call only. An exception the CLI does not handle is raised here, as a crash."""
    from typer.testing import CliRunner

    from driftgate.cli import app

    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    try:
        os.environ.update(env or {})
        if cwd is not None:
            os.chdir(cwd)
        result = CliRunner().invoke(app, list(args))
    finally:
        os.chdir(saved_cwd)
        # Key by key, never clear(): another thread (a paused flow's) may start a process meanwhile.
        for name in set(os.environ) - set(saved_env):
            del os.environ[name]
        for name, value in saved_env.items():
            if os.environ.get(name) != value:
                os.environ[name] = value
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(["driftgate", *args], result.exit_code, result.stdout, result.stderr)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_prefect_server(home: Path, extra_env: dict[str, str] | None = None, *, templates: Path | None = None) -> Iterator[str]:
    """A real `prefect server start` (API, UI and background services such as the
    scheduler, which the test harness lacks) on a free loopback port, in its own
    session, with ``home`` as PREFECT_HOME; yields its base URL and stops it.
    ``templates`` (`prefect_templates`): where its SQLite database is copied from, or to."""
    database = home / "prefect.db"  # where PREFECT_HOME puts it unless extra_env says otherwise
    if templates is not None:
        seed_prefect_database(templates, database)
    port = _free_port()
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
        # Expired slot leases taken back within seconds, not the default 15.
        "PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS": "2",
        **(extra_env or {}),
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
        if templates is not None:
            publish_prefect_database(database, templates)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # its own session: the server and nothing else
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(5)
        log.close()


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory, prefect_templates: Path) -> Iterator[str]:
    """A real `prefect server start` on SQLite (`running_prefect_server`); yields its base URL."""
    with running_prefect_server(tmp_path_factory.mktemp("prefect-server-home"), templates=prefect_templates) as base:
        yield base


@contextmanager
def client_of(base: str) -> Iterator[Any]:
    """A sync Prefect client of the server at ``base`` (a `running_prefect_server`);
    it asks again when a SQLite server answers 503 for a write collision."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: f"{base}/api"}), get_client(sync_client=True) as client:
        yield client


@pytest.fixture(autouse=True)
def _no_sync_slot_outlives_a_test_on_the_real_server(request: pytest.FixtureRequest) -> Iterator[None]:
    """The real server's tests share it, and most sync the environment demo: a
    test that ended with demo's sync slot still held (a leaked lease, or a sync
    it failed to stop) would leave the next ones waiting for that slot and fail
    them too, hiding where it started. So each ends with every driftgate sync slot
    free, deleted, and an error here names the test that left one held."""
    yield
    if "prefect_server" not in request.fixturenames:
        return
    from driftgate.flows.locks import LIMIT_PREFIX

    # Prefect's client: it asks again when the SQLite server answers 503 for a write collision (seen here).
    with client_of(request.getfixturevalue("prefect_server")) as client:
        slots = [limit for limit in client.read_global_concurrency_limits(limit=200) if limit.name.startswith(LIMIT_PREFIX)]
        for limit in slots:
            client.delete_global_concurrency_limit_by_name(limit.name)
    held = sorted(limit.name for limit in slots if limit.active_slots)
    assert not held, f"{request.node.nodeid} ended with sync slots held: {held} (freed for the next test)"


@contextmanager
def as_cli(user: str | None = None, *, yes: bool = False, key: Path | None = None) -> Iterator[None]:
    """Flows started in this block run as `driftgate sync [--yes [--key KEY]]` by ``user`` would
    (the CLI's in-process request; deployment parameters cannot say this)."""
    from driftgate.models import Trigger
    from driftgate.flows.requests import RunRequest, cli_request, requested

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
    from driftgate.flows.approval import paused_runs

    seen: list[Any] = []
    errors: list[BaseException] = []

    def watch() -> None:
        from prefect.client.orchestration import get_client

        try:
            deadline = time.monotonic() + 90
            with get_client(sync_client=True) as client:  # one client for every poll: each new one costs a TLS context
                while len(seen) < pauses and time.monotonic() < deadline:
                    fresh = [r for r in paused_runs(client) if r.pause_key not in {s.pause_key for s in seen}]
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
    from driftgate.flows.approval import answer_run

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


# ---------------------------------------------------------------- tiers
#
# `make test` runs both tiers, in parallel processes (pytest-xdist, see pyproject.toml).
# `pytest -m fast` runs the in-process tier alone: the engine, ansible-runner on
# localhost, Git, the CLI through CliRunner, SQLite. Every other test is `e2e`:
# it needs a Prefect server (the session's test server or a real `prefect server
# start`), Chromium, SSH hosts in network namespaces, PostgreSQL, or the console
# script in its own process. Tests are marked here, by the fixtures they use;
# a test that starts processes some other way says so with @pytest.mark.e2e.

E2E_FIXTURES = frozenset({"prefect_api", "prefect_server", "postgres_server", "fleet", "git_host", "available", "signed_world"})
E2E_MODULES = frozenset({"test_locks", "test_ui_approval", "test_sshvm", "test_ssh_hosts"})

_current_test: pytest.Item | None = None


def _is_e2e(item: pytest.Item) -> bool:
    params = getattr(getattr(item, "callspec", None), "params", {})
    return (
        item.get_closest_marker("e2e") is not None
        or bool(E2E_FIXTURES & set(getattr(item, "fixturenames", ())))
        or params.get("database_url") == "postgresql"
        or item.module is not None and item.module.__name__.rsplit(".", 1)[-1] in E2E_MODULES
    )


@pytest.hookimpl(tryfirst=True)  # before xdist reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test fast or e2e; run the e2e tests first (the slowest, so that
    parallel workers do not end on one long test while the others idle), and
    the group of the real server's tests before them (xdist hands a group out
    where its first test stands)."""
    for item in items:
        item.add_marker(pytest.mark.e2e if _is_e2e(item) else pytest.mark.fast)
        if "prefect_server" in getattr(item, "fixturenames", ()):
            # One worker runs them all (--dist loadgroup): one real server, not one per worker.
            item.add_marker(pytest.mark.xdist_group("prefect-server"))
    # The real server's group first (its tests take longest together), then e2e, then fast;
    # sort is stable: file order within each.
    items.sort(key=lambda item: (item.get_closest_marker("xdist_group") is None, item.get_closest_marker("e2e") is None))


@pytest.fixture(autouse=True)
def _the_current_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Which test runs, for run_cli's check that a process-starting test is marked e2e."""
    global _current_test
    _current_test = request.node
    yield
    _current_test = None

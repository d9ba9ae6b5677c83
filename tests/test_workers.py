"""Past one machine: a Prefect server and driftgate's record on PostgreSQL, a
process work pool, two `prefect worker` processes, the deployments of
deployments/prefect.yaml (rendered by `driftgate deployments render`, deployed
with `prefect deploy --all`).

Each worker runs in its own session with its own DRIFTGATE_HOME, as on a
machine of its own, and takes one flow run at a time (``--limit 1``), so that
runs submitted together go to whichever worker is free. "Mid-apply" is
deterministic, as in tests/test_locks.py: demo's apply touches
``gate/demo.applying`` and waits for ``gate/demo.release``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftgate.demo_repo import DemoWorld, commit_change
from driftgate.models import Outcome, RunPurpose
from driftgate.store import Store
from tests.conftest import ROOT, edit_config, invoke_cli, running_prefect_server
from tests.postgres import PostgresServer, postgres_server  # noqa: F401  (fixture)
from tests.processes import marked
from tests.test_locks import block_apply_on

PREFECT = Path(sys.executable).with_name("prefect")
POOL = "fleet"
DEAD_RUNS = ROOT / "deployments" / "dead-runs.yaml"
HEARTBEAT_SECONDS = 30  # the least Prefect sends
WORKERS = ("worker-a", "worker-b")


@pytest.fixture(scope="module")
def prefect_on_postgres(postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:  # noqa: F811
    """A real `prefect server start` whose database is PostgreSQL; yields its API URL."""
    database = postgres_server.create_database().replace("+psycopg", "+asyncpg")
    settings = {
        "PREFECT_API_DATABASE_CONNECTION_URL": database,
        # A run held back by its deployment's concurrency limit is offered again within seconds, not 30.
        "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "2",
    }
    with running_prefect_server(tmp_path_factory.mktemp("prefect-pg-home"), settings) as base:
        yield f"{base}/api"


def wait_until(condition: Callable[[], Any], what: str, *, timeout: float, logs: list[Path]) -> Any:
    """Poll ``condition`` (a cheap check of the thing itself) until it returns something true."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {log.name}\n{log.read_text()[-2500:]}" for log in logs if log.exists())
            pytest.fail(f"{what}: not within {timeout} s\n{tails}")
        time.sleep(0.3)
    return found


def start_worker(name: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`prefect worker start` in a session of its own, one flow run at a time; every
    process it starts carries DRIFTGATE_TEST_MARK=name (to kill them all, like a machine)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(PREFECT), "worker", "start", "--pool", POOL, "--type", "process", "--name", name, "--limit", "1"],
            env={**os.environ, **env, "DRIFTGATE_TEST_MARK": name, "DRIFTGATE_HOME": str(log.parent / f"{name}-home")},
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def kill_machine(name: str) -> None:
    """SIGKILL everything worker ``name`` started (the worker, its flow run, Ansible), at once."""
    for pid in marked(name):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.timeout(600)  # a PostgreSQL-backed server, a deploy, two workers and three flow runs
def test_two_workers_share_the_deployments_and_a_dead_worker_loses_nothing(
    synced_world: DemoWorld, prefect_on_postgres: str, postgres_server: PostgresServer,  # noqa: F811
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.client.schemas.filters import LogFilter
    from prefect.deployments import run_deployment
    from prefect.events.schemas.automations import AutomationCore
    from prefect.settings import PREFECT_API_URL, temporary_settings

    world = synced_world
    record_url = postgres_server.create_database()
    monkeypatch.setenv("DRIFTGATE_DATABASE_URL", record_url)  # this test's Store() and, inherited, the workers'
    # demo: apply stops at the gate; a change to apply (100 -> 200) after it; no approval in the story.
    gate = tmp_path / "gate"
    block_apply_on(world, gate)
    commit_change(world.repo, "ansible/vars.yml", "max_connections: 200\n", "demo: raise the connection limit")
    edit_config(world, approval={"mode": "never"})
    data = yaml.safe_load(world.config.read_text())
    other = yaml.safe_load(yaml.safe_dump(data["environments"]["demo"]))
    other["target"]["vars"] = {"demo_root": str(world.root / "other-host"), "environment_name": "other"}
    data["environments"]["other"] = other
    world.config.write_text(yaml.safe_dump(data, sort_keys=False))

    rendered = invoke_cli("deployments", "render", "--config", str(world.config), "--work-pool", POOL,
                          "--output", str(world.root / "prefect.yaml"), cwd=world.root)  # fmt: skip
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr
    env = {
        "PREFECT_API_URL": prefect_on_postgres,
        "DRIFTGATE_CHECKOUT": str(world.root),  # the pull step's directory: runs start in the checkout
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS),  # for the dead-runs automation
        "PREFECT_WORKER_QUERY_SECONDS": "2",
    }
    logs = [tmp_path / f"{name}.log" for name in WORKERS]
    workers: list[subprocess.Popen[bytes]] = []
    with temporary_settings({PREFECT_API_URL: prefect_on_postgres}), get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=POOL, type="process"))
        # The shipped automation, as `prefect automation create --from-file` reads it, with a shorter window.
        automation = yaml.safe_load(DEAD_RUNS.read_text())
        automation["trigger"]["within"] = HEARTBEAT_SECONDS + 15
        client.create_automation(AutomationCore.model_validate(automation))
        try:
            workers = [start_worker(name, env, log) for name, log in zip(WORKERS, logs)]  # they start while it deploys
            deployed = subprocess.run(
                [str(PREFECT), "--no-prompt", "deploy", "--all", "--prefect-file", "prefect.yaml"],
                cwd=world.root, env={**os.environ, **env}, capture_output=True, text=True, timeout=180,
            )  # fmt: skip
            assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]

            def state(run: Any) -> Any:
                return client.read_flow_run(run.id).state

            def worker_of(run: Any) -> str:
                return str(client.read_flow_run(run.id).labels.get("prefect.worker.name", ""))

            # 1. A sync of demo goes to whichever worker is free, and stops mid-apply.
            first = run_deployment("reconcile/sync-demo", timeout=0)
            wait_until((gate / "demo.applying").exists, "the first sync reaches apply", timeout=180, logs=logs)
            busy = worker_of(first)
            assert busy in WORKERS
            free = next(name for name in WORKERS if name != busy)
            # 2. A drift check meanwhile: the busy worker takes one run at a time, so the other one runs it.
            check = run_deployment("drift-check/drift-other", timeout=0)
            wait_until(lambda: state(check).is_final(), "the drift check ends", timeout=180, logs=logs)
            assert state(check).is_completed() and worker_of(check) == free
            # 3. A second sync of demo: a worker is free, but one sync per environment runs at a time.
            second = run_deployment("reconcile/sync-demo", timeout=0)
            wait_until(lambda: state(second).name == "AwaitingConcurrencySlot", "the second sync is held back", timeout=60, logs=logs)
            assert state(first).is_running()
            # 4. The busy worker's machine dies mid-apply: the worker, its flow run and Ansible at once.
            kill_machine(busy)
            wait_until(lambda: not marked(busy), f"{busy} and everything it started are gone", timeout=15, logs=logs)
            (gate / "demo.release").touch()  # the next sync's apply passes the gate
            killed = time.monotonic()
            # 5. The second sync runs on the live worker, is not locked out by the dead run, and converges.
            wait_until(lambda: not state(second).is_scheduled(), "the second sync starts", timeout=240, logs=logs)
            took = time.monotonic() - killed
            wait_until(lambda: state(second).is_final(), "the second sync ends", timeout=180, logs=logs)
            assert state(second).is_completed(), state(second)
            assert worker_of(second) == free
            # It freed driftgate's sync slot, which the dead run held, at its start: it never waited for it.
            said = [log.message for log in client.read_logs(LogFilter(flow_run_id={"any_": [second.id]}))]
            assert said and not [m for m in said if "waiting for" in m], said
            crashed = state(first)  # by the automation, when its heartbeats stopped
            assert crashed.type.value == "CRASHED" and "heartbeats stopped" in (crashed.message or ""), crashed
        finally:
            for proc in workers:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
            for name in WORKERS:
                kill_machine(name)
    # Its heartbeats stopped at the kill: within the automation's window (not the 300 s Prefect holds a deployment slot).
    assert took < 2 * HEARTBEAT_SECONDS + 30, f"the second sync waited {took:.0f} s for the dead run's slots"
    store = Store(record_url)
    syncs = [r for r in store.history("demo", limit=10) if r.purpose == RunPurpose.SYNC]
    assert [(r.outcome, r.flow_run_id) for r in syncs] == [(Outcome.APPLIED, str(second.id)), (Outcome.INTERRUPTED, str(first.id))]
    assert "ended before it recorded an outcome" in syncs[1].reason
    assert world.config_line.read_text() == "max_connections = 200\n"
    drift = store.history("other", limit=10)
    assert [(r.purpose, r.outcome, r.flow_run_id) for r in drift] == [(RunPurpose.DRIFT, Outcome.DRIFT, str(check.id))]

"""Faults: the one retry budget (driftgate.retry), counted in the Kubernetes API
double's request log and in the waits it would make.

The waits are recorded instead of slept (``retry._sleep`` is replaced; the
numbers are the real budget's): everything else is real — the flow on the
Prefect test server, the Kubernetes client against the double's HTTP API with
injected faults, ansible-playbook with a real timeout.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from driftgate import retry
from driftgate.demo_repo import DemoWorld, add_kubernetes_environment
from driftgate.errors import TransientError
from driftgate.models import Outcome, Stage
from driftgate.store import Store, StoredRun
from tests.conftest import FAILS_ON_APPLY, add_tasks, edit_config
from tests.kubeapi import KubeAPIDouble
from tests.kubeapi.fixtures import kube_double_factory  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits the retry budget makes, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(retry, "_sleep", recorded.append)
    return recorded


@pytest.fixture
def double(kube_double_factory: Callable[..., KubeAPIDouble]) -> KubeAPIDouble:  # noqa: F811
    return kube_double_factory(ready_delay=0.1)


@pytest.fixture
def shop(world: DemoWorld, double: KubeAPIDouble) -> DemoWorld:
    add_kubernetes_environment(world, kubeconfig=str(double.kubeconfig_path), namespace="shop")
    edit_config(world, "shop", target={"request_timeout": "1s"}, approval={"mode": "never"})
    return world


def sync(world: DemoWorld, environment: str) -> tuple[Any, StoredRun, float]:
    from driftgate.flows.reconcile import reconcile

    started = time.monotonic()
    state = reconcile(environment=environment, config=str(world.config), return_state=True)
    took = time.monotonic() - started
    record = Store().history(environment, limit=1)[0]
    assert record.flow_run_id == str(state.state_details.flow_run_id)
    return state, record, took


def test_a_persistent_503_costs_three_requests(shop: DemoWorld, double: KubeAPIDouble, waits: list[float]) -> None:
    """Before: urllib3 x the client's 5 tries x Prefect's 4 = 20 requests for one 503."""
    double.inject_fault(status=503, times=None)
    state, record, _ = sync(shop, "shop")
    assert state.is_failed() and record.outcome == Outcome.FAILED and record.failed_stage == Stage.DIFF
    assert len(double.requests) == retry.ATTEMPTS == 3  # one request per attempt of the diff
    assert {r.status for r in double.requests} == {503}
    assert waits == [2.0, 8.0]  # the documented backoff, 10 s in all
    assert "503" in record.reason and "gave up after 3 attempts" in record.reason


def test_a_server_slower_than_the_request_timeout_is_asked_once(shop: DemoWorld, double: KubeAPIDouble, waits: list[float]) -> None:
    """Before: 80 GETs and 110 s at request_timeout 1s (4 x 5 x 4 tries of each timeout)."""
    double.inject_latency(2.5, times=None)
    state, record, took = sync(shop, "shop")
    assert record.failed_stage == Stage.DIFF
    assert "within 1 s (target.request_timeout)" in record.reason
    assert waits == []  # a timeout is permanent: no second attempt
    # The one request is logged when the double answers it (after its latency).
    deadline = time.monotonic() + 10
    while not double.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(double.requests) == 1
    assert took < 10, took


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(status: int, shop: DemoWorld, double: KubeAPIDouble, waits: list[float]) -> None:
    """A 429, and a 503 of a server in maintenance, say how long to wait."""
    double.inject_fault(status=status, retry_after=5, verb="list", resource="configmaps", times=1)
    state, record, _ = sync(shop, "shop")
    assert state.is_completed(), state.message
    assert record.outcome == Outcome.APPLIED
    assert waits == [5.0]  # what the server asked for, not the 2 s backoff
    refused = double.count(verb="list", resource="configmaps", status=status)
    assert refused == 1 and double.count(verb="list", resource="configmaps", dry_run=False) >= 2


def test_the_second_attempt_reaches_the_server_after_its_retry_after(shop: DemoWorld, double: KubeAPIDouble) -> None:
    """Nothing replaced here, not even the sleep: by the double's own clock the
    retry comes no sooner than the 3 s the 503 asked for (the backoff alone is 2 s)."""
    double.inject_fault(status=503, retry_after=3, verb="list", resource="configmaps", times=1)
    result = _plan_cli(shop, "shop")
    assert result.exit_code == 2, result.output  # the plan was made: changes pending
    lists = [r for r in double.requests if r.verb == "list" and r.resource == "configmaps"]
    # The retry's plan lists ConfigMaps twice: by this environment's label across
    # namespaces (no prune inventory yet) and in its namespace.
    assert [r.status for r in lists] == [503, 200, 200]
    assert lists[1].time - lists[0].time >= 3.0


def test_driftgate_plan_has_the_same_budget(shop: DemoWorld, double: KubeAPIDouble, waits: list[float]) -> None:
    """`driftgate plan` retries in the same one layer as the flow's diff: a
    persistent 503 costs it 3 requests too, each retry said on stderr."""
    double.inject_fault(status=503, retry_after=1, times=None)
    result = _plan_cli(shop, "shop")
    assert result.exit_code == 1, result.output
    assert len(double.requests) == retry.ATTEMPTS == 3 and {r.status for r in double.requests} == {503}
    assert waits == [2.0, 8.0]  # the server's 1 s is less than the backoff
    assert "attempt 1 of 3 failed, trying again in 2 s" in result.output
    assert "gave up after 3 attempts" in result.output


def _plan_cli(world: DemoWorld, environment: str) -> Any:
    """`driftgate plan` in this process (so `retry._sleep` can be replaced)."""
    from typer.testing import CliRunner

    from driftgate.cli import app

    return CliRunner().invoke(app, ["plan", environment, "--config", str(world.config)])


def test_prefect_adds_no_retries_of_its_own() -> None:
    """Prefect's settings (PREFECT_TASKS_DEFAULT_RETRIES, PREFECT_FLOWS_DEFAULT_RETRIES,
    say in a profile) give retries to every task and flow that does not set
    its own: driftgate's set 0, or a failing diff would cost 3 x (retries + 1)
    attempts and a failed reconcile would run again, apply included."""
    code = (
        "import json, sys\n"
        "import prefect, driftgate.flows.reconcile, driftgate.flows.drift, driftgate.flows.approval, driftgate.tasks.stages, driftgate.tasks.notify\n"
        "found = {f'{o.fn.__module__}.{o.fn.__name__}': o.retries for m, mod in list(sys.modules.items())\n"
        "         if m.startswith(('driftgate.flows.', 'driftgate.tasks.')) for o in vars(mod).values() if isinstance(o, (prefect.Task, prefect.Flow))}\n"
        "print(json.dumps(found))\n"
    )
    env = {**os.environ, "PREFECT_TASKS_DEFAULT_RETRIES": "3", "PREFECT_FLOWS_DEFAULT_RETRIES": "2"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    retries = json.loads(result.stdout.splitlines()[-1])
    assert {f"driftgate.{name}" for name in ("flows.reconcile.reconcile", "flows.drift.drift_check", "tasks.stages.diff_live", "tasks.notify.notify")} <= set(retries)
    assert {name: n for name, n in retries.items() if n} == {}


def test_retry_after_is_capped_and_backoff_is_a_floor() -> None:
    asked = lambda seconds: TransientError("busy", retry_after=seconds)  # noqa: E731
    assert retry.delay(0, asked(3600)) == retry.MAX_WAIT == 60.0
    assert retry.delay(0, asked(0.5)) == 2.0 and retry.delay(1, asked(None)) == 8.0


def test_a_failing_server_stops_the_apply_at_its_first_failed_request(shop: DemoWorld, double: KubeAPIDouble, waits: list[float]) -> None:
    """Apply is never retried, and one failure of the server stops it: the rest is skipped, not sent."""
    double.inject_fault(method="PATCH", path="^/api/v1/namespaces/shop/configmaps", status=503, times=None)
    double.inject_fault(method="PATCH", path="^/api/v1/namespaces/shop/secrets", status=503, times=None)
    double.reset_requests()
    state, record, _ = sync(shop, "shop")
    assert record.failed_stage == Stage.APPLY and state.is_failed()
    real_applies = [r for r in double.requests if r.method == "PATCH" and not r.dry_run]
    assert [r.status for r in real_applies] == [201, 503]  # the Namespace, then the first ConfigMap: stop
    skipped = [t for h in record.hosts for t in h.tasks if t.status == "skipped"]
    assert skipped and all("the API server failed" in t.message for t in skipped)
    assert waits == []


def test_an_ansible_check_that_times_out_is_not_run_again(world: DemoWorld, waits: list[float]) -> None:
    """Before: a check hitting target.timeout was transient and ran 4 times (2 hours at 30m)."""
    add_tasks(
        world,
        "a task that hangs",
        "    - name: hangs\n"
        "      ansible.builtin.command: sleep 30\n"
        "      check_mode: false\n"
        "      changed_when: false\n",
    )
    edit_config(world, target={"timeout": "2s"})
    state, record, took = sync(world, "demo")
    assert record.failed_stage == Stage.DIFF
    assert "did not finish within 0:00:02 (target.timeout)" in record.reason
    assert waits == [] and took < 20, took


# ---------------------------------------------------------------- one line per failure in the terminal


def _sync_cli(world: DemoWorld, environment: str, prefect_api: str, *options: str) -> tuple[int, str]:
    """`driftgate sync` in its own process (Prefect's console logging is per
    process), against the session's Prefect server; exit code and all it printed."""
    from tests.conftest import run_cli

    result = run_cli("sync", environment, "--config", str(world.config), *options, env={"PREFECT_API_URL": prefect_api})
    return result.returncode, result.stdout + result.stderr


def _assert_one_line_failure(output: str, stage: str, reason: str) -> None:
    assert "Traceback" not in output and "Task run" not in output and "ERROR" not in output, output
    (line,) = [line for line in output.splitlines() if reason in line]  # the reason, once
    assert line.startswith(f"  stopped at {stage} "), output


def test_a_render_error_is_one_line_details_with_verbose(world: DemoWorld, prefect_api: str) -> None:
    from driftgate.demo_repo import commit_change

    commit_change(world.repo, "ansible/site.yml", "- hosts: all\n  tasks: [\n", "a broken playbook")
    code, output = _sync_cli(world, "demo", prefect_api)
    assert code == 1
    _assert_one_line_failure(output, "render", "playbook site.yml is not valid YAML")

    code, verbose = _sync_cli(world, "demo", prefect_api, "--verbose")
    assert code == 1 and "fetched main: commit" in verbose  # the run's own log lines
    assert "Traceback" not in verbose  # an expected failure has no traceback, even here


def test_an_unresolvable_host_is_one_line_and_not_retried(world: DemoWorld, prefect_api: str) -> None:
    edit_config(world, target={"hosts": {"web1": {"ansible_host": "nosuch.invalid"}}})  # .invalid never resolves
    code, output = _sync_cli(world, "demo", prefect_api)
    assert code == 1
    _assert_one_line_failure(output, "diff", "host 'web1', task 'app directory': host unreachable")
    assert "no such host name: check the inventory" in output and "gave up" not in output


def test_an_api_timeout_is_one_line(shop: DemoWorld, double: KubeAPIDouble, prefect_api: str) -> None:
    double.inject_latency(2.5, times=None)
    code, output = _sync_cli(shop, "shop", prefect_api)
    assert code == 1
    _assert_one_line_failure(output, "diff", "within 1 s (target.request_timeout)")


def test_a_locked_record_is_one_line(world: DemoWorld, prefect_api: str, driftgate_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process (an sqlite3 shell, a backup) holds the record's write lock
    for longer than the record waits: one line, no traceback."""
    Store().history(limit=1)  # the record database exists, its schema current
    holder = sqlite3.connect(driftgate_home / "driftgate.db", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    monkeypatch.setenv("DRIFTGATE_RECORD_LOCK_TIMEOUT", "2")
    try:
        code, output = _sync_cli(world, "demo", prefect_api)
    finally:
        holder.rollback()
        holder.close()
    assert code == 1
    assert "Traceback" not in output and "Task run" not in output and "ERROR" not in output, output
    (line,) = [line for line in output.splitlines() if "cannot write" in line]
    assert line.startswith("error: ") and "stayed locked" in line and "nothing was written" in line, output


# ---------------------------------------------------------------- the run as the Prefect UI shows it


def test_a_failed_apply_is_a_failed_task_with_its_reason_in_the_logs(world: DemoWorld) -> None:
    """The UI draws the graph from the task runs' states and the Logs tab from the
    run's logs: both read here through the API. Before: every task Completed."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    add_tasks(world, "a task that fails on apply", FAILS_ON_APPLY)
    edit_config(world, approval={"mode": "never"})  # check mode cannot predict that task: risky, else a pause
    state, record, _ = sync(world, "demo")
    assert state.is_failed() and record.failed_stage == Stage.APPLY
    assert record.hosts and record.hosts[0].failed == 1 and record.hosts[0].changed == 3  # the record is complete
    APILogWorker.drain_all(timeout=10)  # the run's logs are sent in batches: wait for them
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[record.flow_run_id])))
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[record.flow_run_id])))
    states = {run.name.rsplit("-", 1)[0]: run.state for run in runs}
    assert states["apply"].is_failed() and "disk full on purpose" in states["apply"].message
    assert all(s.is_completed() for name, s in states.items() if name != "apply"), {n: s.type for n, s in states.items()}

    messages = [(log.level, log.message) for log in logs]
    text = "\n".join(message for _, message in messages)
    for line in ("fetched main: commit ", f"plan {record.plan_hash[:12]} at ", "4 changes (", "approval not needed (mode never)",
                 f"record #{record.id}: failed"):
        assert line in text, text
    errors = [message for level, message in messages if level >= 40]
    assert any("disk full on purpose" in m for m in errors) and any(m.startswith("failed at apply: ") for m in errors), errors
    assert "Traceback" not in text  # an expected failure: its reason, no traceback


# ---------------------------------------------------------------- a Prefect server on SQLite, busy


def test_a_slot_write_that_collides_is_asked_again_at_once_not_after_prefects_two_seconds() -> None:
    """Faked (httpx.MockTransport): Prefect's server on SQLite answers 503 when a write
    collides with one of its own (SQLITE_BUSY_SNAPSHOT), a timing no test can cause on
    purpose. The slot's writes are asked again at once; a server that stays busy, or
    fails otherwise, gets Prefect's own call and retries; a 423 is an answer."""
    import httpx
    from prefect.client.orchestration import SyncPrefectClient

    from driftgate.flows import locks

    def serving(*statuses: int) -> tuple[SyncPrefectClient, list[str]]:
        """A client of a server answering ``statuses`` in turn (then the last again), each
        request's answer naming its place in line."""
        answers, seen = list(statuses), []

        def handler(request: httpx.Request) -> httpx.Response:
            if request.url.path == "/api/csrf-token":  # asked by Prefect's own call first: as a server without CSRF protection
                return httpx.Response(422, text="CSRF protection is disabled.", request=request)
            seen.append(f"{request.method} {request.url.path} {json.loads(request.content)}")
            status = answers.pop(0) if len(answers) > 1 else answers[0]
            return httpx.Response(status, json={"lease_id": f"answer {len(seen)}"}, request=request)

        return SyncPrefectClient("http://prefect.test/api", httpx_settings={"transport": httpx.MockTransport(handler)}), seen

    client, seen = serving(503, 503, 200)
    started = time.monotonic()
    response = locks._written(client, "POST", "/v2/concurrency_limits/increment-with-lease", {"slots": 1})
    assert response.status_code == 200 and time.monotonic() - started < 1.0  # not Prefect's 2 s and more
    assert seen == ["POST /api/v2/concurrency_limits/increment-with-lease {'slots': 1}"] * 3

    client, seen = serving(423)
    assert locks._written(client, "POST", "/v2/x", {}).status_code == 423 and len(seen) == 1

    # Still busy after the quick attempts; broken; CSRF: the same request through Prefect's own call.
    for statuses in ((503,) * locks.QUICK_ATTEMPTS + (200,), (500, 200), (403, 200)):
        client, seen = serving(*statuses)
        response = locks._written(client, "PATCH", "/flow_runs/r/labels", {"a": "b"})
        assert response.status_code == 200 and response.json()["lease_id"] == f"answer {len(statuses)}"
        assert seen == ["PATCH /api/flow_runs/r/labels {'a': 'b'}"] * len(statuses)

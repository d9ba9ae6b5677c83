"""Drift checks and self-heal on an Ansible host and a Kubernetes object,
`driftgate status`, webhook notifications, and an unreachable target. Where
the flow is the subject (self-heal, notifications), the target is the
test-only kind ``files`` (tests/filestarget.py)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from driftgate.demo_repo import DemoWorld, add_kubernetes_environment
from driftgate.models import Outcome, RunPurpose
from driftgate.store import Store
from tests.conftest import artifacts_of, as_cli, edit_config, invoke_cli
from tests.filestarget import FilesWorld
from tests.kubeapi import KubeAPIDouble
from tests.kubeapi.fixtures import kube_double_factory  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("prefect_api")


def check(world: DemoWorld, environment: str = "demo") -> tuple[Any, Any]:
    from driftgate.flows.drift import drift_check

    state = drift_check(environment=environment, config=str(world.config), return_state=True)
    runs = [r for r in Store().history(environment, limit=10) if r.purpose == RunPurpose.DRIFT]
    return state, runs[0]


def sync(world: DemoWorld, environment: str = "demo") -> Any:
    from driftgate.flows.reconcile import reconcile

    with as_cli(yes=True):
        return reconcile(environment=environment, config=str(world.config), return_state=True)


def test_ansible_drift_is_reported_not_touched(world: DemoWorld) -> None:
    sync(world)  # a real sync: `status` below reads its record
    state, record = check(world)
    assert state.is_completed() and record.outcome == Outcome.IN_SYNC

    world.config_line.write_text("max_connections = 5\n")
    state, record = check(world)
    assert state.name == "Drifted" and "reported (self_heal: report)" in state.message
    assert record.outcome == Outcome.DRIFT and record.trigger == "manual"
    assert [(c.target, c.name) for c in record.changes] == [("localhost", "connection limit")]
    (event,) = Store().drift_events("demo")
    assert event.changes == [{"action": "update", "target": "localhost", "name": "connection limit", "kind": "", "namespace": ""}]
    assert world.config_line.read_text() == "max_connections = 5\n"  # report only
    # Named for what it is, and published under its own key: a paused sync's plan ("plan-demo") stays on top.
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(state.state_details.flow_run_id)
    keys = {a.key for a in artifacts_of(flow_run.id)}
    assert flow_run.name == f"drift demo@{record.commit[:7]}"
    assert {"drift-plan-demo", "drift-plan-table-demo"} <= keys and "plan-demo" not in keys

    shown = invoke_cli("status", "demo", "--config", str(world.config), "--output", "json")
    status = json.loads(shown.stdout)
    assert status[0]["state"] == "drifted" and status[0]["reason"] == "1 change(s) found by the last check"
    assert shown.returncode == 2, "monitoring reads drift from the exit code"


def test_self_heal_sync_corrects_the_target(files_world: FilesWorld) -> None:
    world = files_world.synced()  # live as a sync left it
    edit_config(world, drift={"self_heal": "sync"})
    world.config_line.write_text("max_connections = 5\n")
    state, _ = check(world)
    assert "self-heal sync started" in state.message
    assert world.config_line.read_text() == "max_connections = 100\n"
    healing = Store().history("demo", limit=1)[0]
    assert healing.purpose == RunPurpose.SYNC and healing.trigger == "self-heal" and healing.outcome == Outcome.APPLIED
    shown = invoke_cli("status", "--config", str(world.config), "--output", "json")
    status = json.loads(shown.stdout)
    assert status[0]["state"] == "in sync" and status[0]["last_applied_commit"] == healing.commit
    assert shown.returncode == 0


def test_sync_if_safe_leaves_risky_drift_alone(files_world: FilesWorld) -> None:
    world = files_world.synced()  # live as a sync left it
    edit_config(world, drift={"self_heal": "sync-if-safe"}, target={"protected": ["*.conf"]})
    world.config_line.write_text("max_connections = 5\n")
    state, _ = check(world)
    assert "not healed: the correcting plan is risky" in state.message
    assert world.config_line.read_text() == "max_connections = 5\n"


def test_unreachable_target_is_unknown_not_a_crash(world: DemoWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    from driftgate import retry

    waits: list[float] = []
    monkeypatch.setattr(retry, "_sleep", waits.append)  # the retry budget's waits, recorded instead of slept
    edit_config(world, target={"hosts": {"web1": {"ansible_host": "127.0.0.1", "ansible_port": 9}}})
    state, record = check(world)
    assert state.is_completed() and state.name == "Unknown"
    assert record.outcome == Outcome.FAILED and "host unreachable" in record.reason
    assert waits == list(retry.BACKOFF), waits  # tried again within the budget, then given up
    shown = invoke_cli("status", "demo", "--config", str(world.config), "--output", "json")
    status = json.loads(shown.stdout)
    assert status[0]["state"] == "unknown" and "host unreachable" in status[0]["reason"]
    assert shown.returncode == 1


def test_kubernetes_drift_detected_and_healed_if_safe(world: DemoWorld, kube_double_factory: Any) -> None:  # noqa: F811
    from kubernetes import client, config

    api: KubeAPIDouble = kube_double_factory(ready_delay=0.1)
    add_kubernetes_environment(world, kubeconfig=str(api.kubeconfig_path), namespace="shop", force_conflicts=True)
    edit_config(world, "shop", drift={"self_heal": "sync-if-safe"})
    assert sync(world, "shop").is_completed()
    core = client.CoreV1Api(config.new_client_from_config(config_file=str(api.kubeconfig_path)))
    core.patch_namespaced_config_map("web-config", "shop", {"data": {"greeting": "edited by hand"}})

    state, record = check(world, "shop")
    assert [(c.kind, c.name) for c in record.changes] == [("ConfigMap", "web-config")]
    assert "-  greeting: edited by hand" in record.changes[0].diff
    assert "self-heal sync started" in state.message
    assert core.read_namespaced_config_map("web-config", "shop").data == {"greeting": "hello from git"}


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    handler = type("Receiver", (_Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


def test_webhook_notification_on_drift(files_world: FilesWorld, webhook: tuple[str, list[dict[str, Any]]]) -> None:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    world, (url, received) = files_world, webhook
    CustomWebhookNotificationBlock(name="ops", url=url, json_data={"subject": "{{subject}}", "text": "{{body}}"}).save("ops", overwrite=True)
    edit_config(world, notify={"block": "custom-webhook/ops", "events": ["drift"]})
    sync(world)
    assert received == []
    world.config_line.write_text("max_connections = 5\n")
    check(world)
    assert len(received) == 1
    assert received[0]["subject"] == "driftgate: demo: drift found"
    assert "update file app.conf" in received[0]["text"]


def test_webhook_notifications_on_failure_and_waiting_approval(files_world: FilesWorld, webhook: tuple[str, list[dict[str, Any]]]) -> None:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    from driftgate.flows.reconcile import reconcile

    world, (url, received) = files_world, webhook
    CustomWebhookNotificationBlock(name="ops2", url=url, json_data={"subject": "{{subject}}", "text": "{{body}}"}).save("ops2", overwrite=True)
    edit_config(world, notify={"block": "custom-webhook/ops2", "events": ["failed", "approval"]}, approval={"mode": "always", "timeout": "1s"})
    reconcile(environment="demo", config=str(world.config), return_state=True)  # pauses, times out
    assert [r["subject"] for r in received] == ["driftgate: demo: a sync waits for approval"]
    assert "requested by" in received[0]["text"]

    edit_config(world, source={"ref": "nope"})
    reconcile(environment="demo", config=str(world.config), return_state=True)
    assert received[-1]["subject"] == "driftgate: demo: sync failed at fetch"
    assert "ref 'nope' is not a branch, tag or commit" in received[-1]["text"]

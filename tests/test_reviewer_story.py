"""What a reviewer and a monitor see of a paused sync: the commits since the
last applied revision, a Secret's keys (never its values), the deadline as a
clock time, the run's name and tags; and `driftgate sync` saying it paused,
`driftgate wait` exit codes. A Kubernetes environment on the API double (no
Ansible run), the flows on the session's Prefect test server."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest

from driftgate.demo_repo import DemoWorld, add_kubernetes_environment, commit_change
from driftgate.store import Store
from tests.conftest import answer, approver, artifacts_of, as_cli, edit_config, invoke_cli
from tests.kubeapi.fixtures import kube_double_factory  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("prefect_api")

SECRET_VALUES = ("s3cret-from-git", "n3w-s3cret-value", "t0ken-value")


def shop_synced_then_two_commits(world: DemoWorld, kube_double_factory: Any) -> tuple[str, list[str]]:  # noqa: F811
    """The shop applied once (the record's last applied revision), then two commits
    a reviewer must see: a rotated password with a new key, and a new greeting."""
    from driftgate.flows.reconcile import reconcile

    api = kube_double_factory(ready_delay=0.05)
    add_kubernetes_environment(world, kubeconfig=str(api.kubeconfig_path), namespace="shop")
    with as_cli("bob", yes=True):
        assert reconcile(environment="shop", config=str(world.config), return_state=True).is_completed()
    applied = Store().last_applied_revision("shop")
    config = (world.repo / "k8s/config.yaml").read_text()
    rotated = config.replace("s3cret-from-git", "n3w-s3cret-value\n  token: t0ken-value")
    new = [
        commit_change(world.repo, "k8s/config.yaml", rotated, "rotate the database password, add a token"),
        commit_change(world.repo, "k8s/config.yaml", rotated.replace("hello from git", "hello again"), "a friendlier greeting"),
    ]
    edit_config(world, "shop", approval={"mode": "always", "timeout": "2m", "approvers": ["alice"]})
    return applied, new


def test_a_paused_plan_tells_the_whole_story_and_never_a_secret(world: DemoWorld, kube_double_factory: Any, prefect_api: str) -> None:  # noqa: F811
    from prefect.client.orchestration import get_client

    from driftgate.flows.reconcile import reconcile

    applied, (rotate, greet) = shop_synced_then_two_commits(world, kube_double_factory)
    seen: dict[str, Any] = {}

    def review(run: Any) -> None:
        with get_client(sync_client=True) as client:
            flow_run = client.read_flow_run(uuid.UUID(run.id))
            seen["name"] = flow_run.name
        seen["artifacts"] = {a.key: a.data for a in artifacts_of(flow_run.id)}
        seen["approvals"] = invoke_cli("approvals", env={"PREFECT_API_URL": prefect_api})
        seen["json"] = invoke_cli("approvals", "--output", "json", env={"PREFECT_API_URL": prefect_api})
        seen["paused"] = run
        answer("reject", "alice", "not before the release")(run)

    with approver(review):
        with as_cli("bob"):
            state = reconcile(environment="shop", config=str(world.config), return_state=True)
    assert state.is_cancelled() and state.name == "Rejected"
    assert seen["name"] == f"sync shop@{greet[:7]}"

    plan_md = seen["artifacts"]["plan-shop"]
    assert f"2 commits since {applied[:7]} (last applied)" in plan_md
    assert f"- {greet[:7]} a friendlier greeting — Demo Developer <dev@example.com>" in plan_md
    assert f"- {rotate[:7]} rotate the database password, add a token" in plan_md
    assert "+  token: '*** (new)'" in plan_md and "+  password: '*** (changed)'" in plan_md

    listed = seen["approvals"].stdout
    assert f"2 commits since {applied[:7]} (last applied):" in listed and f"{rotate[:7]} rotate the database password" in listed
    deadline = re.search(r"deadline: (\S+Z) \(in (\d+m)?(\d+s)?\): no decision by then is a rejection", listed)
    assert deadline, listed
    body = json.loads(seen["json"].stdout)[0]
    assert body["expires"].startswith(deadline.group(1)[:-1]) and len(body["commits"]) == 2

    (record,) = [r for r in Store().history("shop", limit=1)]
    shown = invoke_cli("show", str(record.id))
    assert shown.returncode == 0 and f"2 commits since {applied[:7]} (last applied):" in shown.stdout
    assert f"{greet[:7]} a friendlier greeting" in shown.stdout and "*** (changed)" in shown.stdout
    shown_json = json.loads(invoke_cli("show", str(record.id), "--output", "json").stdout)
    assert [c["subject"] for c in shown_json["commits"]["commits"]] == ["a friendlier greeting", "rotate the database password, add a token"]

    # Nowhere a reviewer looks holds a value of the Secret.
    everything = [plan_md, listed, seen["json"].stdout, shown.stdout, json.dumps(shown_json), json.dumps(seen["artifacts"], default=str)]
    for secret in SECRET_VALUES:
        assert not any(secret in text for text in everything), secret


def test_sync_says_it_paused_and_wait_exits_by_how_the_run_ended(world: DemoWorld, kube_double_factory: Any, prefect_api: str) -> None:  # noqa: F811
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from driftgate.flows.reconcile import reconcile

    env = {"PREFECT_API_URL": prefect_api, "DRIFTGATE_USER": "bob"}
    _, (_, greet) = shop_synced_then_two_commits(world, kube_double_factory)
    with approver(answer("approve", "alice", "checked the keys")) as paused:
        synced = invoke_cli("sync", "shop", "--config", str(world.config), env=env)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    run_id = paused[0].id
    out = synced.stdout
    assert "paused: shop waits for approval" in out and f"/runs/flow-run/{run_id}" in out
    assert "may decide: alice" in out and re.search(r"deadline: \S+Z \(in 2m\): no decision by then is a rejection", out)
    assert out.index("paused:") < out.index("applied: shop")
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(uuid.UUID(run_id))
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
    assert run.name == f"sync shop@{greet[:7]}" and {"driftgate", "env:shop", "sync"} <= set(run.tags)
    # The run carries them, its task runs do not: a tagged task asks the server for tag concurrency slots.
    assert task_runs and all(not t.tags for t in task_runs), [(t.name, t.tags) for t in task_runs]

    done = invoke_cli("wait", run_id, env=env)
    assert done.returncode == 0 and "applied: shop" in done.stdout

    text = (world.repo / "k8s/config.yaml").read_text().replace("hello again", "hello once more")
    commit_change(world.repo, "k8s/config.yaml", text, "another greeting")
    with approver(answer("reject", "alice", "no")):
        with as_cli("bob"):
            rejected = reconcile(environment="shop", config=str(world.config), return_state=True)
    assert rejected.name == "Rejected"
    refused = invoke_cli("wait", str(rejected.state_details.flow_run_id), env=env)
    assert refused.returncode == 1 and "rejected: shop" in refused.stdout

    with get_client(sync_client=True) as client:  # a run no worker picks up: it has not ended at the timeout
        scheduled = client.create_flow_run(flow=reconcile, parameters={"environment": "shop"})
    timed_out = invoke_cli("wait", str(scheduled.id), "--timeout", "0.2", env=env)
    assert timed_out.returncode == 3 and "has not ended after 0.2 s" in timed_out.stdout
    unknown = invoke_cli("wait", str(uuid.uuid4()), env=env)
    assert unknown.returncode == 1 and "no flow run" in unknown.stderr

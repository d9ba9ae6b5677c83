"""The run log joins each planned change to its own results by identity
(`Change.identity`: host and task_path, or the Kubernetes object), never by
name, and a run's mode follows from its purpose. Plain models, no Ansible run:
tests/test_unplanned.py does the same through a real playbook."""

from __future__ import annotations

from driftgate.models import (
    Action, ApplyResult, Change, HostResult, Plan, RecordedChange, RunMode, RunPurpose, TaskResult, TaskStatus,
)  # fmt: skip
from driftgate.runlog import RunLog


def _task(name: str, path: str, status: str) -> TaskResult:
    return TaskResult(host="web1", task=name, status=status, task_path=path)


def test_tasks_of_one_name_each_find_their_own_result() -> None:
    first = Change(action=Action.UPDATE, target="web1", name="restart", task_path="site.yml:3")
    second = Change(action=Action.UPDATE, target="web1", name="restart", task_path="site.yml:9")
    run = RunLog("prod", purpose=RunPurpose.SYNC, trigger="test", requested_by="bob")
    run.plan = Plan(environment="prod", revision="a" * 40, changes=(first, second))
    elsewhere = Change(action=Action.UPDATE, target="web1", name="restart", task_path="site.yml:20")
    run.result = ApplyResult(
        hosts=(HostResult(host="web1", tasks=(
            _task("restart", "site.yml:20", "changed"),  # same host, same name: another task
            _task("restart", "site.yml:9", "failed"),
            _task("restart", "site.yml:3", "changed"),
        )),),
        changes=(elsewhere,),
    )  # fmt: skip
    changes = run.finish().changes
    assert [(c.task_path, c.result, c.unplanned) for c in changes] == [
        ("site.yml:3", TaskStatus.CHANGED, False),
        ("site.yml:9", TaskStatus.FAILED, False),
        ("site.yml:20", TaskStatus.CHANGED, True),  # apply made it, the plan did not list it
    ]
    assert all(isinstance(c, RecordedChange) for c in changes)


def test_an_object_finds_its_apply_and_health_steps() -> None:
    target = "Deployment/web/api"
    change = Change(action=Action.UPDATE, target=target, name="api", kind="Deployment", namespace="web", api_version="apps/v1")
    other = Change(action=Action.DELETE, target="ConfigMap/web/api", name="api", kind="ConfigMap", namespace="web", api_version="v1")
    run = RunLog("prod", purpose=RunPurpose.SYNC, trigger="test", requested_by="bob")
    run.plan = Plan(environment="prod", revision="a" * 40, changes=(change, other))
    steps = (TaskResult(host=target, task="apply", status="changed"), TaskResult(host=target, task="health", status="ok"))
    pruned = (TaskResult(host="ConfigMap/web/api", task="prune", status="failed", message="gone wrong"),)
    run.result = ApplyResult(hosts=(HostResult(host=target, tasks=steps), HostResult(host="ConfigMap/web/api", tasks=pruned)))
    assert [(c.result, c.health) for c in run.finish().changes] == [(TaskStatus.CHANGED, TaskStatus.OK), (TaskStatus.FAILED, "")]


def test_a_runs_mode_follows_from_its_purpose() -> None:
    modes = {p: RunLog("prod", purpose=p, trigger="test", requested_by="bob").start().mode for p in RunPurpose}
    assert modes == {
        RunPurpose.SYNC: RunMode.SYNC, RunPurpose.ROLLBACK: RunMode.SYNC, RunPurpose.PROMOTE: RunMode.SYNC,
        RunPurpose.DRIFT: RunMode.PLAN, RunPurpose.PLAN: RunMode.PLAN,
    }  # fmt: skip
    start = RunLog("prod", purpose=RunPurpose.DRIFT, trigger="test", requested_by="bob").start()
    assert start.model_dump(mode="json")["kind"] == "drift"  # stored and shown as the run's kind, as always

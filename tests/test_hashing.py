"""One canonical-JSON SHA-256 helper (driftgate.hashing) behind every hash:
the values below were computed by the code before the helpers were merged, so
a plan approved, a record written or a cache filled before still matches."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from driftgate import audit, checkpoints, kubediff
from driftgate.hashing import canonical_hash, canonical_json
from driftgate.models import (
    Action, ApplyResult, Approval, Change, Decision, HostResult, Plan, RunPurpose, TaskResult,
)  # fmt: skip
from driftgate.runlog import RunLog
from driftgate.store import Store


def test_plan_hash_is_unchanged() -> None:
    change = Change(
        action=Action.UPDATE, target="web1", name="café ✓", module="copy", diff="-a\n+b",
        task_path="site.yml:3", rules=("prod",), risky=True,
    )  # fmt: skip
    plan = Plan(environment="prod", revision="a" * 40, changes=(change,))
    assert plan.plan_hash == "e20916fbb58b6a7faea807a13cd9265b689449d232f01e6a59fb681bbc4f7ca0"


def test_record_hashes_are_unchanged() -> None:
    row = {
        "seq": 1, "prev_hash": audit.GENESIS, "environment": "prod", "started_at": datetime(2026, 1, 2, 3, 4, 5, 6),
        "reason": "café ✓", "id": 9, "row_hash": "x", "hosts": [{"host": "web1"}],
    }  # fmt: skip
    assert audit.row_hash("runs", row) == "8ea684db17d3241302a4f8258923256d2e3b6c919bec0343404e8331eb39f9fe"
    changes = [{"action": "update", "diff": "é", "rules": ["a"], "risky": True, "extra": {}}, {"action": "create"}]
    assert audit.changes_hash(changes) == "691c54124109edbe1aaf1d3f064f7c2314242c8e71749fbbaa8e757829dd4eb6"
    assert '"reason":"café ✓"' in audit.canonical(row)  # the record keeps non-ASCII as it is


def test_kube_cache_hash_is_unchanged() -> None:
    obj = {"b": [1, "é"], "a": {"z": 1, "y": None}}
    assert kubediff.stable_hash(obj) == "9fc17fc23ffaa9c3743b4783669e48a69b7ca4f57cb61729fba44e1f67270729"


def test_checkpoint_payload_is_canonical() -> None:
    text = checkpoints.payload(index=1, prev="", chain="c", seq=2, head="h", database="db é", key="k")
    assert text == canonical_json(json.loads(text))
    assert " " not in text.replace("db \\u00e9", "") and "\\u00e9" in text  # compact, ASCII-only: as signed before


def test_a_run_is_stored_as_before(tmp_path: Path) -> None:
    """The approval, host results and change rows a run's hash covers are the same
    values the record held before they were typed (pinned from that code)."""
    t0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    ansible = Change(action=Action.UPDATE, target="web1", name="café", module="copy", diff="-a\n+b", task_path="site.yml:3", risky=True, rules=("prod",))  # fmt: skip
    obj = Change(action=Action.CREATE, target="ConfigMap/web/cfg", name="cfg", kind="ConfigMap", namespace="web", api_version="v1", paths=("data.x",))  # fmt: skip
    plan = Plan(environment="prod", revision="c" * 40, changes=(ansible, obj))
    steps = (TaskResult(host=obj.target, task="apply", status="changed"), TaskResult(host=obj.target, task="health", status="ok"))
    hosts = (
        HostResult(host="web1", changed=1, tasks=(TaskResult(host="web1", task="café", status="changed", task_path="site.yml:3"),)),
        HostResult(host=obj.target, changed=1, ok=1, tasks=steps),
    )
    unplanned = Change(action=Action.UPDATE, target="web1", name="extra", module="copy", task_path="site.yml:20", diff="+z")
    run = RunLog("prod", purpose=RunPurpose.SYNC, trigger="test", requested_by="bob")
    run.plan, run.result = plan, ApplyResult(hosts=hosts, changes=(ansible, unplanned))
    run.approval = Approval(required=True, decision=Decision.APPROVE, approver="alice", reason="ok", plan_hash=plan.plan_hash, decided_at=t0)  # fmt: skip
    store = Store(f"sqlite:///{tmp_path / 'record.db'}")
    store.record(run.finish())
    with store.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT approval, hosts, changes_hash FROM runs")).mappings().one()
    assert canonical_hash(json.loads(row["approval"]), ascii=False) == "4cab7b7b9eeea0ef2ce5a062eef7f1a7ada50db51ba6e35e660432c72b85a9cc"
    assert canonical_hash(json.loads(row["hosts"]), ascii=False) == "85d8377547c85c6d514b6eb4146be161a920c93f98e44ef8d081c22250fd213c"
    assert row["changes_hash"] == "b62490eb20b686a3b09662cf6a0159f46dce65b9c6b038d0bc2ec08932cef733"

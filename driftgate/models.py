"""Typed, immutable results that flow between the stages of a reconcile.

fetch -> `Checkout`, render -> `Bundle`, diff -> `Plan`, gate -> `Approval`,
apply -> `ApplyResult`; the record stores a `RunRecord` built from them. Every
engine module returns these; tasks pass them along unchanged, so the same
values are seen by the CLI, the flow and the tests.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Stage(str, Enum):
    """Where a run was when it stopped; the value names the Flux-style reason."""

    CONFIG = "config"
    FETCH = "fetch"
    RENDER = "render"
    DIFF = "diff"
    GATE = "gate"
    APPLY = "apply"
    RECORD = "record"

    @property
    def reason(self) -> str:
        return f"{self.value.capitalize()}Failed"


class Action(str, Enum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


class Outcome(str, Enum):
    """How a run ended, as the record and `history` show it."""

    IN_SYNC = "in-sync"  # nothing to do
    DRIFT = "drift"  # a read-only plan found pending changes
    APPLIED = "applied"
    REJECTED = "rejected"  # approval refused or timed out: nothing applied
    FAILED = "failed"


class Mode(str, Enum):
    PLAN = "plan"  # read-only: fetch, render, diff
    SYNC = "sync"  # the whole DAG


class Checkout(Frozen):
    """A commit of the source, exported to a directory of its own."""

    repo: str
    ref: str
    commit: str
    path: str = Field(description="subpath inside the repository")
    directory: Path = Field(description="the exported subpath at that commit")
    signed_by: str | None = None


class Bundle(Frozen):
    """What render produced for the target: an Ansible project directory."""

    commit: str
    directory: Path
    playbook: str
    inventory: tuple[str, ...] = Field(description="inventory sources, relative to directory")
    hosts: tuple[str, ...]
    cached: bool = False


class Change(Frozen):
    """One pending change: an Ansible task that would change a host, or a
    Kubernetes object to create, update or delete (prune)."""

    action: Action
    target: str = Field(description="Ansible: the host; Kubernetes: kind/namespace/name")
    name: str = Field(description="Ansible: the task name; Kubernetes: the object's name")
    module: str = Field(default="", description="Ansible: the module (task action)")
    kind: str = Field(default="", description="Kubernetes: the object's kind")
    namespace: str = Field(default="", description="Kubernetes: the object's namespace ('' if cluster-wide)")
    api_version: str = Field(default="", description="Kubernetes: the object's apiVersion")
    risky: bool = False
    rules: tuple[str, ...] = Field(default=(), description="the risk rules that made this change risky")
    diff: str = Field(default="", description="unified diff, secrets masked")


class Plan(Frozen):
    """Desired against live for one environment at one commit."""

    environment: str
    revision: str
    changes: tuple[Change, ...] = ()
    hosts: tuple[str, ...] = ()

    @property
    def in_sync(self) -> bool:
        return not self.changes

    @property
    def risky(self) -> bool:
        return any(c.risky for c in self.changes)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def plan_hash(self) -> str:
        """sha256 over the plan's content: an approval is for exactly this."""
        body = {
            "environment": self.environment,
            "revision": self.revision,
            "changes": [c.model_dump(mode="json") for c in self.changes],
        }
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class Decision(str, Enum):
    APPROVE = "approve"
    REJECT = "reject"


class Approval(Frozen):
    """The gate's verdict on one plan (by plan_hash)."""

    required: bool
    decision: Decision
    approver: str | None = None
    reason: str = ""
    plan_hash: str = ""
    decided_at: datetime | None = None
    timed_out: bool = False

    @property
    def approved(self) -> bool:
        return self.decision == Decision.APPROVE


class TaskResult(Frozen):
    """The result of one Ansible task on one host, as the apply saw it."""

    host: str
    task: str
    status: str  # ok | changed | failed | unreachable | skipped
    message: str = ""


class HostResult(Frozen):
    host: str
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    tasks: tuple[TaskResult, ...] = ()

    @property
    def succeeded(self) -> bool:
        return not (self.failed or self.unreachable)


class ApplyResult(Frozen):
    hosts: tuple[HostResult, ...] = ()

    @property
    def succeeded(self) -> bool:
        return all(h.succeeded for h in self.hosts)

    @property
    def changed(self) -> int:
        return sum(h.changed for h in self.hosts)


class RunRecord(Frozen):
    """One line of the record: everything an auditor asks about a run."""

    environment: str
    mode: Mode
    trigger: str
    outcome: Outcome
    started_at: datetime
    finished_at: datetime
    requested_by: str = ""
    repo: str = ""
    ref: str = ""
    commit: str = ""
    plan_hash: str = ""
    changes: list[dict[str, Any]] = Field(default_factory=list)
    approval: dict[str, Any] | None = None
    hosts: list[dict[str, Any]] = Field(default_factory=list)
    flow_run_id: str | None = None
    failed_stage: Stage | None = None
    reason: str = ""

    @property
    def duration_s(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

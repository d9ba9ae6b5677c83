"""Typed, immutable results that flow between the stages of a reconcile.

fetch -> `Checkout`, render -> `Bundle`, diff -> `Plan`, gate -> `Approval`,
apply -> `ApplyResult`; the record stores a `RunRecord` built from them. Every
engine module returns these; tasks pass them along unchanged, so the same
values are seen by the CLI, the flow and the tests.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, computed_field, model_serializer

from driftgate.hashing import canonical_hash
from driftgate.kinds import display_kind


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Stage(str, Enum):
    """Where a run was when it stopped; the value names the Flux-style reason."""

    CONFIG = "config"
    QUEUE = "queue"  # waiting for the environment's sync slot (another sync of it runs)
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
    RUN = "run"  # Ansible: a task whose effect check mode cannot predict; it runs at apply


class Outcome(str, Enum):
    """How a run ended, as the record and `history` show it."""

    IN_SYNC = "in-sync"  # nothing to do
    DRIFT = "drift"  # a read-only plan found pending changes
    APPLIED = "applied"
    REJECTED = "rejected"  # approval refused or timed out: nothing applied
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # started, never finished (the process died); marked by the next start
    SKIPPED = "skipped"  # stayed clear: a drift check meeting a sync; a scheduled or self-heal sync of a suspended environment or in a closed sync window
    REFUSED = "refused"  # a sync a person asked for that policy refused before it changed anything (driftgate.sync_guard, saved plans)


class Checkout(Frozen):
    """A commit of the source: where its files are read from (the mirror's object store)."""

    repo: str
    ref: str
    commit: str
    path: str = Field(description="subpath inside the repository")
    git_dir: Path = Field(description="the mirror clone holding the commit; read with driftgate.git.read_files/export")
    author: str = Field(default="", description="the commit's author, Name <email>")
    signed_by: str | None = None
    revision: str = Field(default="", description="the revision asked for instead of the ref ('' for the ref itself)")
    ref_head: str = Field(default="", description="with a revision: the commit at the head of the ref ('' if it has none)")

    @property
    def off_ref(self) -> bool:
        """Whether this commit is not the head of the environment's ref (a revision asked for)."""
        return bool(self.revision) and self.commit != self.ref_head


class Aim(Frozen):
    """Which commit a run fetches: its ref's head (the default), or a revision
    asked for (``--revision``, a rollback, a promotion) or pinned."""

    revision: str | None = Field(default=None, description="a branch, tag or commit; None for the ref's head")
    asked: bool = Field(default=False, description="asked for by a person: off the ref's head it is risky (pinned-revision)")
    within_ref: bool = Field(default=False, description="must be reachable from the ref's head (a promotion)")


class Bundle(Frozen):
    """What render produced for the target: an Ansible project directory, or a
    directory holding the rendered Kubernetes manifests."""

    commit: str
    directory: Path
    target_kind: str = "ansible"
    playbook: str = ""
    inventory: tuple[str, ...] = Field(default=(), description="inventory sources, relative to directory")
    hosts: tuple[str, ...] = Field(default=(), description="Ansible hosts, or the Kubernetes objects")
    cached: bool = False
    checkout: Checkout | None = Field(
        default=None, description="Kubernetes: the commit rendered, to render Secrets again (their values are not on disk)"
    )


class Manifest(Frozen):
    """One rendered Kubernetes object and where it came from (file and document)."""

    source: str
    object: dict[str, Any]
    encrypted: bool = Field(default=False, description="from an age-encrypted file (*.yaml.age)")
    redacted: bool = Field(default=False, description="a Secret as stored on disk: its values left out")

    @property
    def api_version(self) -> str:
        return self.object["apiVersion"]

    @property
    def kind(self) -> str:
        return self.object["kind"]

    @property
    def name(self) -> str:
        return self.object["metadata"]["name"]

    @property
    def namespace(self) -> str:
        return self.object["metadata"].get("namespace") or ""

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def identity(self) -> tuple[str, str, str, str]:
        """(group, kind, namespace, name): what makes two objects the same object."""
        return (self.group, self.kind, self.namespace, self.name)

    @property
    def display(self) -> str:
        return object_display(self.kind, self.namespace, self.name, api_version=self.api_version)


def object_display(kind: str, namespace: str, name: str, *, api_version: str = "") -> str:
    """How an object is named to people: Kind/namespace/name (Kind/name if cluster-wide);
    a custom kind that borrows a built-in's name shows its group (Namespace.servicebus.azure.com/...)."""
    if api_version:
        kind = display_kind(api_version, kind)
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


class Change(Frozen):
    """One pending change: an Ansible task that would change a host, or a
    Kubernetes object to create, update or delete (prune), or a change of
    another target kind (`driftgate.targets`); the fields named for one kind
    are left empty by the others."""

    action: Action
    target: str = Field(description="Ansible: the host; Kubernetes: kind/namespace/name")
    name: str = Field(description="Ansible: the task name; Kubernetes: the object's name")
    module: str = Field(default="", description="Ansible: the module (task action)")
    kind: str = Field(default="", description="Kubernetes: the object's kind")
    namespace: str = Field(default="", description="Kubernetes: the object's namespace ('' if cluster-wide)")
    api_version: str = Field(default="", description="Kubernetes: the object's apiVersion")
    paths: tuple[str, ...] = Field(
        default=(), description="Kubernetes: the fields that change, as dotted paths (spec.replicas); for path rules"
    )
    risky: bool = False
    rules: tuple[str, ...] = Field(default=(), description="the risk rules that made this change risky")
    diff: str = Field(default="", description="unified diff, secrets masked")
    task_path: str = Field(
        default="",
        description="Ansible: where the task is defined in the bundle (file:line), #N for its Nth run on the host",
    )
    note: str = Field(default="", description="for action run: why check mode cannot predict what the task does")
    target_kind: str = Field(
        default="",
        description="the target kind that planned it (driftgate.targets); '' in changes recorded before it was kept",
    )

    @property
    def identity(self) -> tuple[str, str]:
        """What makes this change the same one in the plan, in apply's results and in the
        record (never its name: two tasks may share one): (host, task_path) for an Ansible
        task; (Kind/namespace/name, "") for a Kubernetes object, as its apply, prune and
        health results name it. `TaskResult.change_identity` is the other side."""
        return (self.target, self.task_path)


class CommitInfo(Frozen):
    """One commit as a reviewer reads it in a plan's story."""

    sha: str
    author: str = Field(description="Name <email>")
    subject: str
    signer: str = Field(default="", description="who signed it, as git reports it ('' if unsigned)")


class CommitRange(Frozen):
    """What Git changed between the environment's last applied revision and the
    planned one: the newest commits first, at most a page of them (driftgate.commits)."""

    since: str = Field(default="", description="the last applied revision ('' if never applied)")
    until: str
    commits: tuple[CommitInfo, ...] = ()
    more: int = Field(default=0, description="commits in the range beyond those listed")
    undone: int = Field(default=0, description="commits applied now that the planned revision does not contain (a rollback)")


class Plan(Frozen):
    """Desired against live for one environment at one commit."""

    environment: str
    revision: str
    changes: tuple[Change, ...] = ()
    hosts: tuple[str, ...] = ()
    warnings: tuple[str, ...] = Field(
        default=(), description="what a reviewer should know that is no change, e.g. a Secret in plain text in Git"
    )
    commits: CommitRange | None = Field(
        default=None, description="the commits since the last applied revision, for the reviewer; not part of plan_hash"
    )

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
            # target_kind follows from the environment: left out, so a plan keeps the hash it had before it was kept
            "changes": [c.model_dump(mode="json", exclude={"target_kind"}) for c in self.changes],
        }
        return canonical_hash(body)


class Decision(str, Enum):
    APPROVE = "approve"
    REJECT = "reject"


class SignatureEvidence(Frozen):
    """What proves a signed approval, kept in the record so that ``driftgate
    audit verify`` can check it again offline (driftgate.signing)."""

    statement: str  # the exact text signed
    signature: str  # armored SSH signature
    fingerprint: str  # SHA256 fingerprint of the key that signed
    principal: str  # the allowed_signers principal it was verified as
    allowed_signers: str  # the allowed_signers line(s) of that key
    allowed_signers_source: str  # where the file came from: repository path at a commit, or a block


class Approval(Frozen):
    """The gate's verdict on one plan (by plan_hash)."""

    required: bool
    decision: Decision
    approver: str | None = None
    reason: str = ""
    plan_hash: str = ""
    decided_at: datetime | None = None
    timed_out: bool = False
    signature: SignatureEvidence | None = None  # when the environment requires signed approvals

    @property
    def approved(self) -> bool:
        return self.decision == Decision.APPROVE


class TaskStatus(str, Enum):
    """How one task (or one step on a Kubernetes object) ended."""

    OK = "ok"
    CHANGED = "changed"
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    SKIPPED = "skipped"


class TaskResult(Frozen):
    """The result of one Ansible task on one host, or of one step (apply, prune,
    health) on a Kubernetes object, as the apply saw it."""

    host: str
    task: str = Field(description="Ansible: the task's name; Kubernetes: the step (apply, prune, health)")
    status: TaskStatus
    message: str = ""
    task_path: str = Field(default="", description="as in `Change.task_path`: joins a result to its planned change")

    @property
    def change_identity(self) -> tuple[str, str]:
        """The `Change.identity` of the change this result is about."""
        return (self.host, self.task_path)


class HostResult(Frozen):
    """The result on one target: an Ansible host, or a Kubernetes object
    (``host`` is then Kind/namespace/name and the tasks are apply/prune/health)."""

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
    changes: tuple[Change, ...] = Field(
        default=(),
        description="Ansible: every task that changed a host, as a change (with its diff), planned or not",
    )

    @property
    def succeeded(self) -> bool:
        return all(h.succeeded for h in self.hosts)

    @property
    def changed(self) -> int:
        return sum(h.changed for h in self.hosts)

    @property
    def failures(self) -> list[str]:
        """'host: task: message' for each task that failed or found its host unreachable."""
        return [
            f"{t.host}: {t.task}: {t.message or t.status.value}"
            for h in self.hosts
            for t in h.tasks
            if t.status in (TaskStatus.FAILED, TaskStatus.UNREACHABLE)
        ]


class RunMode(str, Enum):
    """How far a run goes through the DAG (the record's ``mode``); follows from its `RunPurpose`."""

    PLAN = "plan"  # read-only: fetch, render, diff
    SYNC = "sync"  # the whole DAG


class RunPurpose(str, Enum):
    """What a run was for. The record stores and shows it as the run's ``kind``
    (its column and JSON key): not to be confused with a Kubernetes object's kind."""

    SYNC = "sync"  # reconcile: the whole DAG
    DRIFT = "drift"  # a scheduled read-only drift check
    ROLLBACK = "rollback"  # a sync to an earlier revision (`driftgate rollback`)
    PROMOTE = "promote"  # a sync to the commit another environment ran healthy (`driftgate promote`)
    PLAN = "plan"  # `driftgate plan`: read-only, by a person

    @property
    def mode(self) -> RunMode:
        """Read-only purposes only plan; the others go through the whole DAG."""
        return RunMode.PLAN if self in (RunPurpose.DRIFT, RunPurpose.PLAN) else RunMode.SYNC

    @property
    def moves_environment(self) -> bool:
        """Whether a run of this purpose may change the environment (a sync or a rollback)."""
        return self.mode == RunMode.SYNC


class Trigger(str, Enum):
    """How a run came to be (the record's `trigger`); see flows/requests.py."""

    SCHEDULE = "schedule"  # created by the Prefect server's scheduler
    MANUAL = "manual"  # started from the Prefect UI or API (or by Python code calling the flow)
    CLI = "cli"  # `driftgate sync` / `plan`, by the CLI's user
    SELF_HEAL = "self-heal"  # started by a drift check


class _RunFacts(Frozen):
    """The record's names for a run's purpose: ``kind`` in the database and in
    JSON (as it always was), `purpose` in Python."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )


class RunStart(_RunFacts):
    """What the record knows when a run starts: written first, so a run whose
    process dies is still in the record (marked interrupted by the next start)."""

    run_id: str
    environment: str
    purpose: RunPurpose = Field(alias="kind")
    mode: RunMode
    trigger: str
    requested_by: str = ""
    started_at: datetime
    flow_run_id: str | None = None
    flow_run_url: str | None = None
    version: str = ""


class RecordedChange(Change):
    """A change as the record keeps it: the plan's `Change`, what apply did to it
    and its health, or a change apply made that the plan did not list.

    Fields a newer or older driftgate wrote that this one does not know are
    kept as they were read (``extra="allow"``), so nothing in the record is lost."""

    model_config = ConfigDict(frozen=True, extra="allow")

    # The record's own columns for a change (driftgate.store), in the order the
    # record has always given them: dumps list these first (`history --output json`).
    COLUMNS: ClassVar[tuple[str, ...]] = (
        "action", "target", "name", "module", "kind", "namespace", "api_version", "risky", "rules", "diff", "result", "health",
    )  # fmt: skip

    result: TaskStatus | Literal[""] = Field(default="", description="what apply did to it; '' when nothing was applied")
    health: TaskStatus | Literal[""] = Field(default="", description="Kubernetes: the object's health check after apply")
    unplanned: bool = Field(default=False, description="apply made it, the approved plan did not list it")

    @model_serializer(mode="wrap")
    def _columns_first(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped = handler(self)
        if dumped.get("target_kind") == "":  # a change from before changes named their kind: stored (and hashed) as then
            del dumped["target_kind"]
        return {**{k: dumped[k] for k in self.COLUMNS if k in dumped}, **dumped}


class RunRecord(_RunFacts):
    """One line of the record: everything an auditor asks about a run."""

    environment: str
    mode: RunMode
    trigger: str
    outcome: Outcome
    started_at: datetime
    finished_at: datetime
    requested_by: str = ""
    repo: str = ""
    ref: str = ""
    commit: str = ""
    plan_hash: str = ""
    changes: list[RecordedChange] = Field(default_factory=list)
    approval: Approval | None = None
    hosts: list[HostResult] = Field(default_factory=list)
    flow_run_id: str | None = None
    failed_stage: Stage | None = None
    reason: str = ""
    # Added with the audit record; defaults keep older callers valid.
    run_id: str = Field(default="", description="shared by the run's start and end in the record")
    purpose: RunPurpose = Field(default=RunPurpose.SYNC, alias="kind")
    commit_author: str = ""
    signed_by: str | None = Field(default=None, description="the verified signer of the commit, if required")
    flow_run_url: str | None = None
    version: str = Field(default="", description="the driftgate version that ran")
    # Where a run was aimed when not at its ref's head; stored together as the row's ``origin``.
    revision: str = Field(default="", description="the revision asked for (--revision, rollback, promotion, a pin); '' for the ref")
    rolled_back_from: str = Field(default="", description="a rollback: the commit the environment was last moved to")
    promoted_from: str = Field(default="", description="a promotion: the source environment's run, 'ENV run RUN_ID'")

    ORIGIN: ClassVar[tuple[str, ...]] = ("revision", "rolled_back_from", "promoted_from")

    @property
    def duration_s(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

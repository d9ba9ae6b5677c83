"""What the store returns, and how a run's models become rows and rows models again.

The row values written here enter the hash chain: a run's ``approval`` and
``hosts`` are stored as their JSON dumps and each `RecordedChange` as a row of
``changes`` (its own columns, the rest in ``extra``), exactly as driftgate
has always written them. Used by the store's appends and queries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from driftgate.models import Frozen, Outcome, RecordedChange, RunMode, RunPurpose, RunRecord, RunStart, Stage
from driftgate.store.engine import aware
from driftgate.store.tables import CHANGE_COLUMNS


class StoredRun(RunRecord):
    """A `RunRecord` as read back, with its row id and place in the chain."""

    id: int
    seq: int = 0
    row_hash: str = ""


class DriftEvent(Frozen):
    """Drift seen in an environment (by a drift check, or healed by a sync)."""

    environment: str
    detected_at: datetime
    commit: str = ""
    plan_hash: str = ""
    changes: list[dict[str, Any]] = []
    action: str = "reported"
    run_id: str = ""
    id: int | None = None


class Pin(Frozen):
    """An environment held at one commit (`driftgate sync --revision`, a rollback,
    a promotion) until `driftgate unpin`: who set it, why, and when."""

    environment: str
    revision: str  # as asked: a tag, a branch, a SHA
    commit: str
    set_by: str
    reason: str = ""
    run_id: str = ""
    recorded_at: datetime


class OpenRun(RunStart):
    """A run's start, as `Store.runs_in_progress` finds it: where it runs, and
    whether it has ended since (then it no longer works)."""

    host: str = ""
    pid: int = 0
    ended: bool = False


class EnvironmentStatus(Frozen):
    """Where an environment stands: what was last attempted, what was last applied."""

    environment: str
    recorded_at: datetime
    run_id: str = ""
    last_attempted_revision: str = ""
    last_attempted_at: datetime | None = None
    last_attempted_outcome: str = ""
    last_applied_revision: str = ""
    last_applied_at: datetime | None = None


def origin_values(run: RunRecord) -> dict[str, Any] | None:
    """The run's ``origin`` column: where it was aimed, or None for its ref's head."""
    origin = {key: getattr(run, key) for key in RunRecord.ORIGIN if getattr(run, key)}
    return origin or None


class Suspension(Frozen):
    """An environment is suspended: by whom, since when, why (`Store.suspension`)."""

    environment: str
    suspended_by: str
    suspended_at: datetime
    reason: str

    def describe(self) -> str:
        """'suspended by alice at 2026-12-01 02:50 UTC: database migration'."""
        return f"suspended by {self.suspended_by} at {self.suspended_at:%Y-%m-%d %H:%M} UTC: {self.reason}"


def change_values(position: int, change: RecordedChange) -> dict[str, Any]:
    """One recorded change as a row of ``changes`` (without its run's key)."""
    dumped = change.model_dump(mode="json")
    row: dict[str, Any] = {"position": position}
    for key in CHANGE_COLUMNS:
        value = dumped.get(key)
        if key == "risky":
            row[key] = bool(value)
        elif key == "rules":
            row[key] = [str(r) for r in value or ()]
        else:
            row[key] = "" if value is None else str(value)
    row["extra"] = {k: v for k, v in dumped.items() if k not in CHANGE_COLUMNS}  # fields added later
    return row


def recorded_change(row: Any) -> RecordedChange:
    """A row of ``changes`` as the change it records."""
    return RecordedChange.model_validate({**{key: row[key] for key in CHANGE_COLUMNS}, **(row["extra"] or {})})


def stored_run(row: Any, changes: list[RecordedChange]) -> StoredRun:
    """A row of ``runs`` and its changes as a `StoredRun`."""
    data = {key: row[key] for key in StoredRun.model_fields if key in row and key != "changes"}
    data.update(
        mode=RunMode(row["mode"]),
        purpose=RunPurpose(row["kind"]),
        outcome=Outcome(row["outcome"]),
        failed_stage=Stage(row["failed_stage"]) if row["failed_stage"] else None,
        started_at=aware(row["started_at"]),
        finished_at=aware(row["finished_at"]),
    )
    origin = row.get("origin") or {}
    data.update({key: origin.get(key, "") for key in RunRecord.ORIGIN})
    return StoredRun(**data, changes=changes)


def open_run(row: Any) -> OpenRun:
    """A row of ``run_starts`` (joined with its end, if any) as an `OpenRun`."""
    data = {k: row[k] for k in OpenRun.model_fields if k in row}
    data.update(purpose=RunPurpose(row["kind"]), started_at=aware(row["started_at"]), ended=row["outcome"] is not None)
    return OpenRun(**data)


def interrupted(start: Any, *, noticed_by: RunStart) -> RunRecord:
    """The end of a run whose process died (a row of ``run_starts``), as the next start records it."""
    return RunRecord(
        run_id=start.run_id,
        environment=start.environment,
        purpose=RunPurpose(start.kind),
        mode=RunMode(start.mode),
        trigger=start.trigger,
        requested_by=start.requested_by,
        outcome=Outcome.INTERRUPTED,
        started_at=aware(start.started_at),
        finished_at=noticed_by.started_at,  # when it was noticed: the real end is unknown
        flow_run_id=start.flow_run_id,
        flow_run_url=start.flow_run_url,
        version=start.version,
        reason=(
            f"the run never finished: its process ({start.host}, pid {start.pid}) ended before it recorded an "
            f"outcome; noticed when run {noticed_by.run_id[:12]} started"
        ),
    )

"""Where each environment stands, in one line: for `driftgate status`.

Derived from the record (the last sync, the last drift check, the last
applied revision) and the commit at the head of the environment's ref now.
States, worst first: failing (the last sync failed), unknown (the last check
could not finish, or it was never synced), drifted (the last check found
changes), out of date (Git moved past what was applied; for a pinned
environment: what was applied is not its pin), in sync. Beside the state: a
suspension (`driftgate suspend`) and a sync window closed now. Called by the
CLI, which adds a waiting approval from Prefect.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import Enum

from pydantic import BaseModel

from driftgate import windows
from driftgate.config import SyncWindow
from driftgate.models import Outcome
from driftgate.store import Store, StoredRun


class State(str, Enum):
    IN_SYNC = "in sync"
    OUT_OF_DATE = "out of date"
    DRIFTED = "drifted"
    UNKNOWN = "unknown"
    FAILING = "failing"


class StatusLine(BaseModel):
    environment: str
    state: State
    reason: str = ""
    last_applied_commit: str = ""
    last_sync_at: datetime | None = None
    last_sync_outcome: str = ""
    head_commit: str = ""
    last_check_at: datetime | None = None
    last_check_outcome: str = ""
    waiting_approval: str = ""  # a paused sync's flow run, filled in by the CLI
    suspended: str = ""  # "suspended by alice at ...: why" while `driftgate suspend` holds its syncs
    sync_window: str = ""  # why syncs are closed now by sync.windows, if they are
    pinned_to: str = ""  # the commit a pin holds it at ('' when it follows its ref)
    pinned_revision: str = ""
    pinned_by: str = ""
    pin_reason: str = ""
    pinned_at: datetime | None = None

    @property
    def pin(self) -> str:
        """'9f8e7d6c5b4a by alice: reason', or ''."""
        if not self.pinned_to:
            return ""
        return f"{self.pinned_to[:12]} by {self.pinned_by}" + (f": {self.pin_reason}" if self.pin_reason else "")


def environment_status(
    environment: str, store: Store, *, head: str | None, head_error: str = "", sync_windows: Sequence[SyncWindow] = ()
) -> StatusLine:
    line = _state(environment, store, head=head, head_error=head_error)
    suspension = store.suspension(environment)
    closed = windows.closed(list(sync_windows))
    return line.model_copy(
        update={"suspended": suspension.describe() if suspension else "", "sync_window": closed.reason if closed else ""}
    )


def _state(environment: str, store: Store, *, head: str | None, head_error: str) -> StatusLine:
    # An interrupted run, a skipped one (it stayed clear) and a refused one found nothing.
    found_nothing = (Outcome.INTERRUPTED, Outcome.SKIPPED, Outcome.REFUSED)
    runs = [r for r in store.history(environment, limit=50) if r.outcome not in found_nothing]
    last_sync = next((r for r in runs if r.purpose.moves_environment), None)
    last_check = next((r for r in runs if not r.purpose.moves_environment), None)
    recorded = store.status(environment)
    applied = recorded.last_applied_revision if recorded else ""
    pin = store.pin_of(environment)
    line = StatusLine(
        environment=environment,
        state=State.IN_SYNC,
        last_applied_commit=applied,
        last_sync_at=last_sync.finished_at if last_sync else None,
        last_sync_outcome=last_sync.outcome.value if last_sync else "",
        head_commit=head or "",
        last_check_at=last_check.finished_at if last_check else None,
        last_check_outcome=last_check.outcome.value if last_check else "",
    )
    if pin is not None:  # held at the pin: that is where it should be, not the ref's head
        line = line.model_copy(update={
            "pinned_to": pin.commit, "pinned_revision": pin.revision, "pinned_by": pin.set_by,
            "pin_reason": pin.reason, "pinned_at": pin.recorded_at,
        })  # fmt: skip
        head = pin.commit
    check_is_newer = last_check is not None and (last_sync is None or _newer(last_check, last_sync))
    if last_sync is not None and last_sync.outcome == Outcome.FAILED:
        return line.model_copy(update={"state": State.FAILING, "reason": last_sync.reason})
    if check_is_newer and last_check.outcome == Outcome.FAILED:
        return line.model_copy(update={"state": State.UNKNOWN, "reason": last_check.reason})
    if not applied:
        return line.model_copy(update={"state": State.UNKNOWN, "reason": "never synced"})
    if check_is_newer and last_check.outcome == Outcome.DRIFT:
        count = len(last_check.changes)
        return line.model_copy(update={"state": State.DRIFTED, "reason": f"{count} change(s) found by the last check"})
    if head is None:
        return line.model_copy(update={"state": State.UNKNOWN, "reason": f"cannot read the ref's head: {head_error}"})
    if head != applied:
        wanted = f"pinned to {head[:12]}" if pin is not None else f"Git is at {head[:12]}"
        return line.model_copy(update={"state": State.OUT_OF_DATE, "reason": f"{wanted}, {applied[:12]} is applied"})
    return line


def exit_code(states: list[State]) -> int:
    """`driftgate status`'s exit code: 1 when any environment is failing or
    unknown, else 2 when any is drifted or out of date, else 0 (all in sync)."""
    if any(s in (State.FAILING, State.UNKNOWN) for s in states):
        return 1
    if any(s in (State.DRIFTED, State.OUT_OF_DATE) for s in states):
        return 2
    return 0


def _newer(a: StoredRun, b: StoredRun) -> bool:
    return (a.finished_at, a.id) > (b.finished_at, b.id)

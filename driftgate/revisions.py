"""Where a run is aimed: the ref's head, a revision asked for, a pin, a rollback or a promotion.

`destination()` answers it for one run, from the record: a revision asked for
(``sync --revision``) wins; a rollback goes to the commit of the last run that
applied and ended healthy at another commit than the one the environment was
last moved to (or the run or revision named); a promotion to the commit its
source environment has run healthy for ``promote_from.after``; otherwise the
environment's pin, if it has one, else its ref's head. A request that cannot
be met (no run to roll back to, nothing healthy long enough to promote) is a
`PermanentError` naming the environment, and nothing is applied.

Called by the reconcile and drift-check flows and by ``driftgate plan``; the
flows pin the environment afterwards (`pin_after`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from driftgate.config import Environment
from driftgate.errors import PermanentError
from driftgate.models import Aim, Outcome, RunPurpose, RunRecord, Stage
from driftgate.runlog import now as utc_now
from driftgate.store import Store, StoredRun
from driftgate.store.records import Pin

HEALTHY = (Outcome.APPLIED, Outcome.IN_SYNC)  # a moving run that ended healthy (health is part of apply)
_LOOKBACK = 500  # runs of an environment searched for a rollback or promotion target


@dataclass(frozen=True)
class Destination:
    """Where one run goes, and what its record says about why."""

    aim: Aim = field(default_factory=Aim)
    revision: str = ""  # recorded: the revision asked for or pinned ('' for the ref's head)
    rolled_back_from: str = ""
    promoted_from: str = ""
    pin_reason: str = ""  # what the pin set after it says, when it pins

    @property
    def pins(self) -> bool:
        """A run that moves the environment here pins it: a revision asked for, a rollback, a promotion."""
        return self.aim.asked or self.aim.within_ref

    def note(self, run: object) -> None:
        """Copy what the record keeps onto a `driftgate.runlog.RunLog`."""
        for key in RunRecord.ORIGIN:
            setattr(run, key, getattr(self, key))


def destination(
    store: Store,
    env: Environment,
    *,
    purpose: RunPurpose = RunPurpose.SYNC,
    revision: str | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> Destination:
    """Where a run of ``purpose`` goes (``revision``: asked for, or a rollback's --to)."""
    if purpose == RunPurpose.ROLLBACK:
        return rollback(store, env, to=revision, reason=reason)
    if purpose == RunPurpose.PROMOTE:
        return promotion(store, env, now=now)
    if revision:
        return Destination(Aim(revision=revision, asked=True), revision=revision, pin_reason=reason)
    pin = store.pin_of(env.name)
    if pin is not None:  # held there until unpinned: schedules and self-heal do not move it
        return Destination(Aim(revision=pin.commit), revision=pin.commit)
    return Destination()


def rollback(store: Store, env: Environment, *, to: str | None, reason: str = "") -> Destination:
    """Back to the run or revision ``to``, or to the last run that applied and ended
    healthy at another commit than the one the environment was last moved to."""
    status = store.status(env.name)
    current = status.last_attempted_revision if status else ""
    where = f"environment {env.name!r}"
    if to:
        run = store.get(to)
        if run is not None and run.environment != env.name:
            commit_hint = " (if you meant a commit, give more of its characters)" if _could_be_a_commit(to) else ""
            raise PermanentError(
                f"{where}: run {to} is a run of {run.environment!r}, not of {env.name!r}{commit_hint}", stage=Stage.FETCH
            )
        if run is not None:
            _refuse_if_a_commit_too(store, env.name, to, run)
        if run is not None and not run.commit:
            raise PermanentError(f"{where}: run {to} recorded no commit to roll back to ({run.outcome.value})", stage=Stage.FETCH)
        target = run.commit if run is not None else to
    else:
        found = last_healthy(store, env.name, other_than=current)
        if found is None:
            since = f" than {current[:12]}" if current else ""
            raise PermanentError(
                f"{where}: no earlier run applied and ended healthy at another commit{since}: nothing to roll back to "
                "(name one with --to RUN or --to REVISION)",
                stage=Stage.FETCH,
            )
        target = found.commit
    said = reason or (f"rollback from {current[:12]}" if current else "rollback")
    return Destination(Aim(revision=target, asked=True), revision=to or target, rolled_back_from=current, pin_reason=said)


def _could_be_a_commit(name: str) -> bool:
    """Git names a commit by 4 or more of its hex characters."""
    return len(name) >= 4 and all(c in "0123456789abcdef" for c in name.lower())


def _refuse_if_a_commit_too(store: Store, environment: str, to: str, run: StoredRun) -> None:
    """``to`` names ``run`` (a record id, a run id prefix): refuse it when it also
    starts another commit that ``environment`` has run. Digits are a record id
    first, and about one short commit SHA in 27 is digits only."""
    if not _could_be_a_commit(to):
        return
    named = to.lower()
    commits = sorted({r.commit for r in store.history(environment, limit=_LOOKBACK) if r.commit.startswith(named)} - {run.commit})
    if commits:
        raise PermanentError(
            f"environment {environment!r}: --to {to} names both run #{run.id} ({run.commit[:12] or 'no commit'}) "
            f"and commit {commits[0][:12]}, which {environment!r} ran: say which, the run by its run id "
            f"({run.run_id}) or the commit with more of its characters",
            stage=Stage.FETCH,
        )


def last_healthy(store: Store, environment: str, *, other_than: str = "") -> StoredRun | None:
    """The newest run that moved ``environment`` and ended healthy, at a commit other than ``other_than``."""
    for run in store.history(environment, limit=_LOOKBACK):
        if run.purpose.moves_environment and run.outcome in HEALTHY and run.commit and run.commit != other_than:
            return run
    return None


@dataclass(frozen=True)
class Streak:
    """A commit that stayed applied and healthy in an environment from ``since`` to ``until``."""

    commit: str
    run: StoredRun  # the run that applied it
    since: datetime
    until: datetime | None = None  # None: still there

    def lasted(self, now: datetime) -> timedelta:
        return (self.until or now) - self.since


def streaks(runs: list[StoredRun]) -> list[Streak]:
    """Healthy streaks, oldest first, from an environment's runs (oldest first).
    A run that failed at apply, an interrupted one, or one that moved it to
    another commit ends a streak; a run that stopped before apply (a refused
    plan, an unreachable Git) changed nothing and does not."""
    found: list[Streak] = []
    for run in runs:
        if not run.purpose.moves_environment:
            continue
        current = found[-1] if found and found[-1].until is None else None
        healthy = run.outcome in HEALTHY and bool(run.commit)
        if healthy and current is not None and current.commit == run.commit:
            continue
        broke = run.outcome == Outcome.INTERRUPTED or (run.outcome == Outcome.FAILED and run.failed_stage == Stage.APPLY)
        if current is not None and (healthy or broke):
            found[-1] = Streak(current.commit, current.run, current.since, until=run.started_at)
        if healthy:
            found.append(Streak(run.commit, run, run.finished_at))
    return found


def promotion(store: Store, env: Environment, *, now: datetime | None = None) -> Destination:
    """The commit ``env.promote_from.environment`` has run healthy for at least
    ``promote_from.after``; it must be reachable from ``env``'s ref (checked at fetch)."""
    where = f"environment {env.name!r}"
    if env.promote_from is None:
        raise PermanentError(f"{where} has no promote_from in driftgate.yaml: nothing to promote from", stage=Stage.FETCH)
    source, after = env.promote_from.environment, env.promote_from.after
    now = now or utc_now()
    runs = list(reversed(store.history(source, limit=_LOOKBACK)))
    ready = [s for s in streaks(runs) if s.lasted(now) >= after]
    if not ready:
        newest = next((s for s in reversed(streaks(runs))), None)
        seen = f" (the newest, {newest.commit[:12]}, for {_duration(newest.lasted(now))})" if newest else ""
        raise PermanentError(
            f"{where}: cannot promote from {source!r}: no commit has been applied and healthy there for {_duration(after)}{seen}",
            stage=Stage.FETCH,
        )
    best = ready[-1]
    came_from = f"{source} run {best.run.run_id}"
    return Destination(
        Aim(revision=best.commit, within_ref=True),
        revision=best.commit,
        promoted_from=came_from,
        pin_reason=f"promoted from {source} (run {best.run.run_id[:12]}, record #{best.run.id})",
    )


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def pin_after(store: Store, record: RunRecord, going: Destination, *, by: str) -> Pin | None:
    """After a run that moved the environment where it was asked (a revision, a
    rollback, a promotion) and ended healthy: hold it there (`Store.pin`)."""
    if not going.pins or record.outcome not in HEALTHY or not record.commit:
        return None
    pin = Pin(
        environment=record.environment,
        revision=going.revision or record.commit,
        commit=record.commit,
        set_by=by,
        reason=going.pin_reason,
        run_id=record.run_id,
        recorded_at=record.finished_at,
    )
    store.pin(pin)
    return pin

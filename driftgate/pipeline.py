"""The read-only pipeline, written once: fetch -> render -> diff, inside the run's record.

Every caller that computes a plan goes through `Pipeline`: the reconcile flow
(its plan, and its replan right before apply), the drift check, and
``driftgate plan``. It notes the run's start in the record, runs the three
stages, and makes sure every run ends in the record: a `DriftgateError` is
noted with the stage it names and the caller records the run as usual; any
other exception (a bug, an unforeseen failure) is recorded at once, as failed
at the stage it happened in, and raised again so that it fails the flow run
(or the command) visibly instead of being found later as "interrupted".

The stages themselves are passed in as `Stages`: the flows pass the Prefect
tasks of tasks/stages.py (each one a task run in the UI), ``driftgate plan``
passes `engine_stages()`, the engine functions below, and never imports
Prefect. The tasks wrap the same functions, so both do the same work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

from driftgate import commits, git, policy, retry, targets
from driftgate.access import Access
from driftgate.config import Environment
from driftgate.errors import DriftgateError, TransientError
from driftgate.models import Aim, Bundle, Checkout, Plan, RunRecord, RunStart, Stage
from driftgate.runlog import RunLog

OnRetry = Callable[[int, float, TransientError], None]
Applied = Callable[[str], str]  # environment -> its last applied revision ('' if none)


def fetch(env: Environment, access: Access, aim: Aim | None = None, *, on_retry: OnRetry | None = None) -> Checkout:
    """The environment's source at its ref (or where ``aim`` says), within the one
    retry budget (``on_retry`` is told of each retry)."""
    aim = aim or Aim()
    return retry.call(
        lambda: git.fetch(
            env.source, environment=env.name, auth=access.git, signing_keys=access.signing_keys,
            revision=aim.revision, within_ref=aim.within_ref,
        ),  # fmt: skip
        on_retry=on_retry,
    )


def render(env: Environment, checkout: Checkout, access: Access) -> Bundle:
    """The commit made ready for its target (`driftgate.targets.render`)."""
    return targets.render(env, checkout, access=access)


def diff(
    env: Environment, bundle: Bundle, access: Access, off_ref: str = "", *,
    on_retry: OnRetry | None = None, applied: Applied | None = None,
) -> Plan:
    """Desired against live (`driftgate.targets.plan`), within the one retry budget.
    ``off_ref`` says why the commit is a revision asked for off the ref's head
    (rule pinned-revision); with ``applied`` (the environment's last applied
    revision, read from the record) the plan also lists the commits since then, for the reviewer."""
    found = retry.call(lambda: targets.plan(env, bundle, access), on_retry=on_retry)
    if off_ref:
        found = policy.off_ref(env, found, off_ref)
    if applied is None:
        return found
    story = commits.between(env.source.repo, applied(env.name), found.revision, signing_keys=access.signing_keys)
    return found.model_copy(update={"commits": story})


@dataclass(frozen=True)
class Stages:
    """What a `Pipeline` calls for each step: the Prefect tasks (flows) or the engine functions (the CLI)."""

    access: Callable[[Environment], Access]
    fetch: Callable[[Environment, Access, Aim], Checkout]
    render: Callable[[Environment, Checkout, Access], Bundle]
    diff: Callable[[Environment, Bundle, Access, str], Plan]
    record: Callable[[RunRecord], int]
    record_start: Callable[[RunStart], list[int]] | None = None  # None: the run is recorded at its end only


def engine_stages(
    *, access: Callable[[Environment], Access], record: Callable[[RunRecord], int], on_retry: OnRetry | None = None,
    applied: Applied | None = None,
) -> Stages:
    """The stages as plain engine calls, for a caller without Prefect (``driftgate plan``)."""
    return Stages(
        access=access,
        fetch=partial(fetch, on_retry=on_retry),
        render=render,
        diff=partial(diff, on_retry=on_retry, applied=applied),
        record=record,
    )


class Pipeline:
    """One run's way through the read-only stages, and into the record.

    Callers keep the order of a flow: `start()`, then their own steps and
    `access()` / `plan()` inside ``with recorded():``, then `finish()`.
    """

    def __init__(self, run: RunLog, stages: Stages, aim: Aim | None = None) -> None:
        self.run = run
        self.stages = stages
        self.aim = aim or Aim()  # which commit: the ref's head, or a revision asked for or pinned
        # The stage running now: where a crash happened, for the record. None
        # outside fetch, render and diff (the run log then works it out).
        self.stage: Stage | None = None

    def start(self) -> tuple[RunStart, list[int]]:
        """The run's first entry in the record (before fetch, so a run whose
        process dies is still in it); returns it and the record ids of earlier
        runs of the environment found dead and marked interrupted."""
        assert self.stages.record_start is not None, "these stages record a run at its end only"
        start = self.run.start()
        return start, self.stages.record_start(start)

    def access(self, env: Environment) -> Access:
        """The credentials ``env`` needs; from now on the record masks every secret among them."""
        access = self.stages.access(env)
        self.run.masker = access.masker
        return access

    def plan(self, env: Environment, access: Access) -> tuple[Bundle, Plan]:
        """fetch -> render -> diff: the bundle and what a sync would change.
        The run keeps the checkout; the caller decides whether the plan is the run's."""
        self.stage = Stage.FETCH
        self.run.checkout = self.stages.fetch(env, access, self.aim)
        self.stage = Stage.RENDER
        bundle = self.stages.render(env, self.run.checkout, access)
        self.stage = Stage.DIFF
        found = self.stages.diff(env, bundle, access, self.off_ref(self.run.checkout))
        self.stage = None
        return bundle, found

    def off_ref(self, checkout: Checkout) -> str:
        """Why a revision asked for is risky (rule pinned-revision): it is not the ref's head; '' otherwise."""
        if not (self.aim.asked and checkout.off_ref):
            return ""
        head = f"{checkout.ref_head[:12]}" if checkout.ref_head else "no commit"
        return f"revision {checkout.revision!r} ({checkout.commit[:12]}) is not the head of {checkout.ref!r} ({head})"

    @contextmanager
    def recorded(self) -> Iterator[None]:
        """Every failure in the block ends in the run's record.

        A `DriftgateError` (bad input, an unreachable target, a refusal) is
        noted with its stage and the block ends: `finish()` records it. Any
        other exception is recorded now, failed at the stage it happened in,
        and raised again, so a bug fails the flow run (or the command) where
        people look."""
        try:
            yield
        except DriftgateError as exc:
            self.run.fail(exc)
        except Exception as exc:
            self.run.fail(exc, stage=self.stage)
            self.stages.record(self.run.finish())
            raise

    def finish(self) -> tuple[RunRecord, int]:
        """The run's last entry in the record: the record and its id."""
        record = self.run.finish()
        return record, self.stages.record(record)

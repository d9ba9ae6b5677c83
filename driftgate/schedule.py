"""When each environment's deployments run: schedules with jitter.

Many environments on the same schedule would all start together (Argo CD
spreads its refreshes for the same reason). Each (environment, purpose) gets
a stable offset within the schedule's ``jitter``: the same on every restart,
different between environments.

`deployments()` is the one list of what driftgate deploys (one sync and one
drift check per environment, with their schedules, a promotion for an
environment that names ``promote_from``, and the fleet's drift check when
``fleet.drift_schedule`` is set): deployments/serve.py
serves it, driftgate/prefect_yaml.py writes it out for workers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from driftgate.config import Config, Schedule

EPOCH = datetime(2020, 1, 1, tzinfo=timezone.utc)


def jitter_offset(environment: str, purpose: str, jitter: timedelta) -> timedelta:
    """A stable pseudo-random offset in [0, jitter)."""
    if jitter.total_seconds() <= 0:
        return timedelta(0)
    digest = hashlib.sha256(f"{purpose}:{environment}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return timedelta(seconds=round(fraction * jitter.total_seconds(), 3))


@dataclass(frozen=True)
class PlannedSchedule:
    """What a deployment gets: an anchored interval, or a cron with a start delay."""

    interval: timedelta | None
    anchor: datetime | None
    cron: str | None
    delay_seconds: float


def planned(schedule: Schedule, environment: str, purpose: str) -> PlannedSchedule:
    offset = jitter_offset(environment, purpose, schedule.jitter)
    if schedule.interval is not None:
        # Shift the interval's anchor: runs stay evenly spaced, just not in step.
        return PlannedSchedule(schedule.interval, EPOCH + offset, None, 0.0)
    # A cron fires on the minute for everyone: the run itself waits its offset.
    return PlannedSchedule(None, None, schedule.cron, offset.total_seconds())


@dataclass(frozen=True)
class Deployment:
    """One deployment: which flow runs for which environment (None: the fleet's
    drift check, over many), and when (None: on demand)."""

    environment: str | None
    purpose: str  # "sync", "drift" or "promote"
    entrypoint: str  # the flow, as prefect.yaml names it
    description: str
    schedule: PlannedSchedule | None
    concurrency_limit: int = 1  # a deployment's runs never overlap
    fleet_concurrency: int | None = None  # the fleet's: environments checked at a time

    @property
    def name(self) -> str:
        return f"{self.purpose}-{self.environment or FLEET}"

    @property
    def tags(self) -> list[str]:
        return run_tags(self.environment, self.purpose) if self.environment else ["driftgate", FLEET, self.purpose]

    @property
    def parameters(self) -> dict[str, object]:
        """Only what to run (who asked comes from Prefect's run data, flows/requests.py)."""
        if self.environment is None:
            return {"concurrency": self.fleet_concurrency}
        return {"environment": self.environment}


def run_tags(environment: str, purpose: str) -> list[str]:
    """The tags of every run of ``environment`` for ``purpose`` (sync, drift), from a
    deployment or from the CLI alike: filter the Prefect UI's runs by environment or kind."""
    return ["driftgate", env_tag(environment), purpose]


def env_tag(environment: str) -> str:
    """The tag that names a run's environment (also what `driftgate approve ENV` looks for first)."""
    return f"env:{environment}"


def deployments(config: Config) -> list[Deployment]:
    """A sync and a drift check per environment, and a promotion (on demand) for
    one that names ``promote_from``, in name order."""
    found = []
    for name, env in sorted(config.environments.items()):
        kinds = [
            ("sync", "driftgate.flows.reconcile:reconcile", env.sync.schedule, f"Reconcile {name} to Git ({env.source.repo} @ {env.source.ref})"),
            ("drift", "driftgate.flows.drift:drift_check", env.drift.schedule, f"Read-only drift check of {name}; self-heal: {env.drift.self_heal}"),
        ]
        if env.promote_from is not None:
            source = env.promote_from
            kinds.append((
                "promote", "driftgate.flows.promote:promote", None,
                f"Promote into {name} the commit {source.environment} has run healthy for {source.after}",
            ))  # fmt: skip
        for purpose, entrypoint, schedule, description in kinds:
            when = planned(schedule, name, purpose) if schedule is not None else None
            found.append(Deployment(name, purpose, entrypoint, description, when))
    if config.fleet.drift_schedule is not None:
        found.append(fleet_deployment(config))
    return found


FLEET = "fleet"


def fleet_environments(config: Config) -> list[str]:
    """What the fleet's scheduled check covers: every environment without a
    ``drift.schedule`` of its own (those keep their own ``drift-ENV`` schedule)."""
    return [name for name, env in sorted(config.environments.items()) if env.drift.schedule is None]


def fleet_deployment(config: Config) -> Deployment:
    """``drift-fleet``: one run on ``fleet.drift_schedule`` checks `fleet_environments`."""
    assert config.fleet.drift_schedule is not None
    return Deployment(
        None, "drift", "driftgate.flows.fleet:drift_fleet",
        f"Read-only drift check of every environment without a drift.schedule of its own, "
        f"{config.fleet.concurrency} at a time, in one flow run",
        planned(config.fleet.drift_schedule, FLEET, "drift"), fleet_concurrency=config.fleet.concurrency,
    )  # fmt: skip

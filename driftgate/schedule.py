"""When each environment's deployments run: schedules with jitter.

Many environments on the same schedule would all start together (Argo CD
spreads its refreshes for the same reason). Each (environment, purpose) gets
a stable offset within the schedule's ``jitter``: the same on every restart,
different between environments. Called by deployments/serve.py.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from driftgate.config import Schedule

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

"""Sync windows: is a moment inside a window of ``sync.windows``, and does that close syncs?

A window opens each time its cron fires (in its time zone) and stays open for
its duration, as Argo CD's sync windows do. Syncs are closed at a moment when
a ``deny`` window is open, or when the environment has ``allow`` windows and
none of them is open; deny wins over allow. Plain time arithmetic over cronsim,
asked by `driftgate.sync_guard` (for the reconcile flow) and `driftgate.status`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim

from driftgate.config import SyncWindow


@dataclass(frozen=True)
class Closed:
    """Syncs are closed now: by which window (or the allow windows), and why, in words."""

    window: SyncWindow | None  # the open deny window; None: outside every allow window
    reason: str
    until: datetime | None = None  # when the deny window closes (UTC)


def opened_at(window: SyncWindow, at: datetime) -> datetime | None:
    """When the occurrence of ``window`` that contains ``at`` opened (UTC); None if it is not open then."""
    zone = ZoneInfo(window.timezone)
    # cronsim steps back from strictly before its start: start one second later so
    # a window that opens exactly at ``at`` counts as open.
    local = (at.astimezone(zone) + timedelta(seconds=1)).replace(microsecond=0)
    last = next(CronSim(window.schedule, local, reverse=True))
    # Later openings end later (one duration): the last opening alone decides.
    opened = last.astimezone(UTC)
    return opened if opened <= at < opened + window.duration else None


def closed(windows: list[SyncWindow], at: datetime | None = None) -> Closed | None:
    """Whether syncs are closed at ``at`` (default now) by ``windows``; None when they may run."""
    at = at or datetime.now(UTC)
    for window in windows:
        if window.kind == "deny" and (opened := opened_at(window, at)) is not None:
            until = opened + window.duration
            return Closed(window, f"inside deny window {window.label} until {until:%Y-%m-%d %H:%M} UTC", until)
    allows = [w for w in windows if w.kind == "allow"]
    if allows and all(opened_at(w, at) is None for w in allows):
        names = ", ".join(w.label for w in allows)
        return Closed(None, f"outside every allow window ({names})")
    return None

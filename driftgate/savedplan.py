"""Saved plans: ``driftgate plan ENV --out FILE``, then ``driftgate sync ENV --plan FILE``.

The file holds what ``plan --output json`` prints (environment, commit, ref,
plan hash, the changes with their masked diffs) and what it is. A sync given
the file applies only while the live plan still has the file's hash; otherwise
it stops, naming the difference (`require`), and nothing is applied. The gate
treats the plan like any other: a saved plan is no approval.

`load` refuses a file that is not a driftgate plan, one made for another
environment, and one whose content no longer hashes to its ``plan_hash`` (edited
after it was saved: what a reviewer read must be what is applied). Called by
the CLI (``plan``, ``sync``) and the reconcile flow.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from driftgate import targets
from driftgate.errors import ConfigError, SyncRefused
from driftgate.models import Change, Frozen, Plan, Stage

FORMAT = "driftgate-plan/1"
MAX_BYTES = 64 * 1024 * 1024  # a plan of 10,000 changes with diffs is far below this


class SavedPlan(Frozen):
    """A plan read back from its file, checked to be whole and for its environment."""

    path: str
    plan: Plan
    ref: str = ""
    saved_at: datetime | None = None
    saved_by: str = ""
    pinned: bool = False  # planned with --revision: applied at its commit, not at the ref's head


def dump(plan: Plan, *, ref: str, saved_by: str, saved_at: datetime, pinned: bool = False) -> str:
    """The file's text: ``plan --output json``'s fields, and what the file is.
    ``pinned``: planned at a revision asked for (``plan --revision``), so
    ``sync --plan`` goes to that commit as ``sync --revision`` would."""
    body = {
        "format": FORMAT,
        "environment": plan.environment,
        "revision": plan.revision,
        "pinned": pinned,
        "ref": ref,
        "plan_hash": plan.plan_hash,
        "saved_at": saved_at.isoformat(timespec="seconds"),
        "saved_by": saved_by,
        "in_sync": plan.in_sync,
        "risky": plan.risky,
        "hosts": list(plan.hosts),
        "changes": [c.model_dump(mode="json") for c in plan.changes],
        "warnings": list(plan.warnings),
    }
    return json.dumps(body, indent=2) + "\n"


def load(path: Path, *, environment: str) -> SavedPlan:
    """The saved plan in ``path`` for ``environment``; `ConfigError` (one line, naming
    the file) when it cannot be read, is no driftgate plan, is another environment's,
    or was altered after it was saved."""
    where = f"plan file {path}"
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ConfigError(f"{where} is larger than {MAX_BYTES // 2**20} MiB: not a plan driftgate saved")
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {where}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where} is not JSON ({exc}): save a plan with driftgate plan ENV --out FILE") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"{where} is not a driftgate plan ({FORMAT}): save one with driftgate plan ENV --out FILE")
    if data.get("environment") != environment:
        raise ConfigError(
            f"{where} is a plan for environment {data.get('environment')!r}, not {environment!r}: nothing was run"
        )
    try:
        plan = Plan(
            environment=environment,
            revision=data["revision"],
            changes=tuple(Change.model_validate(c) for c in data["changes"]),
            hosts=tuple(data.get("hosts", ())),
            warnings=tuple(data.get("warnings", ())),
        )
        saved_at = datetime.fromisoformat(data["saved_at"]) if data.get("saved_at") else None
    except (KeyError, TypeError, ValueError, ValidationError) as exc:
        raise ConfigError(f"{where} is not a whole driftgate plan ({type(exc).__name__}: {exc}): save it again") from None
    if plan.plan_hash != data.get("plan_hash"):
        raise ConfigError(
            f"{where} was altered after it was saved: its changes hash to {plan.plan_hash[:12]}, "
            f"not to its plan_hash {str(data.get('plan_hash'))[:12]}; nothing was run: save the plan again"
        )
    return SavedPlan(
        path=str(path), plan=plan, ref=str(data.get("ref", "")), saved_at=saved_at,
        saved_by=str(data.get("saved_by", "")), pinned=data.get("pinned") is True,
    )  # fmt: skip


def require(saved: SavedPlan, live: Plan) -> None:
    """Raise `SyncRefused`, naming the difference, unless ``live`` is the saved plan."""
    if live.plan_hash == saved.plan.plan_hash:
        return
    raise SyncRefused(
        f"the live plan of {live.environment!r} ({live.plan_hash[:12]}) is not the saved plan "
        f"{saved.path} ({saved.plan.plan_hash[:12]}): {difference(saved.plan, live)}; nothing was applied: "
        f"review the new plan (driftgate plan {live.environment} --out FILE) and sync with that",
        stage=Stage.GATE,
    )


def difference(saved: Plan, live: Plan) -> str:
    """What changed between two plans of one environment, in words."""
    said = []
    if live.revision != saved.revision:
        said.append(f"new commit {live.revision[:12]} (was {saved.revision[:12]})")
    before = {c.identity: c for c in saved.changes}
    after = {c.identity: c for c in live.changes}
    added = [_label(c) for key, c in after.items() if key not in before]
    gone = [_label(c) for key, c in before.items() if key not in after]
    altered = [_label(c) for key, c in after.items() if key in before and c != before[key]]
    for what, items in (("now also", added), ("no longer", gone), ("changed", altered)):
        if items:
            said.append(f"{what}: {', '.join(items[:5])}" + (f" and {len(items) - 5} more" if len(items) > 5 else ""))
    if not (added or gone or altered):  # only the commit moved
        said.append("the same changes")
    return "; ".join(said)


def _label(change: Change) -> str:
    return f"{change.action.value} {targets.label(change)}"

"""Thin Prefect tasks around the engine: one per stage of the reconcile DAG.

Each task loads nothing of its own and decides nothing: it calls one engine
function and returns its typed result. Prefect retries and caches none of them
(transient failures are retried once, in driftgate.retry). Used by flows/.
"""

from driftgate.tasks.stages import (
    apply_changes,
    decide_gate,
    diff_live,
    fetch_source,
    load_access,
    load_approval_signers,
    record_run,
    render_bundle,
)

__all__ = [
    "apply_changes",
    "decide_gate",
    "diff_live",
    "fetch_source",
    "load_access",
    "load_approval_signers",
    "record_run",
    "render_bundle",
]

"""promote: sync an environment to the commit its ``promote_from`` environment has
run healthy for ``promote_from.after`` (say prod from staging).

A thin flow around the reconcile flow, so a promotion can be started from the
Prefect UI (the ``promote-ENV`` deployment): the reconcile run it starts (a
subflow) works out the commit from the record (`driftgate.revisions.promotion`),
refuses one not reachable from the environment's ref, goes through the
environment's own gate, and is recorded as kind ``promote`` with the source
environment's run it came from. That the sync is a promotion comes from Prefect's
own data (its parent is this flow: flows/requests.py), never from a parameter.
``driftgate promote`` runs the same reconcile directly.
"""

from __future__ import annotations

from dataclasses import replace

from prefect import flow
from prefect.states import State

from driftgate.models import RunPurpose
from driftgate.flows.reconcile import reconcile
from driftgate.flows.requests import requested, this_request


@flow(name="promote", flow_run_name="promote {environment}", log_prints=False, retries=0)
def promote(environment: str, config: str | None = None) -> State:
    """Promote into ``environment``; ends in the state of the sync it ran."""
    asked = this_request()
    with requested(replace(asked, purpose=RunPurpose.PROMOTE, revision=None)):
        return reconcile(environment=environment, config=config, return_state=True)

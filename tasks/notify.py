"""Telling people: drift found, a sync failed, an approval is waiting.

The environment names a Prefect notification block (``notify.block``, e.g.
``custom-webhook/ops-channel``: a webhook to any URL, or Slack, Teams, mail
... whatever Prefect's notification blocks reach) and the events it wants.
A notification that cannot be sent is logged, never fatal: the run's own
outcome matters more. Called by the drift, reconcile and approval flows.
"""

from __future__ import annotations

from typing import Literal

from prefect import get_run_logger, task
import prefect.blocks.notifications  # noqa: F401  (registers their types for Block.load)
from prefect.blocks.core import Block
from prefect.cache_policies import NO_CACHE

from driftgate.config import Environment

Event = Literal["drift", "failed", "approval"]


@task(name="notify", cache_policy=NO_CACHE, persist_result=False, retries=0)  # see tasks/stages.py
def notify(env: Environment, event: Event, subject: str, body: str) -> bool:
    """Send one notification if the environment wants this event; True if sent."""
    if env.notify is None or event not in env.notify.events:
        return False
    try:
        block = Block.load(env.notify.block)
        block.notify(body=body, subject=f"driftgate: {subject}")
    except Exception as exc:  # a broken channel must not break the run
        get_run_logger().warning("could not notify %s of %s: %s", env.notify.block, event, exc)
        return False
    return True

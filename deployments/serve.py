"""Serve every environment's deployments from one process (one-machine use).

    driftgate serve [--config driftgate.yaml]      (or: python -m driftgate.deployments.serve)

For each environment in driftgate.yaml: ``reconcile/sync-<env>`` on its
``sync.schedule`` and ``drift-check/drift-<env>`` on its ``drift.schedule``
(no schedule: on demand from the UI), ``promote/promote-<env>`` (on demand)
for an environment that names ``promote_from``, and ``drift-fleet/drift-fleet``
on ``fleet.drift_schedule`` when set, with jitter: the list in
driftgate.schedule, which prefect.yaml is written from too. A sync
deployment runs one at a time, and the reconcile flow also holds a
per-environment concurrency limit, so manual and CLI syncs queue behind
scheduled ones; drift checks never wait for a sync. SIGTERM or Ctrl-C stops
serving cleanly.
"""

from __future__ import annotations

import argparse
import os
import signal
from typing import Any

from driftgate.config import Config, load_config
from driftgate.schedule import PlannedSchedule, deployments


def build_deployments(config: Config) -> list[Any]:
    from driftgate.flows.drift import drift_check
    from driftgate.flows.fleet import drift_fleet
    from driftgate.flows.promote import promote
    from driftgate.flows.reconcile import reconcile

    flows = {"sync": reconcile, "drift": drift_check, "promote": promote}
    # Only what to run: who asked comes from Prefect's run data (flows/requests.py),
    # and runs use the configuration this service was started with.
    return [
        (flows[d.purpose] if d.environment else drift_fleet).to_deployment(
            name=d.name,
            parameters=d.parameters,
            concurrency_limit=d.concurrency_limit,
            description=d.description,
            tags=d.tags,
            schedules=_schedules(d.schedule),
        )
        for d in deployments(config)
    ]


def _schedules(plan: PlannedSchedule | None) -> list[Any]:
    from prefect.schedules import Cron, Interval

    if plan is None:
        return []
    if plan.interval is not None:
        return [Interval(plan.interval, anchor_date=plan.anchor)]
    parameters = {"delay_seconds": plan.delay_seconds} if plan.delay_seconds else None
    return [Cron(plan.cron, parameters=parameters)]


def serve(config_path: str | None = None) -> None:
    """Serve until SIGTERM or Ctrl-C."""
    from prefect import serve as prefect_serve

    config = load_config(config_path)
    # Deployment runs read this, never a `config` parameter from the Run form (flows/requests.py).
    os.environ["DRIFTGATE_CONFIG"] = str(config.path)

    def stop(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt  # prefect.serve shuts down cleanly on it

    signal.signal(signal.SIGTERM, stop)
    try:
        prefect_serve(*build_deployments(config), print_starting_message=True)
    except KeyboardInterrupt:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="driftgate.yaml (default: $DRIFTGATE_CONFIG, then ./driftgate.yaml)")
    serve(parser.parse_args().config)


if __name__ == "__main__":
    main()

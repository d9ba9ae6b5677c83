"""Serve one sync deployment per environment from one process (one-machine use).

    python -m deployments.serve [--config driftgate.yaml]

Each environment becomes a deployment ``reconcile/sync-<env>`` with the
environment's ``sync.schedule`` (interval or cron; none = run on demand from
the UI) and ``concurrency_limit=1``, so one environment never has two syncs at
once. Scheduled drift checks and self-heal come with the scheduling work.
"""

from __future__ import annotations

import argparse
from typing import Any

from driftgate.config import Config, load_config


def build_deployments(config: Config) -> list[Any]:
    from flows.reconcile import reconcile

    deployments = []
    for name, env in sorted(config.environments.items()):
        schedule: dict[str, Any] = {}
        if env.sync.schedule and env.sync.schedule.interval:
            schedule["interval"] = env.sync.schedule.interval
        elif env.sync.schedule and env.sync.schedule.cron:
            schedule["cron"] = env.sync.schedule.cron
        deployments.append(
            reconcile.to_deployment(
                name=f"sync-{name}",
                parameters={"environment": name, "config": str(config.path), "trigger": "schedule"},
                concurrency_limit=1,
                description=f"Reconcile {name} to Git ({env.source.repo} @ {env.source.ref})",
                tags=["driftgate", f"env:{name}"],
                **schedule,
            )
        )
    return deployments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="driftgate.yaml (default: $DRIFTGATE_CONFIG, then ./driftgate.yaml)")
    args = parser.parse_args()
    from prefect import serve

    serve(*build_deployments(load_config(args.config)))


if __name__ == "__main__":
    main()

"""One deployment per environment, with its schedule and one run at a time."""

from __future__ import annotations

from datetime import timedelta

import yaml

from driftgate.config import load_config
from driftgate.demo_repo import DemoWorld


def test_one_deployment_per_environment(world: DemoWorld) -> None:
    data = yaml.safe_load(world.config.read_text())
    demo = data["environments"]["demo"]
    data["environments"]["hourly"] = {**demo, "sync": {"schedule": {"interval": "1h"}}}
    data["environments"]["nightly"] = {**demo, "sync": {"schedule": {"cron": "0 3 * * *"}}}
    world.config.write_text(yaml.safe_dump(data))
    from deployments.serve import build_deployments

    built = {d.name: d for d in build_deployments(load_config(world.config))}
    assert sorted(built) == ["sync-demo", "sync-hourly", "sync-nightly"]
    assert built["sync-demo"].schedules in (None, [])
    assert built["sync-hourly"].schedules[0].schedule.interval == timedelta(hours=1)
    assert built["sync-nightly"].schedules[0].schedule.cron == "0 3 * * *"
    for name, deployment in built.items():
        assert deployment.parameters["environment"] == name.removeprefix("sync-")
        assert deployment.parameters["config"] == str(world.config)
        assert deployment.concurrency_limit == 1

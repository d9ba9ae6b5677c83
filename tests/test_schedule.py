"""Deployments per environment: schedules with jitter, prefect.yaml kept in step, serve."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import yaml

from driftgate.config import Schedule, load_config
from driftgate.demo_repo import DemoWorld
from driftgate.prefect_yaml import prefect_yaml
from driftgate.schedule import EPOCH, jitter_offset, planned
from tests.conftest import ROOT, run_cli

EXAMPLE = ROOT / "deployments" / "driftgate.example.yaml"


def test_jitter_is_stable_bounded_and_spread() -> None:
    jitter = timedelta(minutes=2)
    offsets = {jitter_offset(f"env-{i}", "sync", jitter) for i in range(50)}
    assert all(timedelta(0) <= o < jitter for o in offsets)
    assert len(offsets) == 50  # environments do not start in step
    assert jitter_offset("env-1", "sync", jitter) == jitter_offset("env-1", "sync", jitter)
    assert jitter_offset("env-1", "sync", jitter) != jitter_offset("env-1", "drift", jitter)
    assert jitter_offset("env-1", "sync", timedelta(0)) == timedelta(0)


def test_interval_schedules_shift_their_anchor_cron_ones_delay_the_run() -> None:
    interval = planned(Schedule(interval="5m", jitter="30s"), "web", "drift")
    assert interval.interval == timedelta(minutes=5) and interval.cron is None
    assert EPOCH <= interval.anchor < EPOCH + timedelta(seconds=30)
    cron = planned(Schedule(cron="*/5 * * * *", jitter="1m"), "web", "drift")
    assert cron.cron == "*/5 * * * *" and 0 <= cron.delay_seconds < 60


def test_one_sync_and_one_drift_deployment_per_environment(world: DemoWorld) -> None:
    data = yaml.safe_load(world.config.read_text())
    demo = data["environments"]["demo"]
    data["environments"]["hourly"] = {**demo, "sync": {"schedule": {"interval": "1h"}}, "drift": {"schedule": {"cron": "*/5 * * * *"}}}
    world.config.write_text(yaml.safe_dump(data))
    from deployments.serve import build_deployments

    built = {d.name: d for d in build_deployments(load_config(world.config))}
    assert sorted(built) == ["drift-demo", "drift-hourly", "sync-demo", "sync-hourly"]
    assert built["sync-demo"].schedules in (None, []) and built["drift-demo"].schedules in (None, [])
    hourly = built["sync-hourly"].schedules[0].schedule
    assert hourly.interval == timedelta(hours=1) and hourly.anchor_date.year == 2020
    drift = built["drift-hourly"].schedules[0]
    assert drift.schedule.cron == "*/5 * * * *"
    assert 0 <= drift.parameters["delay_seconds"] < 30
    for name, deployment in built.items():
        assert deployment.parameters["environment"] == name.split("-", 1)[1]
        assert deployment.parameters["config"] == str(world.config)
        assert deployment.concurrency_limit == 1


def test_committed_prefect_yaml_matches_the_example_config() -> None:
    rendered = prefect_yaml(load_config(EXAMPLE), config_ref="deployments/driftgate.example.yaml")
    assert (ROOT / "deployments" / "prefect.yaml").read_text() == rendered, (
        "deployments/prefect.yaml is stale: run `driftgate deployments render --config deployments/driftgate.example.yaml`"
    )
    document = yaml.safe_load(rendered)
    names = [d["name"] for d in document["deployments"]]
    assert names == ["sync-demo", "drift-demo", "sync-shop", "drift-shop"]
    entrypoints = {d["entrypoint"] for d in document["deployments"]}
    for entrypoint in entrypoints:  # each points at a real flow function
        path, _, function = entrypoint.partition(":")
        assert f"def {function}(" in (ROOT / path).read_text()


def test_deployments_render_command(tmp_path: Path) -> None:
    output = tmp_path / "prefect.yaml"
    result = run_cli("deployments", "render", "--config", str(EXAMPLE), "--output", str(output), "--work-pool", "ops")
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load(output.read_text())
    assert {d["work_pool"]["name"] for d in document["deployments"]} == {"ops"}


def test_serve_runs_a_scheduled_drift_check_and_stops_on_sigterm(world: DemoWorld, prefect_server: str) -> None:
    """Against a real Prefect server (its scheduler): a short interval fires, the run is recorded."""
    import os
    import signal
    import subprocess
    import time

    from driftgate.models import Kind
    from driftgate.store import Store
    from tests.conftest import DRIFTGATE

    data = yaml.safe_load(world.config.read_text())
    data["environments"]["demo"]["drift"] = {"schedule": {"interval": "3s", "jitter": "0s"}}
    world.config.write_text(yaml.safe_dump(data))
    env = {**os.environ, "PREFECT_API_URL": f"{prefect_server}/api", "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    log = world.root / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen([str(DRIFTGATE), "serve", "--config", str(world.config)], env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 90
        checks = []
        while time.monotonic() < deadline and not checks:
            checks = [r for r in Store().history("demo", limit=10) if r.kind == Kind.DRIFT and r.trigger == "schedule"]
            time.sleep(0.5)
        assert checks, log.read_text()[-3000:]
        assert checks[0].outcome.value == "drift"  # the demo host is empty: everything is pending
        assert checks[0].flow_run_id
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
    assert code == 0, log.read_text()[-3000:]

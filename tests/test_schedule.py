"""Deployments per environment: schedules with jitter, prefect.yaml kept in step, serve."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from driftgate.config import Schedule, load_config
from driftgate.demo_repo import DemoWorld
from driftgate.prefect_yaml import prefect_yaml
from driftgate.schedule import EPOCH, jitter_offset, planned
from tests.conftest import ROOT, invoke_cli
from tests.filestarget import FilesWorld, as_installed_plugin

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
    from driftgate.deployments.serve import build_deployments

    built = {d.name: d for d in build_deployments(load_config(world.config))}
    assert sorted(built) == ["drift-demo", "drift-hourly", "sync-demo", "sync-hourly"]
    assert built["sync-demo"].schedules in (None, []) and built["drift-demo"].schedules in (None, [])
    hourly = built["sync-hourly"].schedules[0].schedule
    assert hourly.interval == timedelta(hours=1) and hourly.anchor_date.year == 2020
    drift = built["drift-hourly"].schedules[0]
    assert drift.schedule.cron == "*/5 * * * *"
    assert 0 <= drift.parameters["delay_seconds"] < 30
    for name, deployment in built.items():
        # Only what to run: no requester, trigger, approval or configuration file (flows/requests.py).
        assert deployment.parameters == {"environment": name.split("-", 1)[1]}
        assert deployment.concurrency_limit == 1


def test_committed_prefect_yaml_matches_the_example_config() -> None:
    rendered = prefect_yaml(load_config(EXAMPLE), config_ref="deployments/driftgate.example.yaml")
    assert (ROOT / "deployments" / "prefect.yaml").read_text() == rendered, (
        "deployments/prefect.yaml is stale: run `driftgate deployments render --config deployments/driftgate.example.yaml`"
    )
    document = yaml.safe_load(rendered)
    names = [d["name"] for d in document["deployments"]]
    assert names == [
        "sync-clinic-north", "drift-clinic-north", "sync-clinic-south", "drift-clinic-south",
        "sync-demo", "drift-demo", "sync-demo-prod", "drift-demo-prod", "promote-demo-prod",
        "sync-shop", "drift-shop", "drift-fleet",
    ]  # fmt: skip
    entrypoints = {d["entrypoint"] for d in document["deployments"]}
    for entrypoint in entrypoints:  # each names a flow by its installed module (driftgate.flows.*)
        module, _, function = entrypoint.partition(":")
        assert module.startswith("driftgate.flows.")
        path = ROOT / "flows" / (module.removeprefix("driftgate.flows.") + ".py")
        assert f"def {function}(" in path.read_text()


def test_deployments_render_command(tmp_path: Path) -> None:
    output = tmp_path / "prefect.yaml"
    result = invoke_cli("deployments", "render", "--config", str(EXAMPLE), "--output", str(output), "--work-pool", "ops")
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load(output.read_text())
    assert {d["work_pool"]["name"] for d in document["deployments"]} == {"ops"}


@pytest.mark.timeout(600)  # a real server, `driftgate serve` and a run per process
def test_serve_attributes_runs_from_prefect_data_and_no_parameter_walks_around_the_gate(
    files_world: FilesWorld, prefect_server: str, tmp_path: Path
) -> None:
    """Against a real Prefect server (its scheduler) and `driftgate serve`, as an attacker with the UI would
    (on the test-only kind ``files``, installed as a plugin for serve's processes: the subject is who
    runs what, not Ansible):

    - the Run form's parameters cannot pre-approve, name a requester or swap driftgate.yaml;
    - a run started from the API is `manual` by "unknown (Prefect UI/API)", never the serving OS user;
    - a scheduled drift check is `schedule`, and the sync it starts to self-heal is `self-heal`;
    - a scheduled sync of a suspended environment is skipped;
    - the promote-ENV deployment, started from the API, promotes what staging ran healthy.
    Then SIGTERM stops serving cleanly.
    """
    import os
    import signal
    import subprocess
    import time

    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from driftgate.models import RunPurpose
    from driftgate.runlog import current_user
    from driftgate.store import Store
    from driftgate.flows.requests import SCHEDULER, UNKNOWN_ACTOR
    from tests.conftest import DRIFTGATE

    world = files_world
    data = yaml.safe_load(world.config.read_text())
    demo = data["environments"]["demo"]
    demo["approval"] = {"mode": "always", "timeout": "2s"}  # nobody answers: each sync ends rejected
    demo["drift"] = {"schedule": {"interval": "10s", "jitter": "0s"}}
    # The same, unscheduled, healing itself: its drift check is started from the API below.
    data["environments"]["heal"] = {**demo, "drift": {"self_heal": "sync"}}
    # A scheduled sync (every 10 s) that must be skipped: the environment is suspended (below). (A
    # deny window takes the same path, `sync_guard.may_sync`: tests/test_freeze.py.)
    data["environments"]["frozen"] = {**demo, "drift": {}, "sync": {"schedule": {"interval": "10s", "jitter": "0s"}}}
    # staging -> prod, each on a live folder of its own; prod takes what staging ran healthy.
    for name in ("stage", "prod"):
        target = {**demo["target"], "directory": str(world.root / name)}
        data["environments"][name] = {**demo, "drift": {}, "target": target, "approval": {"mode": "never"}}
    data["environments"]["prod"]["promote_from"] = {"environment": "stage", "after": "1ms"}
    world.config.write_text(yaml.safe_dump(data))
    assert invoke_cli("suspend", "frozen", "--reason", "incident 42", "--config", str(world.config)).returncode == 0
    lax = tmp_path / "lax.yaml"  # what an attacker would like the run to use
    lax.write_text(yaml.safe_dump({"environments": {"demo": {**demo, "approval": {"mode": "never"}}}}))

    plugin = as_installed_plugin(tmp_path / "plugins")
    env = {**os.environ, **plugin, "PREFECT_API_URL": f"{prefect_server}/api", "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    log = world.root / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen([str(DRIFTGATE), "serve", "--config", str(world.config)], env=env, stdout=out, stderr=out)

    def syncs() -> list:
        return [r for r in Store().history("demo", limit=50) if r.purpose == RunPurpose.SYNC]

    def wait_for(what, describe: str, timeout: float = 240):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = what()
            if found:
                return found
            assert server.poll() is None, log.read_text()[-3000:]
            time.sleep(0.3)
        raise AssertionError(f"{describe} within {timeout} s: {log.read_text()[-3000:]}")

    try:
        with temporary_settings({PREFECT_API_URL: f"{prefect_server}/api"}):
            wait_for(lambda: _deployment_exists("reconcile/sync-demo"), "serve registered its deployments")
            # 0. The scheduler starts demo's drift check (every 10 s); once one is recorded, pause the
            # schedule: each run is a process of its own, and more of them would prove nothing new.
            scheduled = lambda: [r for r in Store().history("demo", limit=50) if r.purpose == RunPurpose.DRIFT and r.trigger == "schedule"]  # noqa: E731
            checks = wait_for(scheduled, "a scheduled drift check recorded")
            with get_client(sync_client=True) as client:
                client.pause_deployment(client.read_deployment_by_name("drift-check/drift-demo").id)
            # (skipped, not drift, if a sync of demo held its slot)
            assert checks[-1].requested_by == SCHEDULER and checks[-1].outcome.value in ("drift", "skipped")
            staged = run_deployment("reconcile/sync-stage", timeout=0)  # runs meanwhile; promoted from below
            # 0b. The scheduled sync of the suspended environment: skipped, and nothing applied.
            (skipped, *_) = wait_for(lambda: Store().history("frozen", limit=5), "a scheduled sync of frozen recorded")
            with get_client(sync_client=True) as client:
                client.pause_deployment(client.read_deployment_by_name("reconcile/sync-frozen").id)
            assert (skipped.trigger, skipped.purpose, skipped.outcome.value) == ("schedule", RunPurpose.SYNC, "skipped")
            assert "is suspended by" in skipped.reason and "incident 42" in skipped.reason, skipped.reason
            assert not world.config_line.exists()
            # 1. The Run form's old pre-approval parameters are not parameters any more: refused.
            forged = subprocess.run(
                [str(Path(DRIFTGATE).with_name("prefect")), "deployment", "run", "reconcile/sync-demo",
                 "--param", "auto_approve=true", "--param", "requested_by=alice"],
                env=env, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert forged.returncode != 0, forged.stdout
            assert "auto_approve" in forged.stdout + forged.stderr
            # 2. A run started from the API, with a parameter naming a laxer driftgate.yaml.
            swapped = run_deployment("reconcile/sync-demo", parameters={"environment": "demo", "config": str(lax)}, timeout=0)
            # 3. A plain run from the API (the UI's Run button does the same).
            manual = run_deployment("reconcile/sync-demo", timeout=0)
            by_flow_run = lambda: {r.flow_run_id: r for r in syncs()}  # noqa: E731
            wait_for(lambda: {str(swapped.id), str(manual.id)} <= set(by_flow_run()), "both API-started syncs recorded")
            runs = by_flow_run()
            refused, plain = runs[str(swapped.id)], runs[str(manual.id)]
            assert refused.outcome.value == "failed" and refused.failed_stage.value == "config"
            assert "deployment runs use the configuration their service was started with" in refused.reason
            assert plain.outcome.value == "rejected" and plain.approval.timed_out  # it waited: nothing pre-approved
            for run in (refused, plain):
                assert (run.trigger, run.requested_by) == ("manual", UNKNOWN_ACTOR)
                assert run.requested_by != current_user()
            # 4. A drift check started from the API, and the sync it starts to heal.
            check = run_deployment("drift-check/drift-heal", timeout=0)
            healing = wait_for(lambda: [r for r in Store().history("heal", limit=10) if r.trigger == "self-heal"], "a self-heal sync recorded")
            assert healing[0].requested_by == f"self-heal (drift check {check.id})"
            assert healing[0].outcome.value == "rejected"  # the gate still applies to self-heal
            assert not world.config_line.exists()  # and nothing ever reached the host
            # 5. A promotion started from the API (the promote-prod deployment's Run button).
            applied = wait_for(lambda: [r for r in Store().history("stage", limit=5) if r.outcome.value == "applied"], "stage applied")
            assert applied[0].flow_run_id == str(staged.id)
            promotion = run_deployment("promote/promote-prod", timeout=0)
            (promoted, *_) = wait_for(lambda: Store().history("prod", limit=5), "the promotion of prod recorded")
            assert (promoted.purpose, promoted.outcome.value, promoted.commit) == (RunPurpose.PROMOTE, "applied", applied[0].commit)
            assert promoted.promoted_from == f"stage run {applied[0].run_id}"
            assert promoted.requested_by == f"{UNKNOWN_ACTOR}, promotion run {promotion.id}"
            assert (world.root / "prod/app.conf").read_text() == "max_connections = 100\n"
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
    assert code == 0, log.read_text()[-3000:]


def _deployment_exists(name: str) -> bool:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(name)
        except ObjectNotFound:
            return False
    return True

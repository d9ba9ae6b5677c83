"""Freezes: a suspended environment, sync windows and saved plans.

A suspended environment is drift-checked but never synced (schedule,
self-heal, the Prefect UI, the CLI); a closed sync window skips scheduled
syncs and refuses manual ones unless overridden, which makes the plan risky;
a saved plan is applied only while the live plan still has its hash. The
scheduled runs are called the way a deployment run of the scheduler is
described to the flow (flows/requests.py), on the session Prefect harness.
The flows run on the test-only kind ``files`` (tests/filestarget.py): the
guards are the subject here, not Ansible.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from driftgate.config import SyncWindow, parse_config
from driftgate.errors import ConfigError
from driftgate.models import Outcome, RunPurpose, Trigger
from driftgate.store import Store
from driftgate.windows import closed
from tests.conftest import answer, approver, edit_config, invoke_cli
from tests.filestarget import FilesWorld, synced_world_on_files, world_on_files  # noqa: F401  (fixtures: world and synced_world on the files kind)




def scheduled(world: FilesWorld) -> Any:
    """A sync as the Prefect scheduler's run of the sync deployment is seen by the flow."""
    from driftgate.flows.reconcile import reconcile
    from driftgate.flows.requests import SCHEDULER, RunRequest, requested

    with requested(RunRequest(Trigger.SCHEDULE, SCHEDULER)):
        return reconcile(environment="demo", config=str(world.config), return_state=True)


def last_sync() -> Any:
    return next(r for r in Store().history("demo", limit=10) if r.purpose == RunPurpose.SYNC)


def sync_cli(world: FilesWorld, prefect_api: str, *args: str) -> Any:
    return invoke_cli("sync", "demo", "--config", str(world.config), *args, env={"PREFECT_API_URL": prefect_api})


@pytest.mark.usefixtures("prefect_api")
def test_a_saved_plan_is_applied_while_it_holds_and_refused_after_a_new_commit(world: FilesWorld, prefect_api: str, tmp_path: Path) -> None:
    saved = tmp_path / "demo.plan.json"
    planned = invoke_cli("plan", "demo", "--config", str(world.config), "--out", str(saved))
    assert planned.returncode == 2, planned.stderr
    body = json.loads(saved.read_text())
    assert body["environment"] == "demo" and len(body["changes"]) == 3

    # An edited file, or one for another environment, is refused before anything runs.
    for name, edit, said in (
        ("tampered", {"changes": [{**body["changes"][0], "diff": "+ harmless"}, *body["changes"][1:]]}, "was altered after it was saved"),
        ("other-env", {"environment": "staging"}, "is a plan for environment 'staging', not 'demo'"),
    ):
        (tmp_path / name).write_text(json.dumps({**body, **edit}))
        refused = sync_cli(world, prefect_api, "--plan", str(tmp_path / name))
        assert refused.returncode == 1 and said in refused.stderr, refused.stderr
    assert [r.purpose for r in Store().history("demo")] == [RunPurpose.PLAN] and not world.config_line.exists()

    applied = sync_cli(world, prefect_api, "--plan", str(saved))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert last_sync().outcome == Outcome.APPLIED and last_sync().plan_hash == body["plan_hash"]

    world.config_line.write_text("max_connections = 5\n")  # and a commit: the saved plan no longer holds
    commit = world.commit({"NOTE": "hi\n"}, "a release note")
    refused = sync_cli(world, prefect_api, "--plan", str(saved))
    (said,) = [line for line in refused.stderr.splitlines() if line.startswith("error:")]  # one line says it all
    assert refused.returncode == 1 and said.startswith("error: refused: the live plan of 'demo'"), refused.stderr
    assert f"new commit {commit[:12]} (was {body['revision'][:12]})" in said
    assert "now also: create file NOTE" in said and "nothing was applied" in said
    record = last_sync()
    assert record.outcome == Outcome.REFUSED and record.commit == commit and record.failed_stage.value == "gate"
    assert world.config_line.read_text() == "max_connections = 5\n" and not (world.live / "NOTE").exists()

    # A plan saved at a revision off the ref's head is applied at that commit, not at the head.
    pinned = tmp_path / "pinned.plan.json"
    planned = invoke_cli("plan", "demo", "--config", str(world.config), "--revision", body["revision"], "--out", str(pinned))
    assert planned.returncode == 2 and json.loads(pinned.read_text())["pinned"] is True, planned.stderr
    applied = sync_cli(world, prefect_api, "--plan", str(pinned), "--yes")  # pinned-revision is risky: approved in advance
    assert applied.returncode == 0, applied.stdout + applied.stderr
    record = last_sync()
    assert record.outcome == Outcome.APPLIED and record.commit == body["revision"] and "pinned-revision" in record.changes[0].rules
    assert world.config_line.read_text() == "max_connections = 100\n" and Store().pin_of("demo").commit == body["revision"]


@pytest.mark.usefixtures("prefect_api")
def test_a_suspended_environment_is_checked_but_never_synced(synced_world: FilesWorld, prefect_api: str) -> None:
    from driftgate.flows.drift import drift_check
    from driftgate.flows.reconcile import reconcile

    world = synced_world
    config = ["--config", str(world.config)]
    suspended = invoke_cli("suspend", "demo", "--reason", "database migration", *config, env={"DRIFTGATE_USER": "alice"})
    assert suspended.returncode == 0 and "suspended by alice" in suspended.stdout, suspended.stderr
    again = invoke_cli("suspend", "demo", "--reason", "twice", *config)
    assert again.returncode == 1 and "already suspended by alice" in again.stderr
    assert invoke_cli("suspend", "nowhere", "--reason", "x", *config).returncode == 1

    state = scheduled(world)
    record = last_sync()
    assert state.name == "Skipped" and record.outcome == Outcome.SKIPPED and record.trigger == "schedule"
    assert "suspended by alice at" in record.reason and "database migration" in record.reason

    # Drift is still found; self-heal's sync is skipped, the host stays as it drifted.
    edit_config(world, drift={"self_heal": "sync"})
    world.config_line.write_text("max_connections = 5\n")
    checked = drift_check(environment="demo", config=str(world.config), return_state=True)
    assert checked.name == "Drifted" and "Skipped" in checked.message
    record = last_sync()
    assert record.trigger == "self-heal" and record.outcome == Outcome.SKIPPED and "database migration" in record.reason
    assert world.config_line.read_text() == "max_connections = 5\n"

    # A person's sync (the Prefect UI's run, the CLI) is refused, in one line.
    ui = reconcile(environment="demo", config=str(world.config), return_state=True)
    assert ui.name == "Refused" and last_sync().outcome == Outcome.REFUSED and last_sync().trigger == "manual"
    cli = sync_cli(world, prefect_api)
    (said,) = [line for line in cli.stderr.splitlines() if line.startswith("error:")]  # one line: why, who, when
    assert cli.returncode == 1 and said.startswith("error: refused: environment 'demo' is suspended by alice at")
    assert "database migration" in said
    assert world.config_line.read_text() == "max_connections = 5\n"

    status = json.loads(invoke_cli("status", "demo", *config, "--output", "json").stdout)[0]
    assert status["suspended"].startswith("suspended by alice at") and status["state"] != "failing"  # refused: found nothing
    resumed = invoke_cli("resume", "demo", *config)
    assert resumed.returncode == 0 and "may sync again" in resumed.stdout
    assert invoke_cli("resume", "demo", *config).returncode == 1
    assert Store().suspension("demo") is None
    assert invoke_cli("audit", "verify").returncode == 0  # suspensions are links of the hash chain


@pytest.mark.usefixtures("prefect_api")
def test_a_deny_window_skips_the_schedule_and_an_override_makes_the_plan_risky_and_apply_asks_again(synced_world: FilesWorld, prefect_api: str) -> None:
    world = synced_world
    # Opens every minute for two: open whenever the test runs.
    edit_config(world, sync={"windows": [{"kind": "deny", "schedule": "* * * * *", "duration": "2m", "timezone": "Europe/Berlin", "name": "freeze"}]})
    world.config_line.write_text("max_connections = 5\n")

    assert scheduled(world).name == "Skipped"
    assert last_sync().outcome == Outcome.SKIPPED and "inside deny window 'freeze'" in last_sync().reason

    refused = sync_cli(world, prefect_api)
    assert refused.returncode == 1 and "inside deny window 'freeze'" in refused.stderr and "--override-window" in refused.stderr

    # Overridden: the one drifted line is risky under sync-window, so mode risky pauses it. While it
    # waits, carol suspends the environment; bob approves: asked again before apply, it is refused.
    def suspend_then_approve(paused: Any) -> None:
        Store().suspend("demo", reason="late freeze", by="carol")
        answer("approve", "bob")(paused)

    with approver(suspend_then_approve) as seen:
        overridden = sync_cli(world, prefect_api, "--override-window")
    assert overridden.returncode == 1 and len(seen) == 1 and "sync-window" in seen[0].summary
    assert "refused: environment 'demo' is suspended by carol" in overridden.stderr
    record = last_sync()
    assert record.outcome == Outcome.REFUSED and record.approval.approver == "bob"
    assert [c.rules for c in record.changes] == [("sync-window",)] and record.plan_hash == seen[0].plan_hash
    assert world.config_line.read_text() == "max_connections = 5\n"


def test_sync_windows_open_and_close_in_their_time_zone_and_bad_ones_name_the_environment(tmp_path: Path) -> None:
    nightly = SyncWindow(kind="deny", schedule="0 22 * * *", duration="8h", timezone="Europe/Berlin")
    at = lambda day, hour, minute=0: datetime(2026, 12, day, hour, minute, tzinfo=UTC)  # noqa: E731  (Berlin is UTC+1)
    assert closed([nightly], at(1, 20, 59)) is None
    assert closed([nightly], at(1, 21)).until == at(2, 5)  # opens on the minute, in Berlin
    assert closed([nightly], at(2, 4, 59)) is not None and closed([nightly], at(2, 5)) is None
    office = SyncWindow(kind="allow", schedule="0 9 * * 1-5", duration="8h")  # 2026-12-05 is a Saturday
    assert closed([office], at(4, 10)) is None and "outside every allow window" in closed([office], at(5, 10)).reason
    assert closed([office, nightly], at(4, 23)).window == nightly  # deny wins

    body = {"source": {"repo": "./r"}, "target": {"kind": "ansible", "hosts": {"h": {}}}}
    windows = [{"kind": "deny", "schedule": "0 25 * * *", "duration": "0", "timezone": "Mars/Base"}, {"kind": "maybe", "schedule": "* * * * * *", "duration": "1h"}]
    with pytest.raises(ConfigError) as bad:
        parse_config({"environments": {"prod": {**body, "sync": {"windows": windows}}}}, tmp_path / "driftgate.yaml")
    problems = bad.value.problems
    assert "environment 'prod': sync.windows.0.schedule: '0 25 * * *' is not a cron expression (Bad hour)" in problems[0]
    assert problems[1] == "environment 'prod': sync.windows.0.duration: must be longer than zero, not 0 s"
    assert "sync.windows.0.timezone: 'Mars/Base' is not a time zone" in problems[2]
    assert "environment 'prod': sync.windows.1.kind" in problems[3] and "not a five-field cron" in problems[4]

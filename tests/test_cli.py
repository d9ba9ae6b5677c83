"""The CLI's contracts: exit codes, JSON and messages. The real console script in
its own process where the process is part of the contract (exit status, a sync's
own Prefect client); typer's CliRunner in this process for the rest."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from driftgate.demo_repo import DemoWorld
from driftgate.models import Outcome, RunMode, RunPurpose
from tests.conftest import edit_config, invoke_cli, run_cli
from tests.filestarget import FilesWorld, as_installed_plugin


@pytest.mark.e2e  # the console script's exit status
def test_plan_exit_codes_and_json_contract(world: DemoWorld) -> None:
    pending = run_cli("plan", "demo", "--config", str(world.config), "--output", "json")
    assert pending.returncode == 2, pending.stderr
    body = json.loads(pending.stdout)
    assert body["environment"] == "demo" and len(body["revision"]) == 40 and len(body["plan_hash"]) == 64
    assert [(c["action"], c["target"], c["name"], c["risky"]) for c in body["changes"]] == [
        ("create", "localhost", "app directory", False),
        ("create", "localhost", "welcome page", False),
        ("create", "localhost", "connection limit", False),
    ]

    text = invoke_cli("plan", "demo", cwd=world.root)  # ./driftgate.yaml is found in the cwd
    assert text.returncode == 2
    assert "3 change(s) pending for demo" in text.stdout and "+max_connections = 100" in text.stdout


def test_plan_in_sync_is_exit_0(synced_world: DemoWorld) -> None:
    result = invoke_cli("plan", "demo", "--config", str(synced_world.config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "In sync" in result.stdout
    # Nothing applied in the record yet: the story is every commit up to the planned one.
    assert "1 commit up to it (nothing applied yet):" in result.stdout and "demo: web host with a connection limit" in result.stdout
    body = json.loads(invoke_cli("plan", "demo", "--config", str(synced_world.config), "--output", "json").stdout)
    assert body["commits"]["since"] == "" and body["commits"]["commits"][0]["author"] == "Demo Developer <dev@example.com>"


def test_plan_error_is_exit_1_recorded_with_stage(world: DemoWorld) -> None:
    edit_config(world, source={"ref": "nope"})
    result = invoke_cli("plan", "demo", "--config", str(world.config), "--output", "json")
    assert result.returncode == 1
    error = json.loads(result.stdout)
    assert error["stage"] == "fetch" and "ref 'nope' is not a branch, tag or commit" in error["error"]
    history = json.loads(invoke_cli("history", "--output", "json").stdout)
    assert history[0]["outcome"] == "failed" and history[0]["failed_stage"] == "fetch"

    text = invoke_cli("plan", "demo", "--config", str(world.config))
    assert text.returncode == 1 and "error: environment 'demo': ref 'nope'" in text.stderr


@pytest.mark.e2e  # the console script's traceback on a crash
def test_plan_that_crashes_in_render_is_recorded_at_render_and_shown_with_its_traceback(world: DemoWorld, driftgate_home: Path) -> None:
    # A real fault, nothing mocked: render's cache folder is a file, so its
    # mkdir raises FileExistsError, which no engine code expects (a bug's stand-in).
    driftgate_home.mkdir(parents=True, exist_ok=True)
    (driftgate_home / "renders").write_text("not a folder")
    result = run_cli("plan", "demo", "--config", str(world.config))
    assert result.returncode == 1 and "FileExistsError" in result.stderr and "Traceback" in result.stderr
    history = json.loads(run_cli("history", "--output", "json").stdout)
    assert history[0]["outcome"] == "failed" and history[0]["failed_stage"] == "render", history[0]
    assert history[0]["reason"].startswith("FileExistsError: ") and history[0]["commit"]


def test_unknown_environment_and_bad_output(world: DemoWorld) -> None:
    result = invoke_cli("plan", "prod", "--config", str(world.config))
    assert result.returncode == 1 and "environment 'prod' is not in" in result.stderr
    result = invoke_cli("plan", "demo", "--config", str(world.config), "--output", "yaml")
    assert result.returncode == 1 and "--output must be text or json" in result.stderr


def test_history_newest_first_and_filtered(world: DemoWorld, tmp_path: Path) -> None:
    other = world.root / "other.yaml"
    other.write_text(world.config.read_text().replace("  demo:", "  staging:", 1))
    assert invoke_cli("plan", "demo", "--config", str(world.config)).returncode == 2
    assert invoke_cli("plan", "staging", "--config", str(other)).returncode == 2
    runs = json.loads(invoke_cli("history", "--output", "json").stdout)
    assert [r["environment"] for r in runs] == ["staging", "demo"]
    assert runs[0]["started_at"] >= runs[1]["started_at"]
    only = json.loads(invoke_cli("history", "demo", "--output", "json").stdout)
    assert [r["environment"] for r in only] == ["demo"] and only[0]["mode"] == "plan" and only[0]["outcome"] == "drift"
    text = invoke_cli("history")
    assert text.returncode == 0 and "staging" in text.stdout and "drift" in text.stdout
    assert "no runs recorded yet for nothing" in invoke_cli("history", "nothing").stdout


def test_history_in_start_order_drift_checks_named_cut_off_and_no_match() -> None:
    from driftgate.store import Store
    from tests.test_store import T0, a_run

    store = Store()
    # A sync that waited for approval: it started first and ended last (its row is the newest).
    store.record(a_run("web", at=T0, commit="a" * 40, finished_at=T0 + timedelta(hours=2)))
    store.record(a_run("web", at=T0 + timedelta(minutes=5), commit="b" * 40, purpose=RunPurpose.DRIFT,
                       mode=RunMode.PLAN, outcome=Outcome.DRIFT, approval=None))  # fmt: skip
    store.record(a_run("web", at=T0 + timedelta(minutes=10), commit="c" * 40))
    table = invoke_cli("history", "--limit", "2")
    assert table.returncode == 0, table.stdout + table.stderr
    rows = [line.split() for line in table.stdout.splitlines() if line[:1].isdigit()]
    assert [(row[0], row[4]) for row in rows] == [("3", "sync"), ("2", "drift")]  # by start, the kind of run
    assert "the latest 2 runs by start; more match" in table.stdout
    everything = invoke_cli("history", "--limit", "0")
    assert "more match" not in everything.stdout and len([l for l in everything.stdout.splitlines() if l[:1].isdigit()]) == 3
    assert [r["commit"][0] for r in json.loads(invoke_cli("history", "--output", "json").stdout)] == ["c", "b", "a"]

    none = invoke_cli("history", "web", "--commit", "dead")
    assert none.returncode == 0 and "no runs match for web: commit dead" in none.stdout
    assert "no runs recorded yet for nothing" in invoke_cli("history", "nothing").stdout


@pytest.mark.usefixtures("prefect_api")
def test_sync_yes_approves_in_advance_and_exit_codes(files_world: FilesWorld, prefect_api: str, tmp_path: Path) -> None:
    world = files_world  # the CLI's contract, not Ansible's: the files kind, installed as a plugin for the process
    env = {"PREFECT_API_URL": prefect_api, "DRIFTGATE_USER": "erin", **as_installed_plugin(tmp_path / "plugins")}
    edit_config(world, approval={"mode": "always"})
    result = run_cli("sync", "demo", "--config", str(world.config), "--yes", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "applied: demo" in result.stdout and "approval: approve by erin: approved in advance" in result.stdout
    assert "Prefect UI: " in result.stdout and "/runs/flow-run/" in result.stdout
    record = json.loads(invoke_cli("history", "demo", "--output", "json").stdout)[0]
    assert record["approval"]["approver"] == "erin" and record["requested_by"] == "erin" and record["trigger"] == "cli"

    edit_config(world, source={"ref": "missing"})
    failed = invoke_cli("sync", "demo", "--config", str(world.config), env=env)
    assert failed.returncode == 1
    assert "failed: demo" in failed.stdout and "stopped at fetch (FetchFailed)" in failed.stdout


@pytest.mark.usefixtures("prefect_api")
def test_approve_without_a_paused_run_and_blocks_register(prefect_api: str) -> None:
    env = {"PREFECT_API_URL": prefect_api}
    result = invoke_cli("approve", "demo", "--approver", "x", env=env)
    assert result.returncode == 1 and "no reconcile run of 'demo' is waiting for approval" in result.stderr

    registered = invoke_cli("blocks", "register", env=env)
    assert registered.returncode == 0, registered.stderr
    for slug in ("driftgate-git-credentials", "driftgate-ansible-ssh", "driftgate-signing-keys", "driftgate-database"):
        assert f"registered block type {slug}" in registered.stdout

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        assert client.read_block_type_by_slug("driftgate-ansible-ssh").name == "driftgate Ansible SSH"


@pytest.mark.usefixtures("prefect_api")
def test_record_database_from_a_block(files_world: FilesWorld, prefect_api: str, tmp_path: Path, driftgate_home: Path) -> None:
    from driftgate.blocks import DriftgateDatabase

    world = files_world
    url = f"sqlite:///{tmp_path / 'team-record.db'}"
    DriftgateDatabase(url=url).save("team-record", overwrite=True)
    env = {"PREFECT_API_URL": prefect_api, "DRIFTGATE_DATABASE_BLOCK": "team-record"}
    assert invoke_cli("sync", "demo", "--config", str(world.config), env=env).returncode == 0
    runs = json.loads(invoke_cli("history", "--output", "json", env=env).stdout)
    assert [r["outcome"] for r in runs] == ["applied"]
    assert (tmp_path / "team-record.db").exists() and not (driftgate_home / "driftgate.db").exists()

    missing = invoke_cli("history", env={**env, "DRIFTGATE_DATABASE_BLOCK": "nope"})
    assert missing.returncode == 1 and "DRIFTGATE_DATABASE_BLOCK names block 'nope'" in missing.stderr

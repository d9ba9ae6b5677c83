"""Tamper evidence and the auditor's commands, through the real CLI, on SQLite
and PostgreSQL: rows really altered, removed and inserted with SQL behind the
store's back are named by ``driftgate audit verify``; history filters, show,
export; no secret value in the database after real runs; the flow records
its start and end."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from driftgate import git, targets
from driftgate.access import local_access
from driftgate.config import load_config
from driftgate.demo_repo import DemoWorld, add_kubernetes_environment, commit_change
from driftgate.models import RunPurpose
from driftgate.runlog import RunLog
from driftgate.store import Store
from tests.conftest import DRIFTGATE, artifacts_of, as_cli, invoke_cli
from tests.filestarget import FilesWorld
from tests.kubeapi.fixtures import kube_double_factory  # noqa: F401  (fixture)
from tests.postgres import database_url, postgres_server  # noqa: F401  (fixtures)
from tests.test_store import T0, _start, a_run


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return invoke_cli(*args, env={"DRIFTGATE_DATABASE_URL": url})


def verdict(url: str) -> dict[str, Any]:
    result = cli(url, "audit", "verify", "--output", "json")
    data = json.loads(result.stdout)
    assert result.returncode == (0 if data["ok"] else 1)
    return data


@pytest.fixture
def record(database_url: str) -> Store:
    """Three runs of two environments, each with its start, in one chain."""
    store = Store(database_url)
    for i, env in enumerate(["prod", "staging", "prod"]):
        run = a_run(env, at=T0 + timedelta(days=i), commit=f"{'abcdef'[i]}" * 40, run_id=f"run-{i}-{env}")
        store.start_run(_start(run.run_id, env))
        store.record(run)
    return store


def _sql(store: Store, statement: str, **params: Any) -> None:
    """Tampering: plain SQL on the database, behind the store's back."""
    with store.engine.begin() as conn:
        conn.execute(sa.text(statement), params)


def test_an_intact_record_verifies(record: Store, database_url: str) -> None:
    result = cli(database_url, "audit", "verify")
    assert result.returncode == 0, result.stderr
    assert "the record is intact: 9 entries, head " in result.stdout  # 3 x (start, run, status)


def test_an_altered_run_is_named(record: Store, database_url: str) -> None:
    _sql(record, "UPDATE runs SET outcome = 'applied', approver = 'mallory' WHERE id = 2")
    result = cli(database_url, "audit", "verify")
    assert result.returncode == 1
    assert "the record was tampered with: runs #2 (seq 5, staging, 2024-05-02 12:00:00) was altered" in result.stderr
    assert {k: verdict(database_url)[k] for k in ("kind", "table", "id")} == {"kind": "altered", "table": "runs", "id": 2}


def test_an_altered_change_is_named_by_its_run(record: Store, database_url: str) -> None:
    _sql(record, "UPDATE changes SET diff = '+nothing to see' WHERE run_pk = 3 AND position = 1")
    data = verdict(database_url)
    assert (data["kind"], data["table"], data["id"]) == ("altered", "runs", 3)
    assert "its change rows no longer match its hash" in data["problem"]


def test_a_removed_run_is_named(record: Store, database_url: str) -> None:
    _sql(record, "DELETE FROM changes WHERE run_pk = 2")
    _sql(record, "DELETE FROM runs WHERE id = 2")
    data = verdict(database_url)
    assert data["kind"] == "removed"
    assert data["problem"].startswith("a row was removed (seq 5) between run_starts #2 (seq 4")


def test_an_inserted_run_is_named(record: Store, database_url: str) -> None:
    """A forged run slipped in among the real ones, copied from one and changed."""
    runs = sa.Table("runs", sa.MetaData(), autoload_with=record.engine)
    with record.engine.begin() as conn:
        row = dict(conn.execute(sa.select(runs).where(runs.c.id == 2)).mappings().one())
        row.pop("id")
        conn.execute(runs.insert().values({**row, "approver": "mallory", "outcome": "applied", "run_id": "forged"}))
    data = verdict(database_url)
    assert (data["kind"], data["table"], data["id"]) == ("inserted", "runs", 4)
    assert "runs #4 (seq 5, staging" in data["problem"]


def test_history_filters_show_and_export(record: Store, database_url: str) -> None:
    record.record(a_run("prod", at=T0 + timedelta(days=5), commit="f" * 40, approval={"required": True, "decision": "reject", "approver": "dave", "reason": "freeze"}))  # fmt: skip
    runs = json.loads(cli(database_url, "history", "--output", "json").stdout)
    assert [r["commit"][0] for r in runs] == ["f", "c", "b", "a"]  # newest first
    for key in ("environment", "mode", "outcome", "commit", "changes", "approval", "hosts", "flow_run_id", "failed_stage",
                "reason", "started_at", "kind", "run_id", "commit_author", "signed_by", "flow_run_url", "version", "row_hash"):  # fmt: skip
        assert key in runs[0], key
    filtered = json.loads(cli(database_url, "history", "prod", "--since", "2024-05-02", "--output", "json").stdout)
    assert [r["commit"][0] for r in filtered] == ["f", "c"]
    assert [r["id"] for r in json.loads(cli(database_url, "history", "--commit", "bbbb", "--output", "json").stdout)] == [2]
    assert [r["id"] for r in json.loads(cli(database_url, "history", "--approver", "dave", "--output", "json").stdout)] == [4]
    assert cli(database_url, "history", "--since", "yesterday").returncode == 1

    shown = cli(database_url, "show", "2")
    assert shown.returncode == 0, shown.stderr
    for text in ("run #2", "applied", "staging", "Carol <carol@example.com>", "verified: Release Key", "approve by alice",
                 "2 change(s)", "update web0: config line", "risky: delete", "result: changed", "+b1", "run-1-staging"):  # fmt: skip
        assert text in shown.stdout, text
    by_run_id = json.loads(cli(database_url, "show", "run-1-staging", "--output", "json").stdout)
    assert by_run_id["id"] == 2 and by_run_id["changes"][1]["diff"] == "-a\n+b1"
    missing = cli(database_url, "show", "12345")
    assert missing.returncode == 1 and "no run '12345' in the record" in missing.stderr

    exported = cli(database_url, "audit", "export", "--format", "csv", "--since", "2024-05-02", "--until", "2024-05-06")
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [(r["id"], r["environment"], r["approver"], r["change_count"]) for r in rows] == [("2", "staging", "alice", "2"), ("3", "prod", "alice", "2")]
    assert rows[0]["row_hash"] and rows[0]["signed_by"] == "Release Key <release@example.com>"
    everything = json.loads(cli(database_url, "audit", "export", "--format", "json").stdout)
    assert [r["id"] for r in everything] == [1, 2, 3, 4] and everything[3]["approval"]["reason"] == "freeze"
    assert cli(database_url, "audit", "export", "--format", "xml").returncode == 1


# ---------------------------------------------------------------- secrets

VAULT_PASSWORD = "vault-pass-for-tests"
VAULTED_TOKEN = "vaulted-token-8d1f0c"


def _record_run(world_config: Path, environment: str) -> None:
    """A whole sync through the engine (what the flow does, without Prefect), recorded."""
    env = load_config(world_config).environment(environment)
    access = local_access(env)
    run = RunLog(environment, purpose=RunPurpose.SYNC, trigger="test", masker=access.masker)
    Store().start_run(run.start())
    run.checkout = git.fetch(env.source, environment=environment)
    bundle = targets.render(env, run.checkout, access=access)
    run.plan = targets.plan(env, bundle, access)
    run.result = targets.apply(env, bundle, access, run.plan)
    record = run.finish()
    assert record.outcome.value == "applied", record.reason
    Store().record(record)


def _add_vaulted_variable(world: DemoWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    password_file = tmp_path / "vault-pass"
    password_file.write_text(VAULT_PASSWORD)
    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(password_file))
    vaulted = subprocess.run(
        [str(DRIFTGATE.with_name("ansible-vault")), "encrypt_string", VAULTED_TOKEN, "--name", "api_token"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    playbook = (world.repo / "ansible/site.yml").read_text() + (
        "\n    - name: api token\n      ansible.builtin.copy:\n        dest: \"{{ demo_root }}/app/token\"\n"
        "        content: \"{{ api_token }}\"\n        mode: \"0600\"\n      no_log: true\n"
    )
    commit_change(world.repo, "ansible/site.yml", playbook, "deploy the API token")
    commit_change(world.repo, "ansible/vault.yml", vaulted, "the API token, vaulted")
    text = (world.repo / "ansible/site.yml").read_text().replace("vars_files: [vars.yml]", "vars_files: [vars.yml, vault.yml]")
    commit_change(world.repo, "ansible/site.yml", text, "read the vault")


def test_no_secret_value_reaches_the_database(
    world: DemoWorld, kube_double_factory: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, driftgate_home: Path  # noqa: F811
) -> None:
    api = kube_double_factory(ready_delay=0.1, job_delay=0.1)
    add_kubernetes_environment(world, kubeconfig=str(api.kubeconfig_path), namespace="shop-secrets")
    _record_run(world.config, "shop")
    rotated = (world.repo / "k8s/config.yaml").read_text().replace("s3cret-from-git", "n3w-s3cret-value")
    commit_change(world.repo, "k8s/config.yaml", rotated, "rotate the password")
    _record_run(world.config, "shop")  # a run that changed a Secret

    _add_vaulted_variable(world, tmp_path, monkeypatch)
    _record_run(world.config, "demo")  # a run that deployed a vaulted variable
    assert (world.host_root / "app/token").read_text() == VAULTED_TOKEN  # it really was used

    runs = Store().history(limit=None)
    shop_runs = [r for r in runs if r.environment == "shop"]
    assert any(c.kind == "Secret" and c.action == "update" for c in shop_runs[0].changes)
    assert "api token" in [t.task for t in runs[0].hosts[0].tasks]  # recorded, its value is not
    import base64

    planted = ["s3cret-from-git", "n3w-s3cret-value", VAULTED_TOKEN, VAULT_PASSWORD]
    planted += [base64.b64encode(p.encode()).decode().rstrip("=") for p in planted]
    files = [p for p in driftgate_home.glob("driftgate.db*")]
    assert files and any(p.name == "driftgate.db" for p in files)
    with Store().engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    for path in files:
        data = path.read_bytes()
        for secret in planted:
            assert secret.encode() not in data, f"{secret!r} in {path.name}"
    assert b"Secret" in (driftgate_home / "driftgate.db").read_bytes()  # the search does see the rows


# ---------------------------------------------------------------- the flow


@pytest.mark.usefixtures("prefect_api")
def test_the_flow_records_its_start_end_and_links(files_world: FilesWorld, driftgate_home: Path) -> None:
    from driftgate.flows.reconcile import reconcile

    world = files_world  # the record is the subject: the files kind, not Ansible
    with as_cli(yes=True):
        state = reconcile(environment="demo", config=str(world.config), return_state=True)
    flow_run_id = str(state.state_details.flow_run_id)
    store = Store()
    run = store.for_flow_run(flow_run_id)
    assert run is not None and run.outcome.value == "applied"
    assert run.flow_run_url and run.flow_run_url.endswith(f"/runs/flow-run/{flow_run_id}")  # the UI's run page
    assert run.commit_author == "Tess Ter <tess@example.com>"
    assert run.version and run.purpose.value == "sync" and all(c.result == "changed" for c in run.changes)
    entries = store.chain_entries()
    starts = [e for e in entries if e.table == "run_starts"]
    assert [e.content["run_id"] for e in starts] == [run.run_id] and starts[0].seq < run.seq
    assert store.status("demo").last_applied_revision == run.commit

    markdown = "\n".join(a.data for a in artifacts_of(run.flow_run_id) if a.key == "record-demo" and isinstance(a.data, str))
    assert f"driftgate show {run.id}" in markdown and run.row_hash[:16] in markdown  # the link back
    assert invoke_cli("audit", "verify", env={"DRIFTGATE_HOME": os.environ["DRIFTGATE_HOME"]}).returncode == 0


# ---------------------------------------------------------------- streaming export


def test_export_streams_runs_in_start_order_a_page_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`audit export` walks the record a page at a time: every run once, in start
    order (ties on started_at by id, across page boundaries), the filters applied
    on every page, and the same JSON text as dumping the whole list."""
    from driftgate import audit
    from driftgate.store import queries

    store = Store(f"sqlite:///{tmp_path / 'record.db'}")
    starts = [T0, T0, T0, T0 + timedelta(hours=1), T0 + timedelta(hours=1), T0 + timedelta(days=1), T0 + timedelta(days=2)]
    for i, at in enumerate(starts):
        store.record(a_run("prod" if i % 3 else "staging", at=at, run_id=f"run-{i}"))
    monkeypatch.setattr(queries, "_PAGE", 2)  # pages end inside a tie of started_at
    assert [r.run_id for r in store.iter_runs()] == [f"run-{i}" for i in range(7)]
    assert [r.run_id for r in store.iter_runs("prod")] == ["run-1", "run-2", "run-4", "run-5"]
    assert [r.run_id for r in store.iter_runs(since=T0 + timedelta(hours=1), until=T0 + timedelta(days=2))] == ["run-3", "run-4", "run-5"]

    for n in (0, 1, 3):
        rows = [r.model_dump(mode="json") for r in list(store.iter_runs())[:n]]
        out = io.StringIO()
        audit.write_json(iter(rows), out)
        assert out.getvalue() == json.dumps(rows, indent=2)


# Measured in a process of its own: tracemalloc's peak counts every thread, and
# a pytest worker still runs the Prefect clients' log and event threads of earlier
# tests, which allocate during the measurement (seen: 296 kB then 527 kB).
EXPORT_PEAK = """
import os, sys, tracemalloc
from driftgate import audit
from driftgate.store import Store, queries
queries._PAGE = 5
store = Store(sys.argv[1])
def peak():
    with open(os.devnull, "w") as sink:
        tracemalloc.start()
        try:
            audit.write_json((r.model_dump(mode="json") for r in store.iter_runs()), sink)
            audit.write_csv((r.model_dump(mode="json") for r in store.iter_runs()), sink)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
peak()  # warm: SQLAlchemy compiles and caches its statements once
print(peak())
"""


def test_export_memory_stays_flat_as_the_record_grows(tmp_path: Path) -> None:
    """Four times the runs, about the same peak memory: the export holds a page, not the record."""
    url = f"sqlite:///{tmp_path / 'record.db'}"
    store = Store(url)

    def peak_of_export() -> int:
        done = subprocess.run([sys.executable, "-c", EXPORT_PEAK, url], capture_output=True, text=True, check=True)
        return int(done.stdout)

    def grow_to(n: int) -> None:
        for i in range(len(list(store.iter_runs())), n):
            store.record(a_run("prod", at=T0 + timedelta(minutes=i), run_id=f"run-{i}", changes=4))

    grow_to(15)
    small = peak_of_export()
    grow_to(60)
    large = peak_of_export()
    assert large < small * 1.5, f"export peak grew from {small} to {large} bytes with 4x the runs"

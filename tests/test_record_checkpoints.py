"""The record anchored outside its database: signed checkpoints in a directory
and in a Git ref, and what ``driftgate audit verify`` finds with them. The
attacks are real: rows deleted with SQL, a chain recomputed with driftgate's
own hash functions, a database file deleted and started anew, a bundle edited
by hand. Keys are made and checked by the real ssh-keygen; the Git remote is a
real bare repository."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from driftgate import audit, signing
from driftgate.cli import app
from driftgate.store import CHAINED, Store
from driftgate.store.engine import open_engine
from tests.conftest import DRIFTGATE, SSHKey
from tests.postgres import database_url, postgres_server  # noqa: F401  (fixtures)
from tests.test_store import T0, _start, a_run



def _keygen(path: Path, comment: str) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)
    return path


@pytest.fixture
def instance_key(tmp_path: Path) -> Path:
    return _keygen(tmp_path / "instance_key", "driftgate-instance")


@pytest.fixture
def checkpoints_dir(tmp_path: Path, instance_key: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Checkpoints configured: a directory, signed with the instance key."""
    where = tmp_path / "checkpoints"
    monkeypatch.setenv("DRIFTGATE_CHECKPOINTS", str(where))
    monkeypatch.setenv("DRIFTGATE_INSTANCE_KEY", str(instance_key))
    return where


def approver_line(key: SSHKey) -> str:
    return key.signer_line("alice", 'namespaces="driftgate-approval"').strip()


def _three_runs(url: str, *, signed_by: SSHKey | None = None) -> Store:
    """Three runs of two environments, each with its start: 9 entries, 6 transactions.
    ``signed_by``: each approval is signed by alice with this key and carries the
    evidence a signed approval keeps (statement, signature, fingerprint and the
    allowed_signers line it was checked with), which `audit verify` re-verifies."""
    store = Store(url)
    for i, env in enumerate(["prod", "staging", "prod"]):
        at, commit = T0 + timedelta(days=i), f"{'abcdef'[i]}" * 40
        approval: dict[str, Any] = {"required": True, "decision": "approve", "approver": "alice"}
        if signed_by is not None:
            decided = at + timedelta(seconds=1)
            statement = signing.Statement(
                environment=env, flow_run=a_run().flow_run_id or "", plan=a_run().plan_hash, commit=commit,
                decision="approve", approver="alice", expires=decided + timedelta(hours=1),
            )  # fmt: skip
            evidence = signing.check_answer(statement, signing.sign(statement.text(), signed_by.path), approver_line(signed_by),
                                            now=decided, source="test")  # fmt: skip
            approval.update(plan_hash=statement.plan, decided_at=decided.isoformat(), signature=evidence.model_dump())
        run = a_run(env, at=at, commit=commit, run_id=f"run-{i}-{env}", approval=approval)
        store.start_run(_start(run.run_id, env))
        store.record(run)
    return store


def verify(url: str | None = None, *args: str) -> tuple[int, dict[str, Any]]:
    env = {"DRIFTGATE_DATABASE_URL": url} if url else {}
    result = CliRunner().invoke(app, ["audit", "verify", "--output", "json", *args], env=env)
    return result.exit_code, json.loads(result.stdout)


def verify_text(url: str, *args: str) -> Any:
    return CliRunner().invoke(app, ["audit", "verify", *args], env={"DRIFTGATE_DATABASE_URL": url})


def _sql(store: Store, *statements: str) -> None:
    """Tampering: plain SQL on the database, behind the store's back."""
    with store.engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))


def _cut_after(store: Store, seq: int) -> None:
    """Truncation: the newest rows of every chained table, gone."""
    _sql(
        store,
        f"DELETE FROM changes WHERE run_pk IN (SELECT id FROM runs WHERE seq > {seq})",
        *(f"DELETE FROM {model.__tablename__} WHERE seq > {seq}" for model in CHAINED),
    )


def _recompute_from(store: Store, seq: int, **edit: Any) -> None:
    """The stronger attack: edit the row at ``seq`` and recompute every later
    hash with driftgate's own functions, so the chain alone looks intact."""
    tables = [sa.Table(m.__tablename__, sa.MetaData(), autoload_with=store.engine) for m in CHAINED]
    with store.engine.begin() as conn:
        rows = sorted(
            ((t, dict(r)) for t in tables for r in conn.execute(sa.select(t).where(t.c.seq >= seq - 1)).mappings()),
            key=lambda tr: tr[1]["seq"],
        )
        prev_hash = rows[0][1]["row_hash"]
        for table, row in rows[1:]:
            if row["seq"] == seq:
                row.update(edit)
            row["prev_hash"] = prev_hash
            row["row_hash"] = prev_hash = audit.row_hash(table.name, row)
            conn.execute(table.update().where(table.c.id == row["id"]).values(row))


# ---------------------------------------------------------------- not configured


def test_without_checkpoints_verify_says_what_it_cannot_see(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'record.db'}"
    _three_runs(url)
    result = verify_text(url)
    assert result.exit_code == 0, result.output
    assert "the record is intact: 9 entries" in result.stdout
    assert "no checkpoints configured: truncation and recomputation cannot be detected" in result.output
    code, data = verify(url)
    assert code == 0 and data["checkpoints"]["configured"] is False


# ---------------------------------------------------------------- a directory


def test_an_anchored_record_verifies(checkpoints_dir: Path, instance_key: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'record.db'}"
    _three_runs(url)
    files = sorted(p.name for p in checkpoints_dir.glob("*.json"))
    assert len(files) == 6  # one per transaction that appended
    newest = json.loads((checkpoints_dir / files[-1]).read_text())
    payload = json.loads(newest["payload"])
    assert (payload["index"], payload["seq"]) == (6, 9) and newest["signature"].startswith("-----BEGIN SSH SIGNATURE-----")
    # The real ssh-keygen accepts it, with the instance key, in driftgate's namespace.
    allowed = tmp_path / "allowed"
    allowed.write_text(f'driftgate-instance namespaces="driftgate-checkpoint" {instance_key.with_suffix(".pub").read_text()}')
    sig = tmp_path / "sig"
    sig.write_text(newest["signature"])
    check = subprocess.run(
        ["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", "driftgate-instance", "-n", "driftgate-checkpoint", "-s", str(sig)],
        input=newest["payload"], capture_output=True, text=True,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr

    result = verify_text(url)
    assert result.exit_code == 0, result.output
    assert "the record is intact: 9 entries" in result.stdout
    assert "6 checkpoints" in result.stdout and "seq 9" in result.stdout
    code, data = verify(url)
    assert code == 0 and data["checkpoints"]["count"] == 6 and data["findings"] == []


def test_rows_cut_from_the_end_are_named(checkpoints_dir: Path, database_url: str) -> None:
    store = _three_runs(database_url)
    _cut_after(store, 6)  # the last run, its start and its status: the chain alone still looks whole
    code, data = verify(database_url)
    assert code == 1
    assert data["kind"] == "truncated"
    assert "rows were cut from the end of the record" in data["problem"]
    assert "checkpoint #6" in data["problem"] and "seq 9" in data["problem"] and "ends at seq 6" in data["problem"]


def test_a_recomputed_chain_is_named(checkpoints_dir: Path, database_url: str) -> None:
    store = _three_runs(database_url)
    _recompute_from(store, 5, approver="mallory")  # seq 5: the staging run
    assert audit.verify(store.chain_entries()).ok  # the chain alone is fooled
    code, data = verify(database_url)
    assert code == 1
    assert data["kind"] == "recomputed"
    # Checkpoints stand at seq 1, 3, 4, 6, 7, 9: seq 4 still matches, seq 6 no longer does.
    assert "the chain was recomputed" in data["problem"]
    assert "after seq 4" in data["problem"] and "checkpoint #4" in data["problem"] and "seq 6" in data["problem"]


def test_a_database_deleted_and_started_anew_is_named(checkpoints_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "record.db"
    url = f"sqlite:///{path}"
    _three_runs(url)
    open_engine.cache_clear()
    for leftover in tmp_path.glob("record.db*"):
        leftover.unlink()

    code, data = verify(url)  # an empty record where checkpoints stood
    assert code == 1 and data["kind"] == "recreated"
    assert "the record is empty, but checkpoint #6" in data["problem"]

    store = Store(url)  # the next run starts a new chain: on main, verify called it intact
    store.start_run(_start("run-after", "prod"))
    store.record(a_run("prod", at=T0 + timedelta(days=9), run_id="run-after"))
    code, data = verify(url)
    assert code == 1 and data["kind"] == "recreated"
    assert "the database was deleted and started anew" in data["problem"] and "checkpoint #6" in data["problem"]


def test_a_forged_or_removed_checkpoint_is_named(checkpoints_dir: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'record.db'}"
    _three_runs(url)
    files = sorted(checkpoints_dir.glob("*.json"))

    # A checkpoint signed by someone else's key: not the instance's.
    mallory = _keygen(tmp_path / "mallory", "mallory")
    newest = json.loads(files[-1].read_text())
    payload = json.loads(newest["payload"])
    payload["seq"] = 6
    forged_payload = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    signed = subprocess.run(
        ["ssh-keygen", "-Y", "sign", "-f", str(mallory), "-n", "driftgate-checkpoint"], input=forged_payload, capture_output=True, text=True, check=True
    )  # fmt: skip
    original = files[-1].read_text()
    files[-1].write_text(json.dumps({"payload": forged_payload, "signature": signed.stdout}))
    code, data = verify(url)
    assert code == 1 and data["kind"] == "checkpoints"
    assert "checkpoint #6" in data["problem"] and "signature" in data["problem"]

    # A checkpoint in the middle taken away.
    files[-1].write_text(original)
    files[2].unlink()
    code, data = verify(url)
    assert code == 1 and data["kind"] == "checkpoints"
    assert "checkpoint #3 is missing" in data["problem"]


# ---------------------------------------------------------------- the bundle


def _export(url: str, bundle: Path) -> None:
    result = CliRunner().invoke(app, ["audit", "export", "--bundle", str(bundle)], env={"DRIFTGATE_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    assert f"wrote {bundle}: 9 entries, 6 checkpoints" in result.stdout


def test_a_bundle_verifies_offline_with_the_database_deleted(checkpoints_dir: Path, tmp_path: Path, ssh_keys: dict[str, SSHKey]) -> None:
    path = tmp_path / "record.db"
    url = f"sqlite:///{path}"
    _three_runs(url, signed_by=ssh_keys["alice"])
    bundle = tmp_path / "audit-2024.tar"
    _export(url, bundle)
    with tarfile.open(bundle) as tar:
        names = set(tar.getnames())
        allowed = tar.extractfile("driftgate-bundle/allowed_signers").read().decode()  # type: ignore[union-attr]
    assert {"driftgate-bundle/record.jsonl", "driftgate-bundle/checkpoints.jsonl", "driftgate-bundle/manifest.json"} <= names
    assert 'driftgate-instance namespaces="driftgate-checkpoint" ssh-ed25519 ' in allowed
    assert allowed.count(approver_line(ssh_keys["alice"])) == 1  # the approvers' keys the record's signed approvals were checked with

    open_engine.cache_clear()
    for leftover in tmp_path.glob("record.db*"):
        leftover.unlink()
    auditor_home = tmp_path / "auditor"
    # The auditor's laptop: no database, no Prefect, no checkpoint location, no instance key.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTGATE_", "PREFECT_"))}
    result = subprocess.run(
        [str(DRIFTGATE), "audit", "verify", "--bundle", str(bundle)],
        env={**env, "DRIFTGATE_HOME": str(auditor_home), "PREFECT_API_URL": "http://127.0.0.1:9/api"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "the record is intact: 9 entries" in result.stdout and "6 checkpoints" in result.stdout
    assert "SHA256:" in result.stdout  # the key it trusted, for the auditor to compare
    assert "3 signed approvals re-verified" in result.stdout  # offline, from the evidence the bundle carries
    assert not path.exists() and not list(auditor_home.glob("*.db"))  # nothing was opened or created


def _rewrite_member(bundle: Path, name: str, edit: Any) -> Path:
    """A copy of the bundle with one member changed by ``edit(text) -> text``."""
    forged = bundle.with_name("forged-" + bundle.name)
    with tarfile.open(bundle) as src, tarfile.open(forged, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == name:
                data = edit(data.decode()).encode()
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    return forged


def test_a_bundle_with_one_altered_row_is_refused(checkpoints_dir: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'record.db'}"
    _three_runs(url)
    bundle = tmp_path / "audit.tar"
    _export(url, bundle)

    def approve_as_mallory(text: str) -> str:
        lines = text.splitlines()
        entry = json.loads(lines[4])  # seq 5, the staging run
        assert entry["table"] == "runs"
        entry["content"]["approver"] = "mallory"
        lines[4] = json.dumps(entry)
        return "\n".join(lines) + "\n"

    forged = _rewrite_member(bundle, "driftgate-bundle/record.jsonl", approve_as_mallory)
    result = CliRunner().invoke(app, ["audit", "verify", "--bundle", str(forged)])
    assert result.exit_code == 1
    assert "runs #2 (seq 5, staging" in result.output and "was altered" in result.output

    cut = _rewrite_member(bundle, "driftgate-bundle/record.jsonl", lambda text: "\n".join(text.splitlines()[:6]) + "\n")
    code, data = verify(None, "--bundle", str(cut))
    assert code == 1 and data["kind"] == "truncated"

    assert CliRunner().invoke(app, ["audit", "verify", "--bundle", str(bundle)]).exit_code == 0  # the original is fine


# ---------------------------------------------------------------- a Git ref


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout


def test_checkpoints_in_a_git_ref_pushed_to_a_remote(tmp_path: Path, instance_key: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    remote = tmp_path / "audit.git"
    _git("init", "--quiet", "--bare", str(remote))
    monkeypatch.setenv("DRIFTGATE_CHECKPOINTS", f"git:{remote}")
    monkeypatch.setenv("DRIFTGATE_INSTANCE_KEY", str(instance_key))
    url = f"sqlite:///{tmp_path / 'record.db'}"
    store = _three_runs(url)

    commits = _git("--git-dir", str(remote), "rev-list", "refs/driftgate/audit").split()
    assert len(commits) == 6  # one commit per checkpoint, each on the one before
    newest = json.loads(_git("--git-dir", str(remote), "show", "refs/driftgate/audit:checkpoint.json"))
    assert json.loads(newest["payload"])["seq"] == 9
    assert "seq 9" in _git("--git-dir", str(remote), "log", "-1", "--format=%s", "refs/driftgate/audit")

    code, data = verify(url)
    assert code == 0, data
    assert data["checkpoints"]["count"] == 6 and data["checkpoints"]["location"] == f"git:{remote} refs/driftgate/audit"

    _cut_after(store, 6)
    code, data = verify(url)
    assert code == 1 and data["kind"] == "truncated"

    # A second instance (its own cache of the ref) appends to the same remote: one linear history.
    monkeypatch.setenv("DRIFTGATE_HOME", str(tmp_path / "second-instance"))
    store.record(a_run("prod", at=T0 + timedelta(days=8), run_id="elsewhere"))
    assert len(_git("--git-dir", str(remote), "rev-list", "refs/driftgate/audit").split()) == 7
    _git("--git-dir", str(remote), "merge-base", "--is-ancestor", commits[0], "refs/driftgate/audit")


# ---------------------------------------------------------------- several writers

WRITER = """
import sys
from datetime import timedelta
from driftgate.store import Store
from tests.test_store import T0, _start, a_run
n = sys.argv[1]
store = Store(sys.argv[2])
for i in range(4):
    run = a_run(f"env{n}", at=T0 + timedelta(minutes=i), run_id=f"w{n}-{i}")
    store.start_run(_start(run.run_id, run.environment))
    store.record(run)
"""


def test_writers_in_several_processes_keep_one_linked_checkpoint_log(checkpoints_dir: Path, tmp_path: Path) -> None:
    """Checkpoints are appended under a lock and read the head under it: they
    never go backwards, and each names the one before, whoever wrote it."""
    url = f"sqlite:///{tmp_path / 'record.db'}"
    Store(url)  # the schema, once
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(n), url], env=env, cwd=root, stderr=subprocess.PIPE, text=True) for n in range(3)]
    for writer in writers:
        _, stderr = writer.communicate(timeout=300)
        assert writer.returncode == 0, stderr
        assert "checkpoint was not" not in stderr, stderr
    code, data = verify(url)
    assert code == 0, data
    assert data["entries"] == 3 * 4 * 3  # start, run, status
    marks = [json.loads(json.loads(p.read_text())["payload"]) for p in sorted(checkpoints_dir.glob("*.json"))]
    assert [m["seq"] for m in marks] == sorted(m["seq"] for m in marks) and marks[-1]["seq"] == 36
    assert len({m["seq"] for m in marks}) == len(marks)  # never the same head twice

"""The quick commands stay quick: what a fresh `driftgate` process imports for
``--help``, ``history``, ``show`` and ``status``, and the record opened without
Alembic when its schema is current. (Their speed is measured in bench/bench_cli.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from driftgate.demo_repo import DemoWorld, add_kubernetes_environment

# Run the CLI as the console script does, then list the top-level packages loaded.
PROBE = """
import json, sys
from driftgate.cli import app
try:
    app(sys.argv[2:], prog_name="driftgate")
except SystemExit:
    pass
with open(sys.argv[1], "w") as out:
    json.dump(sorted({name.split(".")[0] for name in sys.modules}), out)
"""

# What each command must not load: Prefect and the Kubernetes client are for
# the commands that talk to them, Alembic only for a record behind the code;
# --help needs no engine at all (pydantic models, SQLAlchemy, GitPython), and
# history or show of a run without a commit no Git.
SLOW = {"prefect", "kubernetes", "alembic"}
NOT_LOADED = {
    "--help": SLOW | {"pydantic", "sqlalchemy", "git"},
    "history": SLOW | {"git"},
    "show": SLOW | {"git"},
    "status": SLOW,
}


def imported_by(tmp_path: Path, *args: str) -> tuple[set[str], str]:
    """The packages a fresh process loads to run ``driftgate ARGS``, and its output."""
    found = tmp_path / "modules.json"
    result = subprocess.run([sys.executable, "-c", PROBE, str(found), *args], capture_output=True, text=True, timeout=120)
    assert found.exists(), result.stderr
    return set(json.loads(found.read_text())), result.stdout + result.stderr


@pytest.mark.e2e  # a fresh process: what it imports is the point
def test_the_quick_commands_load_only_what_they_use(tmp_path: Path, world: DemoWorld) -> None:
    from driftgate.models import Outcome, RunMode, RunRecord
    from driftgate.store import Store

    add_kubernetes_environment(world, kubeconfig=None)  # status reads both kinds' settings, talks to no cluster
    at = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
    Store().record(RunRecord(environment="demo", mode=RunMode.PLAN, trigger="cli", outcome=Outcome.IN_SYNC, started_at=at, finished_at=at))

    commands = {  # the command, and what its answer says
        "--help": (["--help"], "history"),
        "history": (["history"], "in-sync"),
        "show": (["show", "1"], "run #1"),
        "status": (["status", "--config", str(world.config)], "shop"),
    }
    loaded = {}
    for name, (args, answer) in commands.items():
        modules, output = imported_by(tmp_path, *args)
        assert answer in output, output  # the command ran
        loaded[name] = sorted(NOT_LOADED[name] & modules)
    assert loaded == {name: [] for name in commands}


def test_the_store_knows_the_newest_schema_revision_without_asking_alembic() -> None:
    """`SCHEMA_HEAD` lets a current record open without importing Alembic; a
    migration added without moving it would leave every record unmigrated."""
    from driftgate.migrations import head
    from driftgate.store.engine import SCHEMA_HEAD

    assert SCHEMA_HEAD == head()

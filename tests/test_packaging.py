"""The wheel installs everything under driftgate's name: flows/, tasks/, blocks/
and deployments/ stay top-level folders in the checkout but become
driftgate.flows, driftgate.tasks, ... so nothing named a bare `flows` or
`tasks` lands in a user's environment, where it could shadow theirs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the tracked files (a build writes build/ and egg-info beside its sources)."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=CHECKOUT, capture_output=True, check=True).stdout
    source = tmp_path_factory.mktemp("source")
    for name in filter(None, tracked.decode().split("\0")):
        if (CHECKOUT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(CHECKOUT / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    build = f"from setuptools import build_meta; print(build_meta.build_wheel({str(out)!r}))"
    result = subprocess.run([sys.executable, "-c", build], cwd=source, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return out / result.stdout.strip().splitlines()[-1]


def test_the_wheel_holds_one_top_level_package_driftgate(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"driftgate", "driftgate-0.1.0.dist-info"}, top
    for module in ("flows/reconcile.py", "flows/approval.py", "tasks/stages.py", "blocks/credentials.py", "deployments/serve.py"):
        assert f"driftgate/{module}" in names
    # Files the installed code reads: the migrations' settings and the committed deployments.
    assert {"driftgate/migrations/alembic.ini", "driftgate/deployments/prefect.yaml"} <= set(names)
    top_level = next(n for n in names if n.endswith("top_level.txt"))
    assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["driftgate"]


def test_the_installed_prefect_layer_imports_by_driftgates_name(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(target), str(wheel)]
    subprocess.run(install, check=True, capture_output=True, timeout=120)
    code = (
        "import importlib.util, driftgate.flows.reconcile as r, driftgate.tasks.stages, driftgate.deployments.serve\n"
        "print(r.__file__)\n"
        "print([name for name in ('flows', 'tasks', 'blocks', 'deployments') if importlib.util.find_spec(name)])\n"
    )
    # Run outside the checkout, with the installed copy first on the path.
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    where, bare = result.stdout.strip().splitlines()[-2:]
    assert where == str(target / "driftgate" / "flows" / "reconcile.py")
    assert bare == "[]"  # no bare flows/tasks/blocks/deployments package is importable

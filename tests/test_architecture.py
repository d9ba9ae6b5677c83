"""The layering rule: the engine (driftgate/, except the CLI) never imports Prefect."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ENGINE = Path(__file__).resolve().parent.parent / "driftgate"
# The engine is every module directly in driftgate/; the command line (the
# package driftgate/cli/) may import Prefect and the layers above, lazily.


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_engine_modules_do_not_import_prefect_flows_or_tasks() -> None:
    offenders = {}
    for path in sorted(ENGINE.glob("*.py")):
        bad = {n for n in _imports(path) if n.split(".")[0] in {"prefect", "flows", "tasks", "blocks"}}
        if bad:
            offenders[path.name] = sorted(bad)
    assert offenders == {}, f"engine modules import Prefect or the layers above: {offenders}"


def test_importing_every_engine_module_loads_no_prefect() -> None:
    modules = [f"driftgate.{p.stem}" for p in ENGINE.glob("*.py") if p.stem != "__init__"]
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "leaked = sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.'))\n"
        + "print(len(leaked)); assert not leaked, leaked[:5]\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"
    assert len(modules) >= 10  # the check covers the whole engine, not a subset


def test_the_command_line_loads_no_prefect_until_a_command_needs_it() -> None:
    # `driftgate plan` and `history` answer in a few seconds because of it.
    code = (
        "import sys\n"
        "import driftgate.cli\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] in {'prefect', 'flows', 'tasks', 'blocks'})\n"
        "print(len(leaked)); assert not leaked, leaked[:5]\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"

"""The layering rule: the engine (driftgate/, except the CLI) never imports Prefect."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ENGINE = Path(__file__).resolve().parent.parent / "driftgate"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


# Not the engine: the command line (driftgate/cli/) may import Prefect and the
# layers above, lazily; Ansible loads the callback, Alembic the migrations.
NOT_ENGINE = {"cli", "ansible_callbacks", "migrations"}


def _engine_modules() -> list[Path]:
    """Every engine module, those in its packages (driftgate/kube/ ...) too."""
    return sorted(
        p for p in ENGINE.rglob("*.py")
        if not NOT_ENGINE & set(p.relative_to(ENGINE).parts)
    )  # fmt: skip


def _module_name(path: Path) -> str:
    parts = path.relative_to(ENGINE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


# Prefect and driftgate's Prefect layer (flows/, tasks/, blocks/, deployments/,
# installed as driftgate.flows ...).
PREFECT_LAYER = ("prefect", "driftgate.flows", "driftgate.tasks", "driftgate.blocks", "driftgate.deployments")


def _is_prefect_layer(module: str) -> bool:
    return any(module == top or module.startswith(top + ".") for top in PREFECT_LAYER)


def test_engine_modules_do_not_import_prefect_flows_or_tasks() -> None:
    offenders = {}
    for path in _engine_modules():
        bad = {n for n in _imports(path) if _is_prefect_layer(n)}
        if bad:
            offenders[_module_name(path)] = sorted(bad)
    assert offenders == {}, f"engine modules import Prefect or the layers above: {offenders}"


def test_importing_every_engine_module_loads_no_prefect() -> None:
    modules = [_module_name(p) for p in _engine_modules()]
    assert {"driftgate.store.queries", "driftgate.kube.health", "driftgate.targets.kubernetes"} <= set(modules)  # packages are looked into
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
        f"leaked = sorted(m for m in sys.modules if m.startswith({PREFECT_LAYER!r}))\n"
        "print(len(leaked)); assert not leaked, leaked[:5]\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"

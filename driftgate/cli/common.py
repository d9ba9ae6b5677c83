"""What every command shares: the typer apps, the consoles, exit codes, options,
and how a command fails (one red line, or JSON, and exit 1).

Every module of the CLI is imported for any command (``--help`` too), so none
imports the engine at its top: each command imports what it uses when it runs
(tests/test_cli_imports.py; the times: bench/bench_cli.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from driftgate.config import Config

app = typer.Typer(
    help="GitOps as Prefect workflows: reconcile environments to Git, with approval gates and a record.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Groups in the order `driftgate --help` lists them.
blocks_app = typer.Typer(help="Prefect blocks for credentials and connection settings.", no_args_is_help=True)
app.add_typer(blocks_app, name="blocks")
audit_app = typer.Typer(
    help="The record for auditors: verify its hash chain and checkpoints, export it or a bundle.", no_args_is_help=True
)
app.add_typer(audit_app, name="audit")
deployments_app = typer.Typer(help="Prefect deployments: one sync and one drift check per environment.", no_args_is_help=True)
app.add_typer(deployments_app, name="deployments")

# Piped output (CI, the demo, tests) gets a wide console instead of rich's 80 columns.
_WIDTH = None if sys.stdout.isatty() else 160
console = Console(highlight=False, soft_wrap=True, width=_WIDTH)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2
EXIT_TIMEOUT = 3  # `driftgate wait`: the run had not ended when --timeout passed
ConfigOption = typer.Option(None, "--config", "-c", help="driftgate.yaml (default: $DRIFTGATE_CONFIG, then ./driftgate.yaml)")
OutputOption = typer.Option("text", "--output", "-o", help="text or json")


def fail(message: str, *, output: str = "text", **extra: Any) -> NoReturn:
    if output == "json":
        print(json.dumps({"error": message, **extra}, indent=2))
    else:
        err_console.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(EXIT_ERROR)


def check_output(output: str) -> None:
    if output not in ("text", "json"):
        fail(f"--output must be text or json, not {output!r}")


def load_or_fail(config: Path | None) -> Config:
    from driftgate.config import load_config
    from driftgate.errors import ConfigError

    try:
        return load_config(config)
    except ConfigError as exc:
        fail(str(exc))


def validated_config_path(config: Path | None, environment: str | None) -> Path:
    """Validate before anything starts: a bad file must not cost a Prefect start-up."""
    from driftgate.config import load_config
    from driftgate.errors import ConfigError

    try:
        cfg = load_config(config)
        if environment is not None:
            cfg.environment(environment)
    except ConfigError as exc:
        fail(str(exc))
    return cfg.path

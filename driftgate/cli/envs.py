"""``driftgate envs``: every environment of driftgate.yaml and where it came
from: written by hand under ``environments:``, or made by a generator
(``generators:``, driftgate/generators.py) from which values."""

from __future__ import annotations

import json
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from driftgate.cli.common import ConfigOption, OutputOption, check_output, console, load_or_fail


def envs(config: Path | None = ConfigOption, output: str = OutputOption) -> None:
    """List every environment (generated ones included): its target kind, source, and where it came from."""
    check_output(output)
    cfg = load_or_fail(config)
    rows = []
    for name, env in sorted(cfg.environments.items()):
        made = cfg.generated.get(name)
        rows.append({
            "environment": name,
            "kind": env.target.kind,
            "source": f"{env.source.repo} @ {env.source.ref}: {env.source.path}",
            "generator": made.generator if made else None,
            "values": dict(made.values) if made else None,
        })  # fmt: skip
    if output == "json":
        print(json.dumps(rows, indent=2))
        return
    table = Table(header_style="bold", box=None, pad_edge=False)
    for column in ("environment", "kind", "source", "from"):
        table.add_column(column)
    for row in rows:
        values = ", ".join(f"{k}={v}" for k, v in (row["values"] or {}).items())
        origin = f"generator {row['generator']} ({values})" if row["generator"] else "hand-written"
        table.add_row(escape(row["environment"]), row["kind"], escape(row["source"]), escape(origin))
    console.print(table)

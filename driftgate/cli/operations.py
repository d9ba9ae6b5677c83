"""Running driftgate as a service, and trying it: ``serve``, ``deployments
render``, ``status``, ``blocks register`` and ``demo``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from driftgate.cli.common import ConfigOption, OutputOption, check_output, console, load_or_fail, validated_config_path
from driftgate.cli.prefect_env import api_description, load_access, paused_run, prefect_defaults
from driftgate.cli.records import record_errors, store


def blocks_register() -> None:
    """Register driftgate's block types so they appear on the Prefect UI's Blocks page."""
    prefect_defaults()
    from driftgate.blocks import register_block_types

    for slug in register_block_types():
        console.print(f"registered block type [bold]{slug}[/]")


def demo(
    workdir: Path = typer.Option(Path(".demo"), help="throwaway folder for the demo's repo, host and record"),
    port: int = typer.Option(4200, help="port of the demo's Prefect server (the next free one is used if taken)"),
) -> None:
    """Walk through a GitOps loop on this machine: plan, sync, drift, plan, sync, history."""
    from driftgate.demo import run_demo

    raise typer.Exit(run_demo(workdir.resolve(), port=port))


def serve(config: Path | None = ConfigOption) -> None:
    """Serve every environment's sync and drift-check deployments on their schedules (SIGTERM or Ctrl-C stops)."""
    config_path = validated_config_path(config, None)
    prefect_defaults()
    os.environ["PREFECT_LOGGING_LEVEL"] = os.environ.get("DRIFTGATE_SERVE_LOG_LEVEL", "INFO")
    from driftgate.deployments.serve import serve as serve_deployments

    console.print(f"serving the deployments of {config_path} on {api_description()}")
    serve_deployments(str(config_path))


def deployments_render(
    config: Path | None = ConfigOption,
    output: Path = typer.Option(Path("deployments/prefect.yaml"), help="where to write prefect.yaml"),
    work_pool: str = typer.Option("driftgate", help="the process work pool the deployments run on"),
) -> None:
    """Write prefect.yaml with one sync and one drift-check deployment per environment (and drift-fleet, with fleet.drift_schedule)."""
    from driftgate.prefect_yaml import prefect_yaml

    cfg = load_or_fail(config)
    try:  # relative to the checkout the workers start in, when it is inside it
        config_ref = str(cfg.path.relative_to(Path.cwd()))
    except ValueError:
        config_ref = str(cfg.path)
    output.write_text(prefect_yaml(cfg, work_pool=work_pool, config_ref=config_ref))
    from driftgate.schedule import deployments

    console.print(f"wrote {output}: {len(deployments(cfg))} deployments on work pool {work_pool!r}")


def status(
    environment: str | None = typer.Argument(None, help="only this environment"),
    config: Path | None = ConfigOption,
    output: str = OutputOption,
) -> None:
    """One line per environment: last applied commit, Git's head, last check, in sync / drifted / out of date / failing;
    suspended, syncs closed by a window.

    Exit 0 when every environment shown is in sync, 2 when any is drifted or
    out of date, 1 when any is failing or unknown (for monitoring)."""
    from driftgate import git
    from driftgate.cli.printing import print_status
    from driftgate.errors import DriftgateError
    from driftgate.status import environment_status
    from driftgate.status import exit_code as status_exit_code

    check_output(output)
    cfg = load_or_fail(config)
    names = [environment] if environment else sorted(cfg.environments)
    record = store()
    lines = []
    for name in names:
        env = cfg.environment(name)
        head, head_error = None, ""
        try:
            access = load_access(env)
            head = git.head_commit(env.source, environment=name, auth=access.git)
        except DriftgateError as exc:
            head_error = str(exc)
        with record_errors(output):
            lines.append(environment_status(name, record, head=head, head_error=head_error, sync_windows=env.sync.windows))
    if os.environ.get("PREFECT_API_URL"):  # paused approvals live in Prefect
        lines = [line.model_copy(update={"waiting_approval": paused_run(line.environment)}) for line in lines]
    if output == "json":
        print(json.dumps([line.model_dump(mode="json") for line in lines], indent=2))
    else:
        print_status(lines)
    raise typer.Exit(status_exit_code([line.state for line in lines]))

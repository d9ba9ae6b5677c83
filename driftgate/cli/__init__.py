"""`driftgate`: the command line (typer + rich). The console script is ``driftgate.cli:app``.

Contracts other tools rely on (keep them):

- ``plan ENV``: exit 0 in sync, 2 changes pending, 1 error; ``--output json``
  holds environment, revision, plan_hash and changes (action, target, name, risky).
- ``sync ENV [--yes] [--verbose]``: runs the reconcile flow; exit 0 on success,
  1 on failure or rejection; a failure is one line (stage and reason), the
  run's logs and tracebacks only with ``--verbose``.
- ``history [ENV]``: newest first (by start), text or JSON.
- ``wait RUN [--timeout S]``: exit 0 applied or in sync, 1 failed or
  rejected, 3 still running at the timeout.
- ``status [ENV]``: exit 0 every environment in sync, 2 any drifted or out of
  date, 1 any failing or unknown.
- ``drift ENV... | --all``: one flow run checks them all; exit 0 all in sync
  (or skipped), 2 any drifted, 1 any unknown or failed.
- ``suspend ENV --reason TEXT`` / ``resume ENV``: exit 0 done, 1 error (or
  already suspended / not suspended).

``plan``, ``history``, ``show`` and ``status`` run the engine directly (no
Prefect import); no module here imports the engine at its top, so each command
loads only what it uses and ``--help`` none of it (tests/test_cli_imports.py).
``sync``, ``approve``/``reject`` and ``blocks`` import Prefect lazily; they use
the server named by ``PREFECT_API_URL`` when set, otherwise Prefect starts a
temporary one (slow: 10-20 s).

The modules, by job: `common` (the apps, consoles, exit codes, failing),
`plan`, `envs` (the environments and where they came from), `drift` (the fleet's drift check), `runs` (sync and approvals), `wait`, `moves` (rollback, promote, unpin), `history` (history, show, audit),
`operations` (serve, deployments, status, blocks, demo), `freeze` (suspend,
resume), `printing` (what the
commands print), `records` (opening the record), `prefect_env` (Prefect's
settings, server, logs and blocks). The commands are registered below, in
the order ``driftgate --help`` lists them.
"""

from __future__ import annotations

from driftgate.cli import drift, envs, freeze, history, moves, operations, plan, runs, wait
from driftgate.cli.common import app, audit_app, blocks_app, deployments_app

app.command()(plan.plan)
app.command()(envs.envs)
app.command()(runs.sync)
app.command()(moves.rollback)
app.command()(moves.promote)
app.command()(moves.unpin)
app.command()(drift.drift)
app.command()(history.history)
app.command()(history.show)
app.command()(runs.approvals)
app.command()(runs.approve)
app.command()(runs.reject)
app.command()(wait.wait)
app.command()(operations.demo)
app.command()(operations.serve)
app.command()(operations.status)
app.command()(freeze.suspend)
app.command()(freeze.resume)
blocks_app.command("register")(operations.blocks_register)
audit_app.command("verify")(history.audit_verify)
audit_app.command("export")(history.audit_export)
deployments_app.command("render")(operations.deployments_render)

__all__ = ["app"]

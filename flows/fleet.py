"""drift_fleet: one flow run that drift-checks many environments.

A hundred ``drift-<env>`` runs cost a hundred flow runs (and, from the CLI, a
Prefect start-up each); this flow loads driftgate.yaml once and runs the
single check's own per-environment code (`driftgate.flows.drift.check_environment`)
for each environment, ``concurrency`` at a time in threads, each as a task run
``drift ENV`` holding its stages. So each environment still gets its own
record entry, drift event, status, notification and self-heal, exactly as
from its own drift check; one that fails (an unexpected error included) is
recorded as failed for it and the others go on. The run ends Completed when
every check ran (drift and unknown status are findings, not crashes), Failed
when any check crashed; its message counts the outcomes.

Run by the ``drift-fleet`` deployment (``fleet.drift_schedule``: the
environments without a ``drift.schedule`` of their own) and by
``driftgate drift`` (cli/drift.py).
"""

from __future__ import annotations

import contextvars
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, Failed, State
from prefect.utilities.annotations import quote

from driftgate.config import Config, load_config
from driftgate.flows.drift import Checked, check_environment
from driftgate.flows.requests import RunRequest, pinned_config, this_request
from driftgate.schedule import fleet_environments

MAX_CONCURRENCY = 64


@task(name="drift", task_run_name="drift {environment}", cache_policy=NO_CACHE, persist_result=False, retries=0)
def check_one(environment: str, config: str | None, request: RunRequest, loaded: Config) -> Checked:
    """One environment's check, as one task run of the fleet's flow run: its stages run
    inside it (logging to it), not as task runs of their own. ``loaded`` comes quoted
    (Prefect hands it over unwrapped)."""
    return check_environment(environment, config, request, loaded=loaded, name_run=False, stage_runs=False)


@flow(name="drift-fleet", flow_run_name="drift fleet", log_prints=False, retries=0)
def drift_fleet(
    environments: list[str] | None = None, config: str | None = None, concurrency: int = 4, delay_seconds: float = 0
) -> State:
    """Drift-check ``environments`` (None: those the fleet's schedule covers, see
    `driftgate.schedule.fleet_environments`), ``concurrency`` at a time."""
    logger = get_run_logger()
    if delay_seconds:
        time.sleep(delay_seconds)
    request = this_request()
    loaded = load_config(pinned_config(config, environment="fleet"))
    names = fleet_environments(loaded) if environments is None else list(environments)
    for name in names:
        loaded.environment(name)  # an unknown name fails the run before any check: nothing to record it for
    workers = max(1, min(concurrency, MAX_CONCURRENCY))
    logger.info("checking %d environment(s), %d at a time", len(names), workers)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="drift-fleet") as pool:
        # Each thread runs in a copy of this run's context, so its task runs belong to this flow run.
        # The configuration goes quoted: Prefect walks a task's arguments looking for
        # futures, twice per task run, and the whole fleet's configuration in every
        # check made a sweep cost the square of the fleet's size.
        futures = {
            name: pool.submit(contextvars.copy_context().run, check_one, name, config, request, quote(loaded))
            for name in names
        }
    outcomes: Counter[str] = Counter()
    crashed = []
    for name, future in futures.items():
        try:
            checked = future.result()
        except Exception as exc:  # noqa: BLE001 - recorded for its environment already (driftgate.pipeline); the others go on
            logger.error("drift check of %s crashed: %s", name, exc)
            crashed.append(name)
            outcomes["Crashed"] += 1
            continue
        logger.info("%s: %s", name, checked.message)
        outcomes[checked.name] += 1
    words = Counter({"in sync" if state == "Completed" else state.lower(): count for state, count in outcomes.items()})
    summary = ", ".join(f"{count} {word}" for word, count in sorted(words.items())) or "none"
    if crashed:
        return Failed(message=f"{len(names)} checked: {summary} ({', '.join(crashed)}: see their records)")
    return Completed(message=f"{len(names)} checked: {summary}")

"""One sync per environment at a time, whoever starts it, and no slot outlives its run.

A Prefect global concurrency limit named ``driftgate-sync-<env>`` with one
slot, held by the reconcile flow from fetch to apply: scheduled, manual (UI)
and CLI syncs of one environment queue behind each other, while other
environments and read-only drift checks run beside them.

- The slot is taken with a short lease (`LEASE_SECONDS`, the least the
  server accepts) that Prefect renews in the background while the run lives.
  A run whose process dies stops renewing, and a server that runs its
  services (``prefect server start``) takes the slot back within a minute.
- Sooner: the holder notes its lease on its flow run (label
  `LEASE_LABEL`), and a run that finds the holder's process gone (the same
  check that records it as interrupted, `free_dead_runs`) revokes that lease
  at once and marks the dead flow run Crashed. Only a process on this
  machine can be asked; a holder elsewhere that Prefect shows Crashed keeps
  the slot until its lease runs out (`flow_run_ended`), since a live run can
  be marked Crashed too and would go on applying.
- A sync that must wait says for whom (the run, who started it, since when),
  looks again every `POLL_SECONDS` (freeing holders that died meanwhile), and
  gives up after the environment's ``sync.wait`` with `SlotTimeout`.

Used by the reconcile flow (the slot) and the drift check (who holds it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from functools import partial
from uuid import UUID

import httpx
from prefect import get_run_logger
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.objects import ConcurrencyLeaseHolder

# Private in Prefect 3.9, but it is the renewal the public `concurrency()` uses;
# driftgate needs the lease id, which that context manager keeps to itself.
from prefect.concurrency._leases import maintain_concurrency_lease
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.states import Crashed

from driftgate.errors import DriftgateError
from driftgate.models import RunStart, Stage
from driftgate.store import OpenRun, Store

LEASE_SECONDS = 60  # the server refuses shorter leases; renewed every 45 s
POLL_SECONDS = 2
QUICK_ATTEMPTS = 4  # the slot asked for again at once after a write collision (503)
QUICK_PAUSE_SECONDS = 0.05  # times the attempt: 0.3 s in all before Prefect's own retries
LIMIT_PREFIX = "driftgate-sync-"  # an environment's slot is the limit named this and the environment
LEASE_LABEL = "driftgate.sync-slot.lease"
SINCE_LABEL = "driftgate.sync-slot.since"


class SlotTimeout(DriftgateError):
    """Waited ``sync.wait`` for the environment's sync slot; nothing was done."""

    def __init__(self, message: str) -> None:
        super().__init__(message, stage=Stage.QUEUE)


def limit_name(environment: str) -> str:
    return f"{LIMIT_PREFIX}{environment}"


@contextmanager
def one_sync_at_a_time(start: RunStart, *, wait: timedelta) -> Iterator[None]:
    """Hold the sync slot of ``start``'s environment for the block (``start``:
    the run's own start, as recorded), waiting at most ``wait``; then `SlotTimeout`.
    While it waits it records holders whose process is gone as interrupted and
    frees their slots."""
    environment, flow_run_id = start.environment, str(start.flow_run_id)
    store = _store()
    name = limit_name(environment)
    _ensure_limit(name)
    holder = ConcurrencyLeaseHolder(type="flow_run", id=UUID(flow_run_id))
    deadline = time.monotonic() + wait.total_seconds()
    announced = ""  # whom it waits for, once it has had to wait
    ended = partial(flow_run_ended, environment=environment)
    while (lease_id := _try_to_take(name, holder)) is None:
        free_dead_runs(store.mark_interrupted(start, ended_elsewhere=ended), noticed_by=start)
        whom = describe_holder(environment, store.runs_in_progress(environment), exclude=flow_run_id)
        if whom != announced:
            get_run_logger().warning("%s: waiting for %s; giving up after %s (sync.wait)", environment, whom, _duration(wait))
            announced = whom
        if time.monotonic() >= deadline:
            raise SlotTimeout(
                f"{environment}: gave up after {_duration(wait)} waiting for {whom}. Nothing was done. "
                f"If no sync of {environment} is running, free the slot with "
                f"`prefect global-concurrency-limit update {name} --active-slots 0`"
            )
        time.sleep(POLL_SECONDS)
    try:
        _note_lease(flow_run_id, lease_id)
        if announced:
            # The Crashed holder it waited for, judged alive while its lease might be, has ended.
            ended = partial(flow_run_ended, environment=environment, holding_the_slot=True)
            free_dead_runs(store.mark_interrupted(start, ended_elsewhere=ended), noticed_by=start)
        # Prefect's renewal thread: renews every 45 s; if the server cannot be
        # reached for a renewal, the run is stopped rather than go on without the slot.
        with maintain_concurrency_lease(lease_id, LEASE_SECONDS, raise_on_lease_renewal_failure=True):
            yield
    finally:
        with get_client(sync_client=True) as client:
            client.release_concurrency_slots_with_lease(lease_id)


def _try_to_take(name: str, holder: ConcurrencyLeaseHolder) -> UUID | None:
    """One attempt at the slot: its lease id, or None while another run has it.
    (Waiting is driftgate's own, so it can say for whom and give up.)"""
    body = {"names": [name], "slots": 1, "mode": "concurrency", "lease_duration": LEASE_SECONDS,
            "holder": holder.model_dump(mode="json")}  # fmt: skip
    with get_client(sync_client=True) as client:
        response = _written(client, "POST", "/v2/concurrency_limits/increment-with-lease", body)
    if response.status_code == 423:  # Locked: taken
        return None
    response.raise_for_status()
    return UUID(response.json()["lease_id"])


def _written(client: SyncPrefectClient, method: str, path: str, body: dict[str, object]) -> httpx.Response:
    """One of the slot's writes (``method`` ``path`` with ``body``), asked again at once after a 503.

    Prefect's server on SQLite answers 503 when a write collided with one of
    its own (SQLITE_BUSY_SNAPSHOT: a run's events were being stored); asked
    again at once, it succeeds. Prefect's client sleeps 2 s or more first,
    which about every other sync paid at its start on the test server (3.2 s
    per sync of the files kind against 1.2 s). So the request is sent
    `QUICK_ATTEMPTS` times without that loop, through the client's connection
    and headers (its private ``_client``: its `send` retries, httpx's own does
    not); a server that stays busy, or any other 5xx or a 403, gets the same
    request through the client's `request`, with its retries and CSRF handling."""
    http = client._client
    for attempt in range(1, QUICK_ATTEMPTS + 1):
        response = httpx.Client.send(http, http.build_request(method, path, json=body))
        if response.status_code != 503:
            break
        time.sleep(QUICK_PAUSE_SECONDS * attempt)
    if response.status_code < 500 and response.status_code != 403:
        return response
    try:
        return client.request(method, path, json=body)
    except httpx.HTTPStatusError as exc:
        return exc.response


def holding_run(candidates: list[OpenRun]) -> tuple[OpenRun, str] | None:
    """Which of ``candidates`` holds the slot (its flow run carries the lease
    label), and since when; None if none of them does."""
    with get_client(sync_client=True) as client:
        for run in candidates:
            if not run.flow_run_id:
                continue
            try:
                labels = client.read_flow_run(UUID(run.flow_run_id)).labels
            except ObjectNotFound:
                continue
            if LEASE_LABEL in labels:
                return run, str(labels.get(SINCE_LABEL, ""))
    return None


def flow_run_ended(flow_run_id: str | None, *, environment: str, holding_the_slot: bool = False) -> bool:
    """Whether the Prefect run of a run of ``environment`` recorded on another
    machine has ended, so its process is gone (that process cannot be asked):
    a flow run this server does not know, or one in a final state that holds
    no sync slot. A run still Running, Paused or waiting is alive, whatever
    the record says.

    A final state alone is not proof: deployments/dead-runs.yaml marks a run
    Crashed when its heartbeats stop, for a dead worker, but also for a live
    run whose heartbeats were lost or late while it renews its lease. So a
    sync that noted a lease has ended only once the environment's slot is
    free: revoked, or run out (`LEASE_SECONDS`, then the server's repossessor);
    or once the caller is ``holding_the_slot`` itself (one slot: no other
    lease is alive). Used by the record (`Store.start_run`, `Store.mark_interrupted`)."""
    if not flow_run_id:
        return True  # no Prefect run to ask (a `driftgate plan`): it ended with its command
    with get_client(sync_client=True) as client:
        try:
            flow_run = client.read_flow_run(UUID(flow_run_id))
        except ObjectNotFound:
            return True
    if flow_run.state is None or not flow_run.state.is_final():
        return False
    return LEASE_LABEL not in flow_run.labels or holding_the_slot or not slot_taken(environment)


def slot_taken(environment: str) -> bool:
    """Whether some run holds the environment's sync slot now."""
    with get_client(sync_client=True) as client:
        try:
            limit = client.read_global_concurrency_limit_by_name(limit_name(environment))
        except ObjectNotFound:
            return False
    return limit.active_slots >= limit.limit


def describe_holder(environment: str, candidates: list[OpenRun], *, exclude: str | None = None) -> str:
    """'the sync of ENV started by alice (cli) at ..., holding the slot since ...: flow run ID'."""
    candidates = [r for r in candidates if r.flow_run_id != exclude]
    found = holding_run(candidates)
    if found is None:
        return (
            f"the sync slot of {environment}, held by a run this record does not show "
            f"(it may have died before noting its lease: a server with its services running "
            f"frees the slot within {LEASE_SECONDS} s of that)"
        )
    run, since = found
    return (
        f"the {run.purpose.value} of {environment} started by {run.requested_by} ({run.trigger}) at "
        f"{_clock(run.started_at)}, holding the slot since {since or '?'}: flow run {run.flow_run_id}"
        + (f" {run.flow_run_url}" if run.flow_run_url else "")
    )


def sync_in_progress(environment: str, *, since: datetime) -> str | None:
    """What a drift check started at ``since`` must stay clear of: a sync of
    ``environment`` holding the slot now, or one the record shows running, or
    started or ended since then (described); None if there is none."""
    runs = _store().runs_in_progress(environment, since=since)
    if slot_taken(environment):
        return f"a sync of {environment} is running ({describe_holder(environment, [r for r in runs if not r.ended])})"
    if runs:
        run = runs[0]
        when = "ran during the check" if run.ended else "is running"
        return (
            f"a {run.purpose.value} of {environment} {when} (started by {run.requested_by} ({run.trigger}) at "
            f"{_clock(run.started_at)}: flow run {run.flow_run_id})"
        )
    return None


def free_dead_runs(record_ids: list[int], *, noticed_by: RunStart) -> None:
    """For runs the record has just marked interrupted (``record_ids``: their
    process is gone): revoke the sync slot lease each noted, and mark its flow
    run Crashed, so neither the slot nor a "Running" run outlives it."""
    if not record_ids:
        return
    store = _store()
    dead = [r.flow_run_id for r in (store.get(str(i)) for i in record_ids) if r is not None and r.flow_run_id]
    with get_client(sync_client=True) as client:
        for flow_run_id in dead:
            try:
                flow_run = client.read_flow_run(UUID(flow_run_id))
            except ObjectNotFound:
                continue
            lease = flow_run.labels.get(LEASE_LABEL)
            if lease:
                client.release_concurrency_slots_with_lease(UUID(str(lease)))
            if flow_run.state is None or not flow_run.state.is_final():
                message = f"its process died; noticed by flow run {noticed_by.flow_run_id}"
                client.set_flow_run_state(flow_run.id, Crashed(message=message), force=True)


def _store() -> Store:
    from driftgate.blocks import record_database_url

    return Store(record_database_url())


def _ensure_limit(name: str) -> None:
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
            except ObjectAlreadyExists:  # another run created it first
                pass


def _note_lease(flow_run_id: str, lease_id: UUID) -> None:
    """Put the lease just taken on the holder's flow run, where the next run finds it."""
    labels = {LEASE_LABEL: str(lease_id), SINCE_LABEL: _clock(datetime.now(timezone.utc))}
    with get_client(sync_client=True) as client:
        _written(client, "PATCH", f"/flow_runs/{flow_run_id}/labels", labels).raise_for_status()


def _clock(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"

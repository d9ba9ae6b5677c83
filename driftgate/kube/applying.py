"""Apply a plan to a cluster: creates and updates in waves, then prunes, then health.

`apply()` sends the plan's creates and updates wave by wave
(driftgate/kube/waves.py), waits for new CRDs to be Established before their
custom resources, deletes the plan's prunes, writes the prune inventory, and
waits for the applied workloads' health until the environment's timeout.
Results are per object. Called through `driftgate.targets`.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any

from driftgate.config import Environment
from driftgate.kinds import builtin, group_of, is_builtin
from driftgate.kube.access import target_of
from driftgate.kube.health import HEALTH_CHECKED, wait_for_health
from driftgate.kube.cache import ComparisonCache
from driftgate.kube.planning import UNCHANGED, comparison_key, crd_kind, in_served_scope
from driftgate.kube.prune import prune_one, write_inventory
from driftgate.kube.waves import in_apply_order, wave_of
from driftgate.kubeclient import Cluster, KubeError, Resource
from driftgate.manifests import load_manifests
from driftgate.models import Action, ApplyResult, Bundle, HostResult, Manifest, Plan, TaskResult
from driftgate.secrets import Masker

log = logging.getLogger(__name__)


def apply(env: Environment, bundle: Bundle, cluster: Cluster, plan: Plan, *, masker: Masker | None = None,
          identities: tuple[str, ...] = ()) -> ApplyResult:
    """Apply the plan's changes in waves, prune, then wait for health.

    An object the server refuses (a conflict, an invalid field) fails alone and
    stops later waves. A server that fails (a 5xx, a 429, a timeout, no
    connection) stops the whole apply at that request: nothing after it is
    sent, and apply is never retried (a new run re-plans), so a failing server
    costs one request here, not one per object."""
    masker = masker or Masker()
    target = target_of(env)
    manifests = load_manifests(bundle, env=env, identities=identities)
    manifests = in_served_scope(env, manifests, {(m.api_version, m.kind): cluster.resource(m.api_version, m.kind) for m in manifests})
    to_apply = {(group_of(c.api_version), c.kind, c.namespace, c.name) for c in plan.changes if c.action != Action.DELETE}
    results: dict[str, list[TaskResult]] = defaultdict(list)
    applied: list[tuple[Manifest, Resource]] = []
    live: dict[str, dict[str, Any] | None] = {}  # each applied object as the server answered (then as health last saw it)
    stopped = ""  # why later objects are not applied
    server_failed = False  # then polling it for health until health_timeout would tell nothing
    by_wave: dict[int, list[Manifest]] = defaultdict(list)
    for m in in_apply_order(manifests):
        if m.identity in to_apply:
            by_wave[wave_of(m)].append(m)
    for wave in sorted(by_wave):
        for m in by_wave[wave]:
            if stopped:
                results[m.display].append(TaskResult(host=m.display, task="apply", status="skipped",
                                                     message=f"not applied: {stopped}"))
                continue
            try:
                result, resource, live[m.display] = _apply_one(env, cluster, m, masker)
            except KubeError as exc:  # the server failed, not this object
                result, resource = TaskResult(host=m.display, task="apply", status="failed", message=masker(str(exc))), None
                stopped, server_failed = f"the API server failed at {m.display}", True
            results[m.display].append(result)
            if resource is not None:
                applied.append((m, resource))
        if not stopped and any(results[m.display][-1].status == "failed" for m in by_wave[wave]):
            stopped = "an earlier wave failed"
        if not stopped:
            try:
                _wait_for_crds(env, cluster, [m for m in by_wave[wave] if is_builtin(m.api_version, m.kind, "CustomResourceDefinition")])
            except KubeError as exc:
                stopped, server_failed = f"the API server failed while waiting for CRDs: {masker(str(exc))}", True

    if not stopped:
        for change in plan.changes:
            if change.action == Action.DELETE and not stopped:
                try:
                    results[change.target].append(prune_one(cluster, change, env, masker))
                except KubeError as exc:
                    results[change.target].append(TaskResult(host=change.target, task="prune", status="failed",
                                                             message=masker(str(exc))))
                    stopped, server_failed = "the API server failed", True
        if target.prune and not stopped:
            try:
                unpruned = [c for c in plan.changes if c.action == Action.DELETE and results[c.target][-1].status == "failed"]
                write_inventory(env, cluster, manifests, unpruned)
            except KubeError as exc:
                log.warning("environment %s: could not write the prune inventory: %s", env.name, exc)
    if server_failed:
        for m, _resource in applied:
            if builtin(m.api_version, m.kind) in HEALTH_CHECKED:
                results[m.display].append(TaskResult(host=m.display, task="health", status="skipped",
                                                     message="not checked: the API server failed"))
    else:
        for display, health in wait_for_health(env, cluster, applied, seen=live).items():
            results[display].append(health)
    _remember_applied(env, [m for m, _ in applied], live)
    return ApplyResult(hosts=tuple(_host_result(display, tasks) for display, tasks in results.items()))


def _apply_one(env: Environment, cluster: Cluster, m: Manifest,
               masker: Masker) -> tuple[TaskResult, Resource | None, dict[str, Any] | None]:
    """Apply one object. A refusal is this object's failed result; any other
    `KubeError` (the server failed) is raised for `apply` to stop at."""
    resource = cluster.resource(m.api_version, m.kind) or cluster.resource(m.api_version, m.kind, refresh=True)
    if resource is None:
        return TaskResult(host=m.display, task="apply", status="failed",
                          message=f"the cluster does not serve {m.kind} in {m.api_version}"), None, None
    try:
        answer = cluster.apply(resource, m.object, dry_run=False, force=target_of(env).force_conflicts)
    except KubeError as exc:
        if not exc.refusal:
            raise
        if exc.status == 409:
            message = "conflict with another field manager: " + ("; ".join(exc.conflicts()) or str(exc))
            message += " (set target.force_conflicts to take these fields)"
        else:
            message = str(exc)
        return TaskResult(host=m.display, task="apply", status="failed", message=masker(message)), None, None
    return TaskResult(host=m.display, task="apply", status="changed"), resource, answer


def _remember_applied(env: Environment, applied: list[Manifest], live: dict[str, dict[str, Any] | None]) -> None:
    """Fill the comparison cache from the apply's own answers: each object just
    applied is as Git wants it at the resourceVersion the server returned (or
    health last saw), so the first plan after a sync needs its LISTs only, no
    dry-run. A later change to the object changes its resourceVersion: a miss, never a wrong answer."""
    cache = ComparisonCache(env)
    for m in applied:
        if (obj := live.get(m.display)) is not None:
            cache.put(comparison_key(env, cache, m, obj), dict(UNCHANGED))
    cache.save(keep_loaded=True)


def _wait_for_crds(env: Environment, cluster: Cluster, crds: list[Manifest]) -> None:
    """Custom resources of a CRD can be applied only once it is Established."""
    if not crds:
        return
    resource = cluster.resource("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    deadline = time.monotonic() + target_of(env).health_timeout.total_seconds()
    for crd in crds:
        while time.monotonic() < deadline:
            live = cluster.get(resource, "", crd.name) if resource else None
            conditions = ((live or {}).get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
                break
            time.sleep(0.2)
        api_version, kind = crd_kind(crd.object)
        cluster.resource(api_version, kind, refresh=True)


def _host_result(display: str, tasks: list[TaskResult]) -> HostResult:
    return HostResult(
        host=display,
        ok=sum(t.status == "ok" for t in tasks),
        changed=sum(t.status == "changed" for t in tasks),
        failed=sum(t.status == "failed" for t in tasks),
        skipped=sum(t.status == "skipped" for t in tasks),
        tasks=tuple(tasks),
    )

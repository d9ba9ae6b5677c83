"""Health of applied workloads, after Argo CD's health assessment.

`health_of()` judges one live object (Deployments, StatefulSets, DaemonSets,
Jobs, PersistentVolumeClaims; any other kind is healthy once applied).
`wait_for_health()` polls the applied ones until each is healthy or degraded,
or until the environment's ``health_timeout``. Called by `apply` after the
last wave and the prunes.
"""

from __future__ import annotations

import logging
import time
from enum import IntEnum
from typing import Any

from driftgate.config import Environment
from driftgate.kinds import builtin
from driftgate.kube.access import target_of
from driftgate.kubeclient import Cluster, KubeError, Resource
from driftgate.manifests import ENVIRONMENT_LABEL, MANAGED_BY
from driftgate.models import Manifest, TaskResult

log = logging.getLogger(__name__)


class Health(IntEnum):
    """Ordered: the worst of several is the max."""

    HEALTHY = 0
    PROGRESSING = 1
    DEGRADED = 2
    MISSING = 3


def health_of(obj: dict[str, Any] | None) -> tuple[Health, str]:
    """One small check per kind, after Argo CD's health assessment."""
    if obj is None:
        return Health.MISSING, "not found"
    # By group and kind: a custom resource named Deployment is no Deployment.
    kind = builtin(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    generation = obj.get("metadata", {}).get("generation")
    if kind in ("Deployment", "StatefulSet"):
        replicas = spec.get("replicas", 1)
        if generation is not None and status.get("observedGeneration", 0) < generation:
            return Health.PROGRESSING, "waiting for the controller"
        for c in status.get("conditions") or []:
            if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded":
                return Health.DEGRADED, c.get("message", "progress deadline exceeded")
        ready = status.get("availableReplicas" if kind == "Deployment" else "readyReplicas", 0) or 0
        updated = status.get("updatedReplicas", 0) or 0
        if ready >= replicas and updated >= replicas:
            return Health.HEALTHY, f"{ready}/{replicas} ready"
        return Health.PROGRESSING, f"{ready}/{replicas} ready, {updated} updated"
    if kind == "DaemonSet":
        desired = status.get("desiredNumberScheduled", 0)
        ready = status.get("numberReady", 0)
        if generation is not None and status.get("observedGeneration", 0) < generation:
            return Health.PROGRESSING, "waiting for the controller"
        return (Health.HEALTHY if ready >= desired else Health.PROGRESSING), f"{ready}/{desired} ready"
    if kind == "Job":
        for c in status.get("conditions") or []:
            if c.get("type") == "Failed" and c.get("status") == "True":
                return Health.DEGRADED, c.get("message") or "job failed"
            if c.get("type") == "Complete" and c.get("status") == "True":
                return Health.HEALTHY, "complete"
        return Health.PROGRESSING, "running"
    if kind == "PersistentVolumeClaim":
        phase = status.get("phase", "Pending")
        return (Health.HEALTHY if phase == "Bound" else Health.PROGRESSING), phase
    return Health.HEALTHY, ""


HEALTH_CHECKED = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job", "PersistentVolumeClaim"})


def wait_for_health(env: Environment, cluster: Cluster, applied: list[tuple[Manifest, Resource]],
                    seen: dict[str, dict[str, Any] | None] | None = None) -> dict[str, TaskResult]:
    """Poll the applied workloads until healthy or the environment's timeout:
    one LIST per kind per round (by this environment's label), not a GET per object.
    ``seen`` (by display) gets each workload as the last round found it."""
    pending = {m.display: (m, r) for m, r in applied if builtin(m.api_version, m.kind) in HEALTH_CHECKED}
    results: dict[str, TaskResult] = {}
    deadline = time.monotonic() + target_of(env).health_timeout.total_seconds()
    last: dict[str, tuple[Health, str]] = {}
    selector = f"{MANAGED_BY}=driftgate,{ENVIRONMENT_LABEL}={env.name}"
    while pending:
        live: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        for resource in {r for _, r in pending.values()}:
            try:
                for obj in cluster.list(resource, label_selector=selector):
                    meta = obj.get("metadata", {})
                    obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind  # list items carry neither
                    live[(resource.api_version, resource.kind, meta.get("namespace", ""), meta["name"])] = obj
            except KubeError as exc:
                log.info("health check of %s: %s", resource.kind, exc)
        for display, (m, _resource) in list(pending.items()):
            found = live.get((m.api_version, m.kind, m.namespace, m.name))
            if seen is not None and found is not None:
                seen[display] = found
            state = last[display] = health_of(found)
            if state[0] in (Health.HEALTHY, Health.DEGRADED):
                status = "ok" if state[0] == Health.HEALTHY else "failed"
                results[display] = TaskResult(host=display, task="health", status=status,
                                              message=f"{state[0].name.lower()}: {state[1]}")
                del pending[display]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    for display in pending:
        health, detail = last.get(display, (Health.MISSING, "never seen"))
        results[display] = TaskResult(
            host=display, task="health", status="failed",
            message=f"{health.name.lower()} after {target_of(env).health_timeout}: {detail}",
        )  # fmt: skip
    return results

"""A simulated kube-controller-manager: status for workloads, Jobs, PVCs, namespaces, CRDs.

After every stored write :meth:`Controller.observe` notes the object; :meth:`Controller.tick`
(run every few milliseconds by the server's event loop, or by hand from tests) then
writes the status a real controller would:

* Deployment / StatefulSet / DaemonSet: ``observedGeneration`` at once, with no ready
  replicas; all replicas ready after ``ready_delay`` seconds — or never, when the
  server-wide ``never_ready`` is set or the object carries the annotation
  ``kubeapi.test/never-ready: "true"``. A never-ready Deployment reports
  ``Progressing=False/ProgressDeadlineExceeded`` once ``spec.progressDeadlineSeconds``
  has passed. ``kubeapi.test/ready-after: "<seconds>"`` overrides the delay per object.
* Job: ``active: 1``, then ``succeeded`` with ``Complete`` after ``job_delay``
  (``kubeapi.test/fail: "true"`` makes it ``Failed`` instead; never-ready keeps it running).
* PersistentVolumeClaim: ``Bound`` with a ``volumeName`` and capacity.
* Namespace: the ``default`` ServiceAccount and ``kube-root-ca.crt`` ConfigMap.
* CustomResourceDefinition: ``NamesAccepted`` and ``Established`` conditions.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cluster import Cluster
    from .resources import ResourceType

NEVER_READY = "kubeapi.test/never-ready"
READY_AFTER = "kubeapi.test/ready-after"
FAIL = "kubeapi.test/fail"
_CONTROLLED = {"Deployment", "StatefulSet", "DaemonSet", "Job", "PersistentVolumeClaim",
               "Namespace", "CustomResourceDefinition"}
_FAKE_CA = "-----BEGIN CERTIFICATE-----\nMIIBkubeapidouble\n-----END CERTIFICATE-----\n"


@dataclass
class ControllerSettings:
    """Server-wide controller behaviour (mutable at run time)."""

    ready_delay: float = 0.2
    job_delay: float = 0.3
    never_ready: bool = False
    enabled: bool = True


def _ts(at: float | None = None) -> str:
    return _dt.datetime.fromtimestamp(at if at is not None else time.time(),
                                      _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cond(type_: str, status: str, reason: str, message: str, at: str,
          update_time: bool = False) -> dict[str, Any]:
    c = {"type": type_, "status": status}
    if update_time:
        c["lastUpdateTime"] = at
    c.update({"lastTransitionTime": at, "reason": reason, "message": message})
    return c


def _hash(obj: dict[str, Any]) -> str:
    return hashlib.sha256(repr((obj.get("spec") or {}).get("template")).encode()).hexdigest()[:10]


class Controller:
    """Writes ``status`` of observed objects as time passes."""

    def __init__(self, cluster: "Cluster", settings: ControllerSettings) -> None:
        self.cluster = cluster
        self.settings = settings
        self._lock = threading.Lock()
        # (group, plural, namespace, name) -> (uid, generation, observed at)
        self._pending: dict[tuple[str, str, str, str], tuple[str, Any, float]] = {}

    def reset(self) -> None:
        with self._lock:
            self._pending.clear()

    @staticmethod
    def _id(rt: "ResourceType", obj: dict[str, Any]) -> tuple[str, str, str, str]:
        m = obj["metadata"]
        return (rt.group, rt.plural, m.get("namespace", ""), m["name"])

    def observe(self, rt: "ResourceType", obj: dict[str, Any]) -> None:
        if rt.custom or rt.kind not in _CONTROLLED:
            return
        m = obj["metadata"]
        marker = m.get("generation", m.get("uid"))
        key = self._id(rt, obj)
        with self._lock:
            prev = self._pending.get(key)
            if prev and prev[0] == m["uid"] and prev[1] == marker:
                return
            self._pending[key] = (m["uid"], marker, time.monotonic())

    def forget(self, rt: "ResourceType", obj: dict[str, Any]) -> None:
        with self._lock:
            self._pending.pop(self._id(rt, obj), None)

    # -- the loop --------------------------------------------------------------------
    def tick(self) -> None:
        """Advance every pending object; called periodically by the server."""
        if not self.settings.enabled:
            return
        with self._lock:
            items = list(self._pending.items())
        for key, (uid, marker, since) in items:
            rt = self.cluster.registry.lookup(key[0], "v1", key[1])
            obj = self.cluster.store.get((key[0], key[1]), key[2], key[3]) if rt else None
            if rt is None or obj is None or obj["metadata"]["uid"] != uid:
                self._done(key, uid, marker)
                continue
            elapsed = time.monotonic() - since
            finished = getattr(self, "_" + rt.kind.lower())(rt, obj, elapsed)
            if finished:
                self._done(key, uid, marker)

    def _done(self, key, uid, marker) -> None:
        with self._lock:
            cur = self._pending.get(key)
            if cur and cur[0] == uid and cur[1] == marker:
                del self._pending[key]

    def _delay(self, obj: dict[str, Any], default: float) -> float | None:
        """Seconds until ready, ``None`` for never."""
        ann = obj["metadata"].get("annotations") or {}
        if self.settings.never_ready or str(ann.get(NEVER_READY, "")).lower() == "true":
            return None
        try:
            return float(ann[READY_AFTER]) if READY_AFTER in ann else default
        except ValueError:
            return default

    # -- per kind: each returns True when the object needs no more work ---------------
    def _deployment(self, rt, obj, elapsed) -> bool:
        spec, gen, name = obj.get("spec") or {}, obj["metadata"].get("generation"), obj["metadata"]["name"]
        replicas = spec.get("replicas", 1)
        delay = self._delay(obj, self.settings.ready_delay)
        ready = replicas == 0 or (delay is not None and elapsed >= delay)
        old = obj.get("status") or {}
        now = _ts()
        rs = f"{name}-{_hash(obj)}"
        prev_conds = {c["type"]: c for c in old.get("conditions") or []}

        def cond(t, s, reason, msg):
            p = prev_conds.get(t)
            if p and p["status"] == s and p["reason"] == reason:
                return p
            at = p["lastTransitionTime"] if p and p["status"] == s else now
            c = _cond(t, s, reason, msg, at, update_time=True)
            c["lastUpdateTime"] = now
            return c

        status: dict[str, Any] = {"observedGeneration": gen}
        if replicas:
            status["replicas"] = replicas
            status["updatedReplicas"] = replicas
        if ready:
            if replicas:
                status["readyReplicas"] = replicas
                status["availableReplicas"] = replicas
            conds = [cond("Available", "True", "MinimumReplicasAvailable",
                          "Deployment has minimum availability."),
                     cond("Progressing", "True", "NewReplicaSetAvailable",
                          f'ReplicaSet "{rs}" has successfully progressed.')]
        else:
            status["unavailableReplicas"] = replicas
            deadline = spec.get("progressDeadlineSeconds", 600)
            if elapsed >= deadline:
                progressing = cond("Progressing", "False", "ProgressDeadlineExceeded",
                                   f'ReplicaSet "{rs}" has timed out progressing.')
            else:
                progressing = cond("Progressing", "True", "ReplicaSetUpdated",
                                   f'ReplicaSet "{rs}" is progressing.')
            conds = [cond("Available", "False", "MinimumReplicasUnavailable",
                          "Deployment does not have minimum availability."), progressing]
        status["conditions"] = conds
        self.cluster.write_status(rt, obj, status)
        # Done when ready, or when a never-ready rollout has reported its deadline.
        return ready or (delay is None and elapsed >= spec.get("progressDeadlineSeconds", 600))

    def _statefulset(self, rt, obj, elapsed) -> bool:
        spec, gen, name = obj.get("spec") or {}, obj["metadata"].get("generation"), obj["metadata"]["name"]
        replicas = spec.get("replicas", 1)
        delay = self._delay(obj, self.settings.ready_delay)
        ready = replicas == 0 or (delay is not None and elapsed >= delay)
        rev = f"{name}-{_hash(obj)}"
        old = obj.get("status") or {}
        status: dict[str, Any] = {"observedGeneration": gen, "replicas": replicas,
                                  "updateRevision": rev, "collisionCount": 0,
                                  "availableReplicas": replicas if ready else 0}
        if ready:
            status.update(readyReplicas=replicas, currentReplicas=replicas,
                          updatedReplicas=replicas, currentRevision=rev)
        else:
            status["currentRevision"] = old.get("currentRevision", rev)
            status["currentReplicas"] = old.get("currentReplicas", replicas)
        status = {k: v for k, v in status.items() if v != 0 or k in ("availableReplicas",
                                                                      "collisionCount", "replicas")}
        self.cluster.write_status(rt, obj, status)
        return ready

    def _daemonset(self, rt, obj, elapsed) -> bool:
        gen = obj["metadata"].get("generation")
        delay = self._delay(obj, self.settings.ready_delay)
        ready = delay is not None and elapsed >= delay
        status = {"currentNumberScheduled": 1, "desiredNumberScheduled": 1,
                  "numberMisscheduled": 0, "numberReady": 1 if ready else 0,
                  "observedGeneration": gen, "updatedNumberScheduled": 1}
        if ready:
            status["numberAvailable"] = 1
        else:
            status["numberUnavailable"] = 1
        self.cluster.write_status(rt, obj, status)
        return ready

    def _job(self, rt, obj, elapsed) -> bool:
        old = obj.get("status") or {}
        start = old.get("startTime") or _ts()
        delay = self._delay(obj, self.settings.job_delay)
        ann = obj["metadata"].get("annotations") or {}
        if (obj.get("spec") or {}).get("suspend"):
            return False
        if delay is None or elapsed < delay:
            status = {"startTime": start, "active": 1, "ready": 0, "terminating": 0,
                      "uncountedTerminatedPods": {}}
            self.cluster.write_status(rt, obj, status)
            return False
        now = _ts()
        if str(ann.get(FAIL, "")).lower() == "true":
            status = {"startTime": start, "failed": 1, "ready": 0, "terminating": 0,
                      "uncountedTerminatedPods": {},
                      "conditions": [_cond("FailureTarget", "True", "BackoffLimitExceeded",
                                           "Job has reached the specified backoff limit", now),
                                     _cond("Failed", "True", "BackoffLimitExceeded",
                                           "Job has reached the specified backoff limit", now)]}
        else:
            n = (obj.get("spec") or {}).get("completions", 1) or 1
            status = {"startTime": start, "completionTime": now, "succeeded": n, "ready": 0,
                      "terminating": 0, "uncountedTerminatedPods": {},
                      "conditions": [_cond("SuccessCriteriaMet", "True", "CompletionsReached",
                                           "Reached expected number of succeeded pods", now),
                                     _cond("Complete", "True", "CompletionsReached",
                                           "Reached expected number of succeeded pods", now)]}
        for c in status["conditions"]:
            c["lastProbeTime"] = now
        self.cluster.write_status(rt, obj, status)
        return True

    def _persistentvolumeclaim(self, rt, obj, elapsed) -> bool:
        spec = obj.get("spec") or {}
        if (obj.get("status") or {}).get("phase") == "Bound":
            return True
        if not spec.get("volumeName"):
            obj = dict(obj)
            obj["spec"] = dict(spec, volumeName=f"pvc-{obj['metadata']['uid']}")
            meta = dict(obj["metadata"])
            meta["annotations"] = dict(meta.get("annotations") or {},
                                       **{"pv.kubernetes.io/bind-completed": "yes",
                                          "pv.kubernetes.io/bound-by-controller": "yes"})
            obj["metadata"] = meta
            self.cluster.controller_update(rt, obj)
        storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        self.cluster.write_status(rt, obj, {"phase": "Bound",
                                            "accessModes": spec.get("accessModes", []),
                                            "capacity": {"storage": storage}})
        return True

    def _namespace(self, rt, obj, elapsed) -> bool:
        if not self.cluster.namespace_defaults:
            return True
        from .cluster import Options
        ns = obj["metadata"]["name"]
        reg = self.cluster.registry
        opts = Options(field_manager="kube-controller-manager")
        for rt2, body in ((reg.lookup("", "v1", "serviceaccounts"),
                           {"apiVersion": "v1", "kind": "ServiceAccount",
                            "metadata": {"name": "default"}}),
                          (reg.lookup("", "v1", "configmaps"),
                           {"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": "kube-root-ca.crt",
                                         "annotations": {"kubernetes.io/description":
                                                         "Contains a CA bundle that can be used "
                                                         "to verify the kube-apiserver when "
                                                         "using internal endpoints such as the "
                                                         "internal service IP or "
                                                         "kubernetes.default.svc. No other "
                                                         "usage is guaranteed across "
                                                         "distributions of Kubernetes "
                                                         "clusters."}},
                            "data": {"ca.crt": _FAKE_CA}})):
            if self.cluster.store.get(rt2.key, ns, body["metadata"]["name"]) is None:
                try:
                    self.cluster.create(rt2, ns, body, opts)
                except Exception:  # the namespace went away meanwhile
                    return True
        return True

    def _customresourcedefinition(self, rt, obj, elapsed) -> bool:
        spec = obj.get("spec") or {}
        names = dict(spec.get("names") or {})
        now = _ts()
        storage = [v["name"] for v in spec.get("versions") or [] if v.get("storage")]
        old = obj.get("status") or {}
        status = {"conditions": [
            _cond("NamesAccepted", "True", "NoConflicts", "no conflicts found", now),
            _cond("Established", "True", "InitialNamesAccepted",
                  "the initial names have been accepted", now)],
            "acceptedNames": names,
            "storedVersions": sorted(set(old.get("storedVersions") or []) | set(storage))}
        if old.get("conditions"):
            prev = {c["type"]: c for c in old["conditions"]}
            status["conditions"] = [prev.get(c["type"], c) for c in status["conditions"]]
        self.cluster.write_status(rt, obj, status)
        return True

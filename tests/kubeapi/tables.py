"""Server-side printing: ``meta.k8s.io/v1 Table`` responses for ``kubectl get``.

kubectl asks for ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io,...``; the real
server answers with the columns its printers define. This module has the default
columns of the common kinds (and a CRD's ``additionalPrinterColumns``); others get
``Name`` and ``Age``, like a custom resource without printer columns.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Callable

from .resources import ResourceType

Row = Callable[[dict[str, Any]], list[Any]]


def human_duration(seconds: float) -> str:
    """``k8s.io/apimachinery/pkg/util/duration.HumanDuration``."""
    s = int(seconds)
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = s // 3600
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    if h < 24 * 8:
        return f"{h // 24}d{h % 24}h" if h % 24 else f"{h // 24}d"
    if h < 24 * 365 * 2:
        return f"{h // 24}d"
    return f"{h // (24 * 365)}y{(h // 24) % 365}d"


def _age(obj: dict[str, Any]) -> str:
    ts = obj["metadata"].get("creationTimestamp")
    if not ts:
        return "<unknown>"
    created = _dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)
    return human_duration((_dt.datetime.now(_dt.timezone.utc) - created).total_seconds())


def _spec(o):
    return o.get("spec") or {}


def _status(o):
    return o.get("status") or {}


def _ports(o):
    out = []
    for p in _spec(o).get("ports") or []:
        text = f"{p.get('port')}"
        if p.get("nodePort"):
            text += f":{p['nodePort']}"
        out.append(f"{text}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def _job_status(o):
    conds = {c.get("type"): c.get("status") for c in _status(o).get("conditions") or []}
    if conds.get("Complete") == "True":
        return "Complete"
    if conds.get("Failed") == "True":
        return "Failed"
    return "Running"


# kind -> [(column name, type, priority, cell function)]
_COLUMNS: dict[str, list[tuple[str, str, int, Row]]] = {
    "Deployment": [
        ("Ready", "string", 0, lambda o: f"{_status(o).get('readyReplicas', 0)}/"
                                         f"{_spec(o).get('replicas', 0)}"),
        ("Up-to-date", "integer", 0, lambda o: _status(o).get("updatedReplicas", 0)),
        ("Available", "integer", 0, lambda o: _status(o).get("availableReplicas", 0))],
    "StatefulSet": [
        ("Ready", "string", 0, lambda o: f"{_status(o).get('readyReplicas', 0)}/"
                                         f"{_spec(o).get('replicas', 0)}")],
    "DaemonSet": [
        ("Desired", "integer", 0, lambda o: _status(o).get("desiredNumberScheduled", 0)),
        ("Current", "integer", 0, lambda o: _status(o).get("currentNumberScheduled", 0)),
        ("Ready", "integer", 0, lambda o: _status(o).get("numberReady", 0)),
        ("Up-to-date", "integer", 0, lambda o: _status(o).get("updatedNumberScheduled", 0)),
        ("Available", "integer", 0, lambda o: _status(o).get("numberAvailable", 0))],
    "Job": [
        ("Status", "string", 0, _job_status),
        ("Completions", "string", 0, lambda o: f"{_status(o).get('succeeded', 0)}/"
                                               f"{_spec(o).get('completions', 1)}")],
    "ConfigMap": [("Data", "integer", 0, lambda o: len(o.get("data") or {}) +
                   len(o.get("binaryData") or {}))],
    "Secret": [("Type", "string", 0, lambda o: o.get("type", "")),
               ("Data", "integer", 0, lambda o: len(o.get("data") or {}))],
    "Service": [
        ("Type", "string", 0, lambda o: _spec(o).get("type", "ClusterIP")),
        ("Cluster-IP", "string", 0, lambda o: _spec(o).get("clusterIP", "<none>")),
        ("External-IP", "string", 0, lambda o: ",".join(_spec(o).get("externalIPs") or [])
         or "<none>"),
        ("Port(s)", "string", 0, _ports)],
    "Namespace": [("Status", "string", 0, lambda o: _status(o).get("phase", "Active"))],
    "PersistentVolumeClaim": [
        ("Status", "string", 0, lambda o: _status(o).get("phase", "Pending")),
        ("Volume", "string", 0, lambda o: _spec(o).get("volumeName", "")),
        ("Capacity", "string", 0, lambda o: (_status(o).get("capacity") or {}).get("storage", "")),
        ("Access Modes", "string", 0, lambda o: ",".join(
            {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX",
             "ReadWriteOncePod": "RWOP"}.get(m, m) for m in _status(o).get("accessModes") or [])),
        ("StorageClass", "string", 0, lambda o: _spec(o).get("storageClassName", ""))],
    "CustomResourceDefinition": [("Created At", "date", 0,
                                  lambda o: o["metadata"].get("creationTimestamp", ""))],
}


def _json_path(obj: Any, path: str) -> Any:
    cur = obj
    for part in [p for p in path.strip().lstrip(".").split(".") if p]:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _crd_columns(printer_columns: list[dict[str, Any]]) -> list[tuple[str, str, int, Row]]:
    cols = []
    for c in printer_columns:
        path = c.get("jsonPath", "")
        cols.append((c.get("name", ""), c.get("type", "string"), c.get("priority", 0),
                     lambda o, p=path: _json_path(o, p)))
    return cols


def wants_table(accept: str) -> bool:
    return "as=Table" in accept and "g=meta.k8s.io" in accept


def table(rt: ResourceType, objects: list[dict[str, Any]], *, resource_version: str = "",
          include: str = "Metadata", printer_columns: list[dict[str, Any]] | None = None,
          list_meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``Table`` for ``objects`` (``include``: ``None``, ``Metadata`` or ``Object``)."""
    extra = _crd_columns(printer_columns) if printer_columns else _COLUMNS.get(
        rt.kind if not rt.custom else "", [])
    show_age = rt.kind != "CustomResourceDefinition" and (
        not printer_columns or not any(c.get("name") == "Age" for c in printer_columns))
    defs = [{"name": "Name", "type": "string", "format": "name", "priority": 0,
             "description": "Name must be unique within a namespace."}]
    defs += [{"name": n, "type": t if t != "date" else "string", "format": "", "priority": p,
              "description": ""} for n, t, p, _ in extra]
    if show_age:
        defs.append({"name": "Age", "type": "string", "format": "", "priority": 0,
                     "description": "CreationTimestamp is a timestamp representing the server "
                                    "time when this object was created."})
    rows = []
    for obj in objects:
        cells = [obj["metadata"]["name"]] + [fn(obj) for _, _, _, fn in extra]
        if show_age:
            cells.append(_age(obj))
        row: dict[str, Any] = {"cells": cells}
        if include == "Object":
            row["object"] = {"apiVersion": rt.api_version, "kind": rt.kind,
                             **{k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}}
        elif include != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": obj["metadata"]}
        rows.append(row)
    meta = dict(list_meta or {})
    if resource_version:
        meta["resourceVersion"] = resource_version
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
            "columnDefinitions": defs, "rows": rows}

"""Defaulting and validation of objects, like the real API server's, per kind.

The server calls :func:`apply_defaults` on every object it is about to store (or
return for a dry run), then :func:`validate` with the previous version (``old``)
for immutability checks. Defaulted fields are what makes server-side diffs
realistic: a Deployment read back has ``strategy``, ``revisionHistoryLimit``,
``terminationMessagePath`` ... that its manifest never had.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from typing import Any, Callable

from .errors import bad_request, invalid
from .resources import ResourceType

Causes = list[tuple[str, str, str]]

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
# Kinds whose names must be DNS-1123 labels rather than subdomains.
_LABEL_NAMED = {"Namespace", "Service"}


class Allocator:
    """Hands out Service cluster IPs (from 10.96.0.0/12) and node ports."""

    def __init__(self) -> None:
        self._net = ipaddress.ip_network("10.96.0.0/12")
        self._next_ip = 10
        self._next_port = 30000
        self.used_ips: set[str] = {"10.96.0.1"}

    def cluster_ip(self) -> str:
        while True:
            self._next_ip += 1
            ip = str(self._net.network_address + self._next_ip)
            if ip not in self.used_ips:
                self.used_ips.add(ip)
                return ip

    def node_port(self) -> int:
        self._next_port += 1
        return self._next_port


# -- defaulting --------------------------------------------------------------------------

def _image_pull_policy(image: str) -> str:
    ref = image.split("@")[0]
    tag = ref.rsplit(":", 1)[1] if ":" in ref.rsplit("/", 1)[-1] else ""
    if "@" in image:
        return "IfNotPresent"
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _default_container(c: dict[str, Any]) -> None:
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    if "image" in c:
        c.setdefault("imagePullPolicy", _image_pull_policy(str(c["image"])))
    c.setdefault("resources", {})
    for p in c.get("ports") or []:
        p.setdefault("protocol", "TCP")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if isinstance(c.get(probe), dict):
            pr = c[probe]
            for k, v in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1),
                         ("failureThreshold", 3)):
                pr.setdefault(k, v)
            if isinstance(pr.get("httpGet"), dict):
                pr["httpGet"].setdefault("path", "/")
                pr["httpGet"].setdefault("scheme", "HTTP")
    for env in c.get("env") or []:
        ref = (env.get("valueFrom") or {}).get("fieldRef")
        if isinstance(ref, dict):
            ref.setdefault("apiVersion", "v1")


def default_pod_spec(spec: dict[str, Any]) -> None:
    """Defaults of a PodSpec (inside templates and Pods)."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    for key in ("containers", "initContainers"):
        for c in spec.get(key) or []:
            if isinstance(c, dict):
                _default_container(c)
    for vol in spec.get("volumes") or []:
        for src in ("configMap", "secret"):
            if isinstance(vol.get(src), dict):
                vol[src].setdefault("defaultMode", 420)


def _template(obj: dict[str, Any]) -> dict[str, Any] | None:
    tpl = (obj.get("spec") or {}).get("template")
    if isinstance(tpl, dict):
        spec = tpl.setdefault("spec", {})
        if isinstance(spec, dict):
            default_pod_spec(spec)
    return tpl


def _deployment(obj, old, alloc) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        ru = strategy.setdefault("rollingUpdate", {})
        ru.setdefault("maxUnavailable", "25%")
        ru.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    _template(obj)


def _statefulset(obj, old, alloc) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    us = spec.setdefault("updateStrategy", {})
    us.setdefault("type", "RollingUpdate")
    if us["type"] == "RollingUpdate":
        us.setdefault("rollingUpdate", {}).setdefault("partition", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("persistentVolumeClaimRetentionPolicy",
                    {"whenDeleted": "Retain", "whenScaled": "Retain"})
    for pvc in spec.get("volumeClaimTemplates") or []:
        pvc.setdefault("apiVersion", "v1")
        pvc.setdefault("kind", "PersistentVolumeClaim")
        pvc.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")
        pvc.setdefault("status", {"phase": "Pending"})
    _template(obj)


def _daemonset(obj, old, alloc) -> None:
    spec = obj.setdefault("spec", {})
    us = spec.setdefault("updateStrategy", {})
    us.setdefault("type", "RollingUpdate")
    if us["type"] == "RollingUpdate":
        ru = us.setdefault("rollingUpdate", {})
        ru.setdefault("maxUnavailable", 1)
        ru.setdefault("maxSurge", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    _template(obj)


def _job_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    tpl = spec.get("template")
    if isinstance(tpl, dict):
        default_pod_spec(tpl.setdefault("spec", {}))


def _job(obj, old, alloc) -> None:
    spec = obj.setdefault("spec", {})
    _job_spec(spec)
    uid = obj["metadata"].get("uid", "")
    if uid and not spec.get("manualSelector"):
        labels = {"batch.kubernetes.io/controller-uid": uid,
                  "batch.kubernetes.io/job-name": obj["metadata"].get("name", ""),
                  "controller-uid": uid, "job-name": obj["metadata"].get("name", "")}
        spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
        tpl = spec.setdefault("template", {})
        tpl_labels = tpl.setdefault("metadata", {}).setdefault("labels", {})
        for k, v in labels.items():
            tpl_labels.setdefault(k, v)


def _cronjob(obj, old, alloc) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    jt = spec.setdefault("jobTemplate", {})
    jspec = jt.setdefault("spec", {})
    tpl = jspec.get("template")
    if isinstance(tpl, dict):
        default_pod_spec(tpl.setdefault("spec", {}))


def _service(obj, old, alloc: Allocator) -> None:
    spec = obj.setdefault("spec", {})
    old_spec = (old or {}).get("spec") or {}
    spec.setdefault("type", "ClusterIP")
    stype = spec["type"]
    if stype != "ExternalName":
        spec.setdefault("sessionAffinity", "None")
        if not spec.get("clusterIP") and old_spec.get("clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
            if old_spec.get("clusterIPs"):
                spec.setdefault("clusterIPs", old_spec["clusterIPs"])
        if not spec.get("clusterIP"):
            spec["clusterIP"] = alloc.cluster_ip()
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    if stype in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if stype == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    old_ports = {(p.get("port"), p.get("protocol", "TCP")): p for p in old_spec.get("ports") or []}
    for p in spec.get("ports") or []:
        p.setdefault("protocol", "TCP")
        if stype != "ExternalName":
            p.setdefault("targetPort", p.get("port"))
        if stype in ("NodePort", "LoadBalancer") and not p.get("nodePort"):
            prev = old_ports.get((p.get("port"), p["protocol"]), {}).get("nodePort")
            p["nodePort"] = prev or alloc.node_port()
    obj.setdefault("status", {"loadBalancer": {}})


def _secret(obj, old, alloc) -> None:
    if not obj.get("type"):
        obj["type"] = "Opaque"
    data = obj.get("data")
    if data is not None and not isinstance(data, dict):
        raise bad_request("json: cannot unmarshal into Go struct field Secret.data")
    for k, v in (data or {}).items():
        if not isinstance(v, str):
            raise bad_request(f'json: cannot unmarshal {type(v).__name__} into Go struct field '
                              f'Secret.data of type []uint8')
        try:
            base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError):
            raise bad_request(f"illegal base64 data in Secret.data[{k!r}]") from None
    string_data = obj.pop("stringData", None)
    if string_data:
        merged = dict(data or {})
        for k, v in string_data.items():
            merged[k] = base64.b64encode(str(v).encode()).decode()
        obj["data"] = merged


def _pvc(obj, old, alloc) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("volumeMode", "Filesystem")
    # The DefaultStorageClass admission plugin, as on kind/k3s ("standard").
    if "storageClassName" not in spec and not old:
        spec["storageClassName"] = "standard"
    obj.setdefault("status", {"phase": "Pending"})


def _namespace(obj, old, alloc) -> None:
    obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    obj.setdefault("status", {}).setdefault("phase", "Active")


def _pod(obj, old, alloc) -> None:
    spec = obj.setdefault("spec", {})
    default_pod_spec(spec)
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    obj.setdefault("status", {"phase": "Pending", "qosClass": "BestEffort"})


def _rolebinding(obj, old, alloc) -> None:
    for s in obj.get("subjects") or []:
        if s.get("kind") in ("User", "Group"):
            s.setdefault("apiGroup", "rbac.authorization.k8s.io")


def _crd(obj, old, alloc) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("conversion", {"strategy": "None"})
    names = spec.setdefault("names", {})
    if "kind" in names:
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")


_DEFAULTERS: dict[str, Callable[[dict, dict | None, Allocator], None]] = {
    "Deployment": _deployment, "StatefulSet": _statefulset, "DaemonSet": _daemonset,
    "Job": _job, "CronJob": _cronjob, "Service": _service, "Secret": _secret,
    "PersistentVolumeClaim": _pvc, "Namespace": _namespace, "Pod": _pod,
    "RoleBinding": _rolebinding, "ClusterRoleBinding": _rolebinding,
    "CustomResourceDefinition": _crd,
}


def apply_defaults(rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None,
                   alloc: Allocator) -> None:
    """Fill in the fields the real API server defaults, in place."""
    fn = _DEFAULTERS.get(rt.kind) if not rt.custom else None
    if fn:
        fn(obj, old, alloc)
    if rt.custom and rt.schema:
        _schema_defaults(obj, rt.schema)


# -- validation --------------------------------------------------------------------------

def _name_causes(rt: ResourceType, name: str) -> Causes:
    if rt.kind in _LABEL_NAMED and not rt.custom:  # custom resources: DNS subdomain names
        if len(name) > 63 or not _LABEL.match(name):
            return [("FieldValueInvalid", "metadata.name",
                     f'Invalid value: "{name}": a lowercase RFC 1123 label must consist of lower '
                     "case alphanumeric characters or '-', and must start and end with an "
                     "alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
                     "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")]
    elif len(name) > 253 or not _SUBDOMAIN.match(name):
        return [("FieldValueInvalid", "metadata.name",
                 f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower '
                 "case alphanumeric characters, '-' or '.', and must start and end with an "
                 "alphanumeric character (e.g. 'example.com', regex used for validation is "
                 "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")]
    return []


def _metadata_causes(obj: dict[str, Any]) -> Causes:
    causes: Causes = []
    meta = obj.get("metadata") or {}
    for key in ("labels", "annotations"):
        value = meta.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise bad_request(f"json: cannot unmarshal into Go struct field ObjectMeta.metadata.{key} "
                              "of type map[string]string")
        for k, v in value.items():
            if not isinstance(v, str):
                raise bad_request(f"json: cannot unmarshal {type(v).__name__} into Go struct field "
                                  f"ObjectMeta.metadata.{key} of type string")
            if key == "labels" and (len(v) > 63 or not _LABEL_VALUE.match(v)):
                causes.append(("FieldValueInvalid", "metadata.labels", f'Invalid value: "{v}": '
                               "a valid label must be an empty string or consist of alphanumeric "
                               "characters, '-', '_' or '.', and must start and end with an "
                               "alphanumeric character"))
    return causes


def _selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _pod_spec_causes(spec: Any, prefix: str) -> Causes:
    causes: Causes = []
    containers = (spec or {}).get("containers") if isinstance(spec, dict) else None
    if not containers:
        return [("FieldValueRequired", f"{prefix}.containers", "Required value")]
    for n, c in enumerate(containers):
        if not c.get("name"):
            causes.append(("FieldValueRequired", f"{prefix}.containers[{n}].name", "Required value"))
        if not c.get("image"):
            causes.append(("FieldValueRequired", f"{prefix}.containers[{n}].image", "Required value"))
    return causes


def _workload_causes(obj: dict[str, Any], kind: str) -> Causes:
    spec = obj.get("spec") or {}
    causes: Causes = []
    selector = spec.get("selector")
    tpl = spec.get("template") or {}
    labels = (tpl.get("metadata") or {}).get("labels") or {}
    if not selector and kind != "Job":
        causes.append(("FieldValueRequired", "spec.selector", "Required value"))
    elif selector and not _selector_matches(selector, labels):
        causes.append(("FieldValueInvalid", "spec.template.metadata.labels",
                       f"Invalid value: {labels!r}: `selector` does not match template `labels`"))
    causes += _pod_spec_causes(tpl.get("spec"), "spec.template.spec")
    if isinstance(spec.get("replicas"), int) and spec["replicas"] < 0:
        causes.append(("FieldValueInvalid", "spec.replicas",
                       f"Invalid value: {spec['replicas']}: must be greater than or equal to 0"))
    if kind == "Job":
        rp = (tpl.get("spec") or {}).get("restartPolicy")
        if rp not in ("OnFailure", "Never"):
            causes.append(("FieldValueNotSupported", "spec.template.spec.restartPolicy",
                           f'Unsupported value: "{rp}": supported values: "OnFailure", "Never"'))
    return causes


def _immutable(field: str, value: Any) -> tuple[str, str, str]:
    return ("FieldValueInvalid", field, f"Invalid value: {value!r}: field is immutable")


def _update_causes(rt: ResourceType, obj: dict[str, Any], old: dict[str, Any]) -> Causes:
    causes: Causes = []
    spec, old_spec = obj.get("spec") or {}, old.get("spec") or {}
    if rt.kind == "Deployment" and spec.get("selector") != old_spec.get("selector"):
        causes.append(_immutable("spec.selector", spec.get("selector")))
    if rt.kind == "Job":
        if spec.get("selector") != old_spec.get("selector"):
            causes.append(_immutable("spec.selector", spec.get("selector")))
        if spec.get("template") != old_spec.get("template"):
            causes.append(_immutable("spec.template", spec.get("template")))
    if rt.kind == "StatefulSet":
        allowed = {"replicas", "ordinals", "template", "updateStrategy",
                   "persistentVolumeClaimRetentionPolicy", "minReadySeconds"}
        if {k: v for k, v in spec.items() if k not in allowed} != \
                {k: v for k, v in old_spec.items() if k not in allowed}:
            causes.append(("FieldValueForbidden", "spec",
                           "Forbidden: updates to statefulset spec for fields other than "
                           "'replicas', 'ordinals', 'template', 'updateStrategy', "
                           "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are "
                           "forbidden"))
    if rt.kind == "Service" and old_spec.get("clusterIP") and \
            spec.get("clusterIP") != old_spec.get("clusterIP"):
        causes.append(_immutable("spec.clusterIP", spec.get("clusterIP")))
    if rt.kind == "PersistentVolumeClaim":
        strip = lambda s: {k: v for k, v in s.items() if k not in ("resources", "volumeName")}
        if strip(spec) != strip(old_spec):
            causes.append(("FieldValueForbidden", "spec",
                           "Forbidden: spec is immutable after creation except resources.requests "
                           "and volumeAttributesClassName for bound claims"))
    if rt.kind in ("ConfigMap", "Secret") and old.get("immutable"):
        for key in ("data", "binaryData", "immutable"):
            if obj.get(key) != old.get(key):
                causes.append(("FieldValueForbidden", key,
                               "Forbidden: field is immutable when `immutable` is set"))
    if rt.kind in ("RoleBinding", "ClusterRoleBinding") and obj.get("roleRef") != old.get("roleRef"):
        causes.append(("FieldValueInvalid", "roleRef",
                       f"Invalid value: {obj.get('roleRef')!r}: cannot change roleRef"))
    return causes


def validate(rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """Raise 422 ``Invalid`` (or 400) as the real server would for ``obj``."""
    name = (obj.get("metadata") or {}).get("name") or ""
    group = rt.group
    builtin_kind = "" if rt.custom else rt.kind  # a custom resource named like a built-in is no built-in
    causes = _name_causes(rt, name) + _metadata_causes(obj)
    if builtin_kind in ("ConfigMap", "Secret"):
        for key in ("data", "binaryData"):
            for k, v in (obj.get(key) or {}).items():
                if builtin_kind == "ConfigMap" and key == "data" and not isinstance(v, str):
                    raise bad_request(f"json: cannot unmarshal {type(v).__name__} into Go struct "
                                      "field ConfigMap.data of type string")
                if not _CONFIG_KEY.match(k):
                    causes.append(("FieldValueInvalid", f"{key}[{k}]", f'Invalid value: "{k}": a '
                                   "valid config key must consist of alphanumeric characters, "
                                   "'-', '_' or '.'"))
    if builtin_kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        causes += _workload_causes(obj, rt.kind)
    if builtin_kind == "Service":
        spec = obj.get("spec") or {}
        if spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None" \
                and not spec.get("ports"):
            causes.append(("FieldValueRequired", "spec.ports", "Required value"))
        for n, p in enumerate(spec.get("ports") or []):
            if not isinstance(p.get("port"), int) or not 0 < p["port"] < 65536:
                causes.append(("FieldValueInvalid", f"spec.ports[{n}].port",
                               f"Invalid value: {p.get('port')!r}: must be between 1 and 65535, "
                               "inclusive"))
    if builtin_kind == "CustomResourceDefinition":
        causes += _crd_causes(obj)
    if rt.custom and rt.schema:
        causes += _schema_causes(obj, rt.schema)
    if old is not None and not rt.custom:
        causes += _update_causes(rt, obj, old)
    if causes:
        raise invalid(rt.kind, name, causes, group)


def _crd_causes(obj: dict[str, Any]) -> Causes:
    spec = obj.get("spec") or {}
    names = spec.get("names") or {}
    causes: Causes = []
    name = obj["metadata"].get("name", "")
    for f in ("group",):
        if not spec.get(f):
            causes.append(("FieldValueRequired", f"spec.{f}", "Required value"))
    for f in ("plural", "kind"):
        if not names.get(f):
            causes.append(("FieldValueRequired", f"spec.names.{f}", "Required value"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(("FieldValueNotSupported", "spec.scope",
                       f'Unsupported value: "{spec.get("scope", "")}": supported values: '
                       '"Cluster", "Namespaced"'))
    if names.get("plural") and spec.get("group") and name != f"{names['plural']}.{spec['group']}":
        causes.append(("FieldValueInvalid", "metadata.name",
                       f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group'))
    versions = spec.get("versions") or []
    if not versions:
        causes.append(("FieldValueInvalid", "spec.versions",
                       "Invalid value: []: must have exactly one version marked as storage version"))
    elif sum(1 for v in versions if v.get("storage")) != 1:
        causes.append(("FieldValueInvalid", "spec.versions", "Invalid value: "
                       f"{versions!r}: must have exactly one version marked as storage version"))
    return causes


# -- structural schemas of custom resources ----------------------------------------------

_TYPES = {"string": str, "boolean": bool, "object": dict, "array": list}


def _type_ok(value: Any, typ: str | None) -> bool:
    if typ is None:
        return True
    if typ == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if typ == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES.get(typ, object))


def _schema_causes(obj: dict[str, Any], schema: dict[str, Any]) -> Causes:
    causes: Causes = []

    def walk(value: Any, node: dict[str, Any], path: str) -> None:
        if node.get("x-kubernetes-int-or-string") and isinstance(value, (int, str)):
            return
        if not _type_ok(value, node.get("type")):
            shown = f'"{value}"' if isinstance(value, str) else repr(value)
            causes.append(("FieldValueTypeInvalid", path, f"Invalid value: {shown}: {path} in "
                           f"body must be of type {node.get('type')}: {shown}"))
            return
        if "enum" in node and value not in node["enum"]:
            causes.append(("FieldValueNotSupported", path, f"Unsupported value: {value!r}: "
                           f"supported values: {', '.join(repr(v) for v in node['enum'])}"))
        if isinstance(value, dict):
            for req in node.get("required") or []:
                if req not in value:
                    causes.append(("FieldValueRequired", f"{path}.{req}".lstrip("."),
                                   "Required value"))
            props = node.get("properties") or {}
            for k, v in value.items():
                if k in props:
                    walk(v, props[k], f"{path}.{k}".lstrip("."))
                elif isinstance(node.get("additionalProperties"), dict):
                    walk(v, node["additionalProperties"], f"{path}.{k}".lstrip("."))
        if isinstance(value, list) and isinstance(node.get("items"), dict):
            for n, item in enumerate(value):
                walk(item, node["items"], f"{path}[{n}]")

    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    props = dict(schema.get("properties") or {})
    props.pop("metadata", None)
    walk(body, {**schema, "properties": props,
                "required": [r for r in schema.get("required") or [] if r != "metadata"]}, "")
    return causes


def prune_unknown(obj: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Drop fields the structural schema does not know (the real server prunes them);
    returns their paths (``spec.junk``) for ``fieldValidation=Strict``/``Warn``."""
    dropped: list[str] = []

    def walk(value: Any, node: dict[str, Any], path: str) -> None:
        if node.get("x-kubernetes-preserve-unknown-fields"):
            return
        if isinstance(value, dict):
            props = node.get("properties")
            extra = node.get("additionalProperties")
            for k in list(value):
                sub = f"{path}.{k}"
                if props and k in props:
                    walk(value[k], props[k], sub)
                elif isinstance(extra, dict):
                    walk(value[k], extra, sub)
                elif extra is True:
                    continue
                elif props is not None or node.get("type") == "object":
                    del value[k]
                    dropped.append(sub)
        elif isinstance(value, list) and isinstance(node.get("items"), dict):
            for n, item in enumerate(value):
                walk(item, node["items"], f"{path}[{n}]")

    for key in list(obj):
        if key in ("apiVersion", "kind", "metadata"):
            continue
        sub = (schema.get("properties") or {}).get(key)
        if sub is None:
            if not schema.get("x-kubernetes-preserve-unknown-fields"):
                del obj[key]
                dropped.append(key)
        else:
            walk(obj[key], sub, key)
    return dropped


def _schema_defaults(obj: dict[str, Any], schema: dict[str, Any]) -> None:
    def walk(value: Any, node: dict[str, Any]) -> None:
        if isinstance(value, dict):
            for k, sub in (node.get("properties") or {}).items():
                if k not in value and "default" in sub:
                    value[k] = sub["default"]
                if k in value:
                    walk(value[k], sub)
        elif isinstance(value, list) and isinstance(node.get("items"), dict):
            for item in value:
                walk(item, node["items"])

    for key, sub in (schema.get("properties") or {}).items():
        if key in ("apiVersion", "kind", "metadata"):
            continue
        if key not in obj and "default" in sub:
            obj[key] = sub["default"]
        if key in obj:
            walk(obj[key], sub)

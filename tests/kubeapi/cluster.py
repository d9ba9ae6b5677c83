"""The API semantics, independent of HTTP: create, read, list, replace, patch, apply, delete.

:class:`Cluster` is what :mod:`tests.kubeapi.server` calls after parsing a request.
It owns the :class:`~tests.kubeapi.store.Store`, the resource :class:`Registry`,
the Service IP allocator and the simulated :class:`~tests.kubeapi.controller.Controller`,
and implements the object life cycle of the real API server: metadata (uid,
resourceVersion, generation, creationTimestamp), namespaces, preconditions,
defaulting and validation, field management, dry runs, finalizers, and CRDs.
"""

from __future__ import annotations

import base64
import copy
import datetime as _dt
import json
import random
import string
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import yaml

from . import managed
from .controller import Controller, ControllerSettings
from .defaults import Allocator, apply_defaults, prune_unknown, validate
from .errors import ApiError, already_exists, bad_request, conflict, invalid, not_found
from .fieldpath import Schema
from .merge import json_merge_patch, json_patch, strategic_merge_patch
from .resources import Registry, ResourceType
from .selectors import parse_field_selector, parse_label_selector
from .store import Store

APPLY_TYPES = ("application/apply-patch+yaml", "application/apply-patch+json")
MERGE_TYPE = "application/merge-patch+json"
STRATEGIC_TYPE = "application/strategic-merge-patch+json"
JSON_PATCH_TYPE = "application/json-patch+json"
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def now_rfc3339() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def schema_for(rt: ResourceType) -> Schema:
    return Schema(builtin=not rt.custom, openapi=rt.schema)


@dataclass
class Options:
    """Per-request options parsed from the query string."""

    dry_run: bool = False
    field_manager: str = ""
    field_validation: str = ""  # Strict | Warn | Ignore (the real default is Warn)
    force: bool = False
    user_agent: str = ""

    @property
    def manager(self) -> str:
        """The manager name: ``fieldManager``, else the User-Agent's prefix (as the real server)."""
        if self.field_manager:
            return self.field_manager
        return (self.user_agent or "unknown").split("/")[0][:128]


class Cluster:
    """All objects of one simulated cluster, and the operations on them."""

    def __init__(self, settings: ControllerSettings | None = None, *,
                 namespace_defaults: bool = True) -> None:
        self.lock = threading.RLock()
        self.registry = Registry()
        self.store = Store()
        self.allocator = Allocator()
        self.namespace_defaults = namespace_defaults
        self.controller = Controller(self, settings or ControllerSettings())
        self.bootstrap()

    def bootstrap(self) -> None:
        """Create what a fresh cluster has: the four system namespaces and ``kubernetes`` Service."""
        ns_type = self.registry.lookup("", "v1", "namespaces")
        for ns in INITIAL_NAMESPACES:
            self.create(ns_type, "", {"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": ns}}, Options(user_agent="kube-apiserver"))
        svc = self.registry.lookup("", "v1", "services")
        self.create(svc, "default", {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "labels": {"component": "apiserver",
                                                          "provider": "kubernetes"}},
            "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443,
                                                         "targetPort": 6443}]}},
            Options(user_agent="kube-apiserver"))

    def reset(self) -> None:
        """Forget every object and CRD, then bootstrap again."""
        with self.lock:
            self.store.clear()
            self.registry.reset()
            self.allocator = Allocator()
            self.controller.reset()
            self.bootstrap()

    # -- helpers -----------------------------------------------------------------------
    def _namespace_exists(self, namespace: str) -> bool:
        return self.store.get(("", "namespaces"), "", namespace) is not None

    def _check_namespace(self, rt: ResourceType, namespace: str) -> None:
        if rt.namespaced and not self._namespace_exists(namespace):
            raise not_found("namespaces", namespace)

    def _prepare_metadata(self, rt: ResourceType, obj: dict[str, Any], namespace: str) -> None:
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise bad_request("the namespace of the provided object does not match the "
                                  "namespace sent on the request")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind

    def _check_type(self, rt: ResourceType, obj: Any) -> None:
        if not isinstance(obj, dict):
            raise bad_request("the body of the request was in an unknown format")
        av, kind = obj.get("apiVersion"), obj.get("kind")
        if kind and kind != rt.kind:
            raise bad_request(f"the API version in the data ({av}) does not match the expected "
                              f"API version ({rt.api_version})" if av != rt.api_version else
                              f"the kind in the data ({kind}) does not match the expected kind "
                              f"({rt.kind})")
        if av and av != rt.api_version and self.registry.by_kind(av, kind or rt.kind) is None:
            raise bad_request(f"the API version in the data ({av}) does not match the expected "
                              f"API version ({rt.api_version})")

    @staticmethod
    def _spec_view(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """What bumps ``metadata.generation`` when it changes: all but metadata (and status)."""
        skip = {"metadata", "status"} if (rt.status_subresource or not rt.custom) else {"metadata"}
        return {k: v for k, v in obj.items() if k not in skip}

    def _finish(self, rt: ResourceType, old: dict[str, Any] | None, new: dict[str, Any],
                opts: Options) -> dict[str, Any]:
        """Default, validate, fill server metadata and store (unless a dry run) ``new``."""
        meta = new["metadata"]
        if old is None:
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            if rt.has_generation:
                meta["generation"] = 1
            else:
                meta.pop("generation", None)
            if rt.status_subresource:
                new.pop("status", None)
        else:
            om = old["metadata"]
            for k in ("uid", "creationTimestamp", "deletionTimestamp",
                      "deletionGracePeriodSeconds"):
                if k in om:
                    meta[k] = om[k]
                else:
                    meta.pop(k, None)
            if rt.status_subresource and "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            elif rt.status_subresource:
                new.pop("status", None)
            if rt.has_generation:
                gen = om.get("generation", 1)
                if self._spec_view(rt, new) != self._spec_view(rt, old):
                    gen += 1
                meta["generation"] = gen
            else:
                meta.pop("generation", None)
        meta.pop("resourceVersion", None)
        meta.pop("selfLink", None)
        return new

    def _store(self, rt: ResourceType, old: dict[str, Any] | None, new: dict[str, Any],
               opts: Options) -> dict[str, Any]:
        if old is not None:
            comparable_old = copy.deepcopy(old)
            comparable_old["metadata"].pop("resourceVersion", None)
            if comparable_old == new:
                return old  # a no-op write: nothing is stored, resourceVersion is kept
        if opts.dry_run:
            if old is not None:
                new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            return new
        if old is not None and new["metadata"].get("deletionTimestamp") and \
                not new["metadata"].get("finalizers"):
            return self.store.delete(rt.key, new["metadata"].get("namespace", ""),
                                     new["metadata"]["name"]) or new
        stored = self.store.put(rt.key, new)
        self._after_write(rt, old, stored)
        return stored

    def _after_write(self, rt: ResourceType, old: dict[str, Any] | None,
                     obj: dict[str, Any]) -> None:
        if rt.kind == "CustomResourceDefinition" and rt.group == "apiextensions.k8s.io":
            self.registry.register_crd(obj)
        self.controller.observe(rt, obj)

    def _build(self, rt: ResourceType, old: dict[str, Any] | None, new: dict[str, Any],
               opts: Options) -> dict[str, Any]:
        """Shared tail of every write: server metadata, defaults, validation, storage."""
        if rt.custom and rt.schema:
            self._prune(rt, new, opts)
        self._finish(rt, old, new, opts)
        apply_defaults(rt, new, old, self.allocator)
        validate(rt, new, old)
        return new

    @staticmethod
    def _prune(rt: ResourceType, obj: dict[str, Any], opts: Options) -> None:
        dropped = prune_unknown(obj, rt.schema or {})
        if dropped and opts.field_validation == "Strict":
            fields = ", ".join(f'unknown field "{p}"' for p in dropped)
            raise bad_request(f"strict decoding error: {fields}")

    # -- reads -------------------------------------------------------------------------
    def get(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        obj = self.store.get(rt.key, namespace if rt.namespaced else "", name)
        if obj is None:
            raise not_found(rt.plural, name, rt.group)
        return self._present(rt, obj)

    def _present(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        return obj

    def list(self, rt: ResourceType, namespace: str | None, query: dict[str, str]
             ) -> dict[str, Any]:
        """A ``<Kind>List`` honouring selectors, ``limit`` and ``continue``."""
        # (a missing namespace lists as empty, as on the real server)
        label = parse_label_selector(query.get("labelSelector"))
        field = parse_field_selector(query.get("fieldSelector"), rt.kind)
        with self.store.lock:
            rv = self.store.revision
            items = [o for o in self.store.list(rt.key, namespace if rt.namespaced else None)
                     if label(o) and field(o)]
        start = 0
        if query.get("continue"):
            try:
                token = json.loads(base64.urlsafe_b64decode(query["continue"].encode()))
                start, rv = int(token["start"]), int(token["rv"])
            except (ValueError, KeyError, TypeError):
                raise bad_request("continue key is not valid") from None
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        limit = int(query.get("limit") or 0)
        page = items[start:]
        if limit and len(page) > limit:
            page = page[:limit]
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(
                {"start": start + limit, "rv": rv}).encode()).decode()
            meta["remainingItemCount"] = len(items) - start - limit
        if not rt.custom:
            for o in page:  # typed lists carry no kind/apiVersion on their items
                o.pop("kind", None)
                o.pop("apiVersion", None)
        else:
            page = [self._present(rt, o) for o in page]
        return {"kind": f"{rt.kind}List", "apiVersion": rt.api_version, "metadata": meta,
                "items": page}

    # -- create ------------------------------------------------------------------------
    def create(self, rt: ResourceType, namespace: str, body: Any, opts: Options
               ) -> dict[str, Any]:
        with self.lock:
            self._check_type(rt, body)
            obj = copy.deepcopy(body)
            self._prepare_metadata(rt, obj, namespace)
            meta = obj["metadata"]
            if not meta.get("name"):
                if meta.get("generateName"):
                    meta["name"] = meta["generateName"] + "".join(
                        random.choices(string.ascii_lowercase + string.digits, k=5))
                else:
                    raise invalid(rt.kind, "", [("FieldValueRequired", "metadata.name",
                                  "Required value: name or generateName is required")], rt.group)
            self._check_namespace(rt, namespace)
            if self.store.get(rt.key, meta.get("namespace", ""), meta["name"]) is not None:
                raise already_exists(rt.plural, meta["name"], rt.group)
            meta.pop("managedFields", None)
            new = self._build(rt, None, obj, opts)
            new = managed.record_update(None, new, manager=opts.manager, schema=schema_for(rt),
                                        api_version=rt.api_version, now=now_rfc3339(),
                                        ignore_status=rt.status_subresource)
            if opts.dry_run:
                return new
            stored = self.store.put(rt.key, new)
            self._after_write(rt, None, stored)
            return stored

    # -- update (PUT) ------------------------------------------------------------------
    def _live(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        obj = self.store.get(rt.key, namespace if rt.namespaced else "", name)
        if obj is None:
            raise not_found(rt.plural, name, rt.group)
        return obj

    def _precondition(self, rt: ResourceType, live: dict[str, Any], body: dict[str, Any]) -> None:
        want = (body.get("metadata") or {}).get("resourceVersion")
        if want and str(want) != live["metadata"]["resourceVersion"]:
            raise conflict(rt.plural, live["metadata"]["name"], rt.group,
                           "the object has been modified; please apply your changes to the "
                           "latest version and try again")
        uid = (body.get("metadata") or {}).get("uid")
        if uid and uid != live["metadata"]["uid"]:
            raise conflict(rt.plural, live["metadata"]["name"], rt.group,
                           f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                           f"{live['metadata']['uid']}")

    def replace(self, rt: ResourceType, namespace: str, name: str, body: Any, opts: Options,
                subresource: str = "") -> dict[str, Any]:
        with self.lock:
            self._check_type(rt, body)
            if (body.get("metadata") or {}).get("name") not in (None, name):
                raise bad_request(f"the name of the object ({body['metadata']['name']}) does not "
                                  f"match the name on the URL ({name})")
            live = self._live(rt, namespace, name)
            self._precondition(rt, live, body)
            obj = copy.deepcopy(body)
            obj.setdefault("metadata", {})["name"] = name
            return self._update(rt, namespace, live, obj, opts, subresource)

    def _update(self, rt: ResourceType, namespace: str, live: dict[str, Any],
                obj: dict[str, Any], opts: Options, subresource: str) -> dict[str, Any]:
        self._prepare_metadata(rt, obj, namespace)
        if subresource == "status":
            status = obj.get("status")
            obj = copy.deepcopy(live)
            if status is None:
                obj.pop("status", None)
            else:
                obj["status"] = status
            new = copy.deepcopy(obj)
            meta = new["metadata"]
            meta.pop("resourceVersion", None)
        else:
            new = self._build(rt, live, obj, opts)
        new = managed.record_update(live, new, manager=opts.manager, schema=schema_for(rt),
                                    api_version=rt.api_version, now=now_rfc3339(),
                                    ignore_status=rt.status_subresource,
                                    subresource=subresource)
        return self._present(rt, self._store(rt, live, new, opts))

    # -- patch -------------------------------------------------------------------------
    def patch(self, rt: ResourceType, namespace: str, name: str, raw: bytes, content_type: str,
              opts: Options, subresource: str = "") -> dict[str, Any]:
        ctype = content_type.split(";")[0].strip().lower()
        if ctype in APPLY_TYPES:
            return self.apply(rt, namespace, name, raw, opts, subresource)
        if opts.force:
            raise invalid("PatchOptions", "", [("FieldValueForbidden", "force",
                          "Forbidden: may not be specified for non-apply patch")],
                          "meta.k8s.io")
        try:
            patch = json.loads(raw or b"null")
        except ValueError as exc:
            raise bad_request(f"error decoding patch: {exc}") from None
        with self.lock:
            live = self._live(rt, namespace, name)
            base = copy.deepcopy(live)
            base["apiVersion"], base["kind"] = rt.api_version, rt.kind
            if ctype == MERGE_TYPE:
                obj = json_merge_patch(base, patch)
            elif ctype == STRATEGIC_TYPE:
                if rt.custom:
                    raise ApiError("UnsupportedMediaType", f"the body of the request was in an "
                                   f"unknown format - accepted media types include: "
                                   f"{JSON_PATCH_TYPE}, {MERGE_TYPE}, {APPLY_TYPES[0]}")
                obj = strategic_merge_patch(base, patch, schema_for(rt))
            elif ctype == JSON_PATCH_TYPE:
                if not isinstance(patch, list):
                    raise bad_request("json patch must be a list of operations")
                obj = json_patch(base, patch)
            else:
                raise ApiError("UnsupportedMediaType",
                               f"the body of the request was in an unknown format - accepted "
                               f"media types include: {JSON_PATCH_TYPE}, {MERGE_TYPE}, "
                               f"{APPLY_TYPES[0]}, {STRATEGIC_TYPE}")
            if not isinstance(obj, dict):
                raise bad_request("patched object is not an object")
            if (obj.get("metadata") or {}).get("name") != name:
                raise bad_request("metadata.name cannot be changed by a patch")
            self._precondition(rt, live, patch if isinstance(patch, dict) else {})
            if isinstance(patch, dict) and "resourceVersion" not in (patch.get("metadata") or {}):
                obj["metadata"].pop("resourceVersion", None)
            return self._update(rt, namespace, live, obj, opts, subresource)

    # -- server-side apply -------------------------------------------------------------
    def apply(self, rt: ResourceType, namespace: str, name: str, raw: bytes, opts: Options,
              subresource: str = "") -> dict[str, Any]:
        if not opts.field_manager:
            raise invalid("PatchOptions", "", [("FieldValueRequired", "fieldManager",
                          "Required value: is required for apply patch")], "meta.k8s.io")
        try:
            config = yaml.safe_load(raw) if raw else None
        except yaml.YAMLError as exc:
            raise bad_request(f"error decoding YAML: {exc}") from None
        if not isinstance(config, dict):
            raise bad_request("the body of the request was in an unknown format")
        if not config.get("apiVersion") or not config.get("kind"):
            raise bad_request("invalid object type: apiVersion and kind must be set")
        if config.get("kind") != rt.kind:
            raise bad_request(f"the kind in the data ({config['kind']}) does not match the "
                              f"expected kind ({rt.kind})")
        if (config.get("metadata") or {}).get("name") not in (None, name):
            raise bad_request(f"the name of the object ({config['metadata']['name']}) does not "
                              f"match the name on the URL ({name})")
        with self.lock:
            self._check_type(rt, config)
            live = self.store.get(rt.key, namespace if rt.namespaced else "", name)
            if live is None:
                self._check_namespace(rt, namespace)
            else:
                self._precondition(rt, live, config)
            config.setdefault("metadata", {})["name"] = name
            self._prepare_metadata(rt, config, namespace)
            if rt.custom and rt.schema:
                self._prune(rt, config, opts)
            schema = schema_for(rt)
            base = None
            if live is not None:
                base = copy.deepcopy(live)
                base["apiVersion"], base["kind"] = rt.api_version, rt.kind
            merged = managed.server_side_apply(
                base, config, manager=opts.field_manager, force=opts.force, schema=schema,
                api_version=rt.api_version, now=now_rfc3339(),
                ignore_status=rt.status_subresource and subresource != "status")
            merged["metadata"]["name"] = name
            self._prepare_metadata(rt, merged, namespace)
            mf = merged["metadata"].get("managedFields")
            new = self._build(rt, live, merged, opts)
            if mf is not None:
                new["metadata"]["managedFields"] = mf
            if live is None:
                if opts.dry_run:
                    return new
                stored = self.store.put(rt.key, new)
                self._after_write(rt, None, stored)
                return stored
            return self._present(rt, self._store(rt, live, new, opts))

    # -- delete ------------------------------------------------------------------------
    def delete(self, rt: ResourceType, namespace: str, name: str, options: dict[str, Any],
               opts: Options) -> dict[str, Any]:
        """Delete one object; returns the body the real server answers with."""
        with self.lock:
            live = self._live(rt, namespace, name)
            pre = options.get("preconditions") or {}
            if pre.get("resourceVersion") and pre["resourceVersion"] != \
                    live["metadata"]["resourceVersion"]:
                raise conflict(rt.plural, name, rt.group,
                               "the object has been modified; please apply your changes to the "
                               "latest version and try again")
            if pre.get("uid") and pre["uid"] != live["metadata"]["uid"]:
                raise conflict(rt.plural, name, rt.group, "Precondition failed: UID in "
                               f"precondition: {pre['uid']}, UID in object meta: "
                               f"{live['metadata']['uid']}")
            status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                      "details": {"name": name, "group": rt.group, "kind": rt.plural,
                                  "uid": live["metadata"]["uid"]}}
            if rt.kind == "Namespace" and not rt.custom:
                if name in ("default", "kube-system", "kube-public"):
                    raise ApiError("Forbidden", f'namespaces "{name}" is forbidden: this '
                                   "namespace may not be deleted",
                                   details={"name": name, "kind": "namespaces"})
                return self._delete_namespace(rt, live, opts)
            if live["metadata"].get("finalizers"):
                if live["metadata"].get("deletionTimestamp"):
                    return self._present(rt, live)
                new = copy.deepcopy(live)
                new["metadata"]["deletionTimestamp"] = now_rfc3339()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                if opts.dry_run:
                    return self._present(rt, new)
                return self._present(rt, self.store.put(rt.key, new))
            if opts.dry_run:
                return status
            self.store.delete(rt.key, live["metadata"].get("namespace", ""), name)
            self.controller.forget(rt, live)
            if rt.kind == "CustomResourceDefinition" and rt.group == "apiextensions.k8s.io":
                for t in self.registry.unregister_crd(name):
                    self.store.drop_key(t.key)
            if rt.kind == "Service":
                self.allocator.used_ips.discard((live.get("spec") or {}).get("clusterIP"))
            return status

    def _delete_namespace(self, rt: ResourceType, live: dict[str, Any], opts: Options
                          ) -> dict[str, Any]:
        name = live["metadata"]["name"]
        gone = copy.deepcopy(live)
        gone["metadata"]["deletionTimestamp"] = now_rfc3339()
        gone.setdefault("status", {})["phase"] = "Terminating"
        if opts.dry_run:
            return self._present(rt, gone)
        # The namespace controller deletes the contents, then the namespace itself.
        for key, obj_name in self.store.namespaced_keys_in(name):
            obj = self.store.delete(key, name, obj_name)
            if obj is not None:
                types = self.registry.types_for_key(key)
                if types:
                    self.controller.forget(types[0], obj)
        self.store.delete(rt.key, "", name)
        return self._present(rt, gone)

    def delete_collection(self, rt: ResourceType, namespace: str | None,
                          query: dict[str, str], options: dict[str, Any], opts: Options
                          ) -> dict[str, Any]:
        listed = self.list(rt, namespace, {k: v for k, v in query.items()
                                           if k in ("labelSelector", "fieldSelector")})
        items = []
        for obj in listed["items"]:
            ns = obj["metadata"].get("namespace", "")
            try:
                self.delete(rt, ns, obj["metadata"]["name"], options, opts)
            except ApiError as exc:
                if exc.code != 404:
                    raise
            items.append(obj)
        listed["items"] = items
        return listed

    # -- scale subresource -------------------------------------------------------------
    def get_scale(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        obj = self.get(rt, namespace, name)
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        selector = ",".join(f"{k}={v}" for k, v in
                            ((spec.get("selector") or {}).get("matchLabels") or {}).items())
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: obj["metadata"][k] for k in
                             ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                             if k in obj["metadata"]},
                "spec": {"replicas": spec.get("replicas", 0)},
                "status": {"replicas": status.get("replicas", 0), "selector": selector}}

    def set_scale(self, rt: ResourceType, namespace: str, name: str, scale: dict[str, Any],
                  opts: Options) -> dict[str, Any]:
        with self.lock:
            live = self._live(rt, namespace, name)
            self._precondition(rt, live, scale)
            obj = copy.deepcopy(live)
            obj.setdefault("spec", {})["replicas"] = (scale.get("spec") or {}).get("replicas", 0)
            self._update(rt, namespace, live, obj, opts, "scale")
            return self.get_scale(rt, namespace, name)

    # -- used by the controller --------------------------------------------------------
    def _same_live(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any] | None:
        """The stored object, if it is still the one ``obj`` was read from (same uid)."""
        live = self.store.get(rt.key, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        return live if live is not None and live["metadata"]["uid"] == obj["metadata"]["uid"] else None

    def write_status(self, rt: ResourceType, obj: dict[str, Any], status: dict[str, Any],
                     manager: str = "kube-controller-manager") -> None:
        """Set ``status`` of the stored ``obj`` (if still the same object) as a controller."""
        with self.lock:
            live = self._same_live(rt, obj)
            if live is None or live.get("status") == status:
                return
            new = copy.deepcopy(live)
            new["status"] = status
            new["metadata"].pop("resourceVersion", None)
            new = managed.record_update(live, new, manager=manager, schema=schema_for(rt),
                                        api_version=rt.api_version, now=now_rfc3339(),
                                        ignore_status=False,
                                        subresource="status" if rt.status_subresource else "")
            self.store.put(rt.key, new)

    def controller_update(self, rt: ResourceType, obj: dict[str, Any],
                          manager: str = "kube-controller-manager") -> None:
        """Write a whole object as a controller would (e.g. PVC ``spec.volumeName``)."""
        with self.lock:
            live = self._same_live(rt, obj)
            if live is None:
                return
            new = copy.deepcopy(obj)
            new["metadata"].pop("resourceVersion", None)
            new = managed.record_update(live, new, manager=manager, schema=schema_for(rt),
                                        api_version=rt.api_version, now=now_rfc3339(),
                                        ignore_status=rt.status_subresource)
            cmp = copy.deepcopy(live)
            cmp["metadata"].pop("resourceVersion", None)
            if cmp != new:
                self.store.put(rt.key, new)

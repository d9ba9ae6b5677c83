"""Discovery documents: ``/version``, ``/api``, ``/api/v1``, ``/apis``, ``/apis/<g>``, ``/apis/<g>/<v>``.

These are the legacy (unaggregated) documents; clients asking for aggregated discovery
(``application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList``) get them
with ``Content-Type: application/json`` and fall back, as they do with older servers.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .resources import Registry, ResourceType

SERVER_VERSION = {"major": "1", "minor": "36", "emulationMajor": "1", "emulationMinor": "36",
                  "minCompatibilityMajor": "1", "minCompatibilityMinor": "35",
                  "gitVersion": "v1.36.0", "gitCommit": "0000000000000000000000000000000000000000",
                  "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
                  "goVersion": "go1.25.0", "compiler": "gc", "platform": "linux/amd64"}


def version() -> dict[str, Any]:
    return dict(SERVER_VERSION)


def api_versions(server_address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": server_address}]}


def _group_doc(registry: Registry, group: str) -> dict[str, Any]:
    versions = [{"groupVersion": f"{group}/{v}", "version": v}
                for v in registry.group_versions(group)]
    return {"name": group, "versions": versions, "preferredVersion": versions[0]}


def api_group_list(registry: Registry) -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group_doc(registry, g) for g in registry.groups()]}


def api_group(registry: Registry, group: str) -> dict[str, Any] | None:
    if group not in registry.groups():
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(registry, group)}


def _resource_entry(t: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": t.plural, "singularName": t.singular,
                             "namespaced": t.namespaced, "kind": t.kind, "verbs": list(t.verbs)}
    if t.short_names:
        entry["shortNames"] = list(t.short_names)
    if t.categories:
        entry["categories"] = list(t.categories)
    digest = hashlib.sha256(f"{t.group}/{t.version}/{t.plural}".encode()).digest()
    import base64
    entry["storageVersionHash"] = base64.b64encode(digest[:8]).decode()
    return entry


def resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = registry.in_group_version(group, version)
    if not types:
        return None
    resources = []
    for t in sorted(types, key=lambda t: t.plural):
        resources.append(_resource_entry(t))
        if t.status_subresource:
            resources.append({"name": f"{t.plural}/status", "singularName": "",
                              "namespaced": t.namespaced, "kind": t.kind,
                              "verbs": ["get", "patch", "update"]})
        if t.scale_subresource:
            resources.append({"name": f"{t.plural}/scale", "singularName": "",
                              "namespaced": t.namespaced, "group": "autoscaling",
                              "version": "v1", "kind": "Scale",
                              "verbs": ["get", "patch", "update"]})
    gv = f"{group}/{version}" if group else version
    doc: dict[str, Any] = {"kind": "APIResourceList", "groupVersion": gv, "resources": resources}
    if group:
        doc["apiVersion"] = "v1"
    return doc


# -- OpenAPI v3 (only what clients probe) ----------------------------------------------------
# kubectl decides whether the server validates fields itself (``fieldValidation=Strict``)
# by finding the PATCH operation of a kind in ``/openapi/v3/<gv>``; without it kubectl
# insists on downloading the full schema to validate client side.
_PATCH_PARAMS = ["dryRun", "fieldManager", "fieldValidation", "force", "pretty"]


def openapi_v3_root(registry: Registry) -> dict[str, Any]:
    paths = {}
    gvs = [("", "v1")] + [(g, v) for g in registry.groups() for v in registry.group_versions(g)]
    for g, v in gvs:
        key = f"apis/{g}/{v}" if g else "api/v1"
        digest = hashlib.sha256(repr(sorted(t.plural for t in registry.in_group_version(g, v))
                                     ).encode()).hexdigest()[:16].upper()
        paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return {"paths": paths}


def openapi_v3_group_version(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = registry.in_group_version(group, version)
    if not types:
        return None
    prefix = f"/apis/{group}/{version}" if group else "/api/v1"
    paths: dict[str, Any] = {}
    for t in types:
        where = f"{prefix}/namespaces/{{namespace}}/{t.plural}/{{name}}" if t.namespaced \
            else f"{prefix}/{t.plural}/{{name}}"
        gvk = {"group": group, "version": version, "kind": t.kind}
        params = [{"name": p, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
                  for p in _PATCH_PARAMS]
        op = {"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "patch",
              "operationId": f"patch{t.kind}", "parameters": params,
              "responses": {"200": {"description": "OK"}}}
        paths[where] = {"patch": op,
                        "get": {**op, "x-kubernetes-action": "get", "operationId": f"read{t.kind}",
                                "parameters": []},
                        "put": {**op, "x-kubernetes-action": "put",
                                "operationId": f"replace{t.kind}"}}
    return {"openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": SERVER_VERSION["gitVersion"]},
            "paths": paths, "components": {"schemas": {}}}

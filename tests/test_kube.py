"""The Kubernetes target against the API double (or a real cluster when
DRIFTGATE_TEST_KUBECONFIG names one): server-side diff without default
noise, ignore rules, masked Secrets, the comparison cache, prune, conflicts,
ordering with CRDs, health, transient errors."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftgate import git, targets
from driftgate.access import local_access
from driftgate.config import Environment, load_config
from driftgate.demo_repo import DemoWorld, add_kubernetes_environment, commit_change
from driftgate.errors import PermanentError
from driftgate.models import Action, Plan
from tests.conftest import as_cli, edit_config
from tests.kubeapi import KubeAPIDouble
from tests.kubeapi.fixtures import kube_double_factory  # noqa: F401  (fixture)

REAL_CLUSTER = os.environ.get("DRIFTGATE_TEST_KUBECONFIG")


@dataclass
class Kube:
    kubeconfig: str
    namespace: str
    double: KubeAPIDouble | None

    def client(self) -> Any:
        from kubernetes import config

        return config.new_client_from_config(config_file=self.kubeconfig)

    def need_double(self) -> KubeAPIDouble:
        if self.double is None:
            pytest.skip("needs the API double (fault injection, request counts)")
        return self.double


@pytest.fixture
def kube(kube_double_factory: Callable[..., KubeAPIDouble]) -> Iterator[Kube]:  # noqa: F811
    namespace = f"shop-{uuid.uuid4().hex[:6]}"
    if REAL_CLUSTER:
        yield Kube(REAL_CLUSTER, namespace, None)
        from kubernetes import client

        client.CoreV1Api(Kube(REAL_CLUSTER, namespace, None).client()).delete_namespace(namespace)
        return
    api = kube_double_factory(ready_delay=0.2, job_delay=0.2)
    yield Kube(str(api.kubeconfig_path), namespace, api)


@pytest.fixture
def shop(world: DemoWorld, kube: Kube) -> DemoWorld:
    add_kubernetes_environment(world, kubeconfig=kube.kubeconfig, namespace=kube.namespace)
    return world


def stages(world: DemoWorld) -> tuple[Environment, Any, Any]:
    env = load_config(world.config).environment("shop")
    access = local_access(env)
    return env, targets.render(env, git.fetch(env.source, environment="shop"), access=access), access


def plan(world: DemoWorld) -> Plan:
    env, bundle, access = stages(world)
    return targets.plan(env, bundle, access)


def sync(world: DemoWorld):
    env, bundle, access = stages(world)
    result = targets.apply(env, bundle, access, targets.plan(env, bundle, access))
    assert result.succeeded, [(h.host, [t.message for t in h.tasks]) for h in result.hosts]
    return result


def apply_as(kube: Kube, manager: str, path: str, body: dict[str, Any]) -> None:
    """Server-side apply by another field manager, forced: someone else now owns those fields."""
    kube.client().call_api(
        path, "PATCH",
        query_params=[("fieldManager", manager), ("force", "true")],
        header_params={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
        body=body, auth_settings=["BearerToken"], _preload_content=False,
    )  # fmt: skip


def test_first_sync_then_in_sync_without_default_noise(shop: DemoWorld, kube: Kube) -> None:
    first = plan(shop)
    ns = kube.namespace
    assert [(c.action, c.target) for c in first.changes] == [
        (Action.CREATE, f"Namespace/{ns}"),
        (Action.CREATE, f"ConfigMap/{ns}/web-config"),
        (Action.CREATE, f"Secret/{ns}/web-secret"),
        (Action.CREATE, f"Deployment/{ns}/web"),
        (Action.CREATE, f"Service/{ns}/web"),
    ]
    result = sync(shop)
    health = {h.host: [t.message for t in h.tasks if t.task == "health"] for h in result.hosts}
    assert health[f"Deployment/{ns}/web"] == ["healthy: 2/2 ready"]
    # The server defaulted strategy, clusterIP, protocol, ...: none of it is a change.
    assert plan(shop).in_sync
    assert plan(shop).in_sync


def test_noop_plan_costs_lists_only(shop: DemoWorld, kube: Kube) -> None:
    """The first plan after a sync too: apply filled the comparison cache from
    the server's answers (and the workloads as health last saw them)."""
    double = kube.need_double()
    sync(shop)
    double.reset_requests()
    assert plan(shop).in_sync
    assert double.count_dry_run_patches() == 0
    kinds = {"namespaces", "configmaps", "secrets", "deployments", "services"}
    for resource in kinds:
        assert double.count_lists(resource) == 1, resource
    assert all(r.method == "GET" for r in double.requests)


def test_reads_follow_the_environment_not_the_cluster(shop: DemoWorld, kube: Kube) -> None:
    """A plan lists its namespaced kinds in its own namespaces only, and its
    Namespaces by label and name: another tenant's objects are never read. Prune
    still finds what left Git in a namespace Git no longer names, through the
    namespaces the inventory keeps."""
    from kubernetes import client

    double = kube.need_double()
    core = client.CoreV1Api(kube.client())
    other = f"{kube.namespace}-other-tenant"
    core.create_namespace({"metadata": {"name": other}})
    for i in range(30):  # another tenant's objects, some even carrying driftgate's labels for another environment
        labels = {"app.kubernetes.io/managed-by": "driftgate", "driftgate.io/environment": "someone-else"} if i % 2 else {}
        core.create_namespaced_config_map(other, {"metadata": {"name": f"cm-{i}", "labels": labels}, "data": {"i": str(i)}})
    extra = f"{kube.namespace}-extra"
    side = f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {extra}}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: side, namespace: {extra}}}\ndata: {{a: '1'}}\n"
    commit_change(shop.repo, "k8s/side.yaml", side, "a second namespace")
    mine = {"labelSelector": "app.kubernetes.io/managed-by=driftgate,driftgate.io/environment=shop"}
    double.reset_requests()
    plan(shop)
    # Namespace is cluster-scoped: read by this environment's label, then Git's
    # Namespaces the label did not bring (none applied yet) by name; never all of them.
    namespace_reads = [r.query for r in double.requests if r.verb == "list" and r.resource == "namespaces"]
    assert namespace_reads == [mine] + [{"fieldSelector": f"metadata.name={name}"} for name in sorted([extra, kube.namespace])]
    sync(shop)

    double.reset_requests()
    assert plan(shop).in_sync
    lists = [r.path for r in double.requests if r.verb == "list"]
    assert not [p for p in lists if other in p]
    assert [r.query for r in double.requests if r.verb == "list" and r.resource == "namespaces"] == [mine]  # both applied: one LIST
    namespaced_lists = [p for p in lists if p != "/api/v1/namespaces"]
    assert namespaced_lists and all(p.startswith(("/api/v1/namespaces/", "/apis/apps/v1/namespaces/")) for p in namespaced_lists), lists

    commit_change(shop.repo, "k8s/side.yaml", "", "the second namespace leaves Git")
    assert sorted((c.action, c.target) for c in plan(shop).changes) == [
        (Action.DELETE, f"ConfigMap/{extra}/side"), (Action.DELETE, f"Namespace/{extra}"),
    ]  # fmt: skip


def test_drift_in_the_cluster_is_exactly_that_field(shop: DemoWorld, kube: Kube) -> None:
    from kubernetes import client

    sync(shop)
    core = client.CoreV1Api(kube.client())
    core.patch_namespaced_config_map("web-config", kube.namespace, {"data": {"greeting": "edited by hand"}})
    drift = plan(shop)
    assert [(c.action, c.kind, c.name, c.paths) for c in drift.changes] == [(Action.UPDATE, "ConfigMap", "web-config", ("data.greeting",))]
    assert "-  greeting: edited by hand" in drift.changes[0].diff
    assert "+  greeting: hello from git" in drift.changes[0].diff
    # The hand edit took ownership of the field: correcting it is a conflict to force.
    assert drift.changes[0].diff.startswith("! conflict with another field manager: .data.greeting")
    edit_config(shop, "shop", target={"force_conflicts": True})
    sync(shop)
    assert core.read_namespaced_config_map("web-config", kube.namespace).data == {"greeting": "hello from git"}


def test_secret_values_never_appear(shop: DemoWorld, kube: Kube) -> None:
    first = {c.kind: c for c in plan(shop).changes}["Secret"]
    assert "+  password: '*** (new)'" in first.diff and "s3cret-from-git" not in first.diff
    sync(shop)
    text = (shop.repo / "k8s/config.yaml").read_text().replace("s3cret-from-git", "n3w-s3cret-value\n  token: t0ken-value")
    commit_change(shop.repo, "k8s/config.yaml", text, "rotate the password, add a token")
    changed = plan(shop)
    assert [(c.kind, c.name) for c in changed.changes] == [("Secret", "web-secret")]
    diff = changed.changes[0].diff
    assert "+  password: '*** (changed)'" in diff and "+  token: '*** (new)'" in diff  # key by key, no value
    dumped = changed.model_dump_json()
    for secret in ("s3cret-from-git", "n3w-s3cret-value", "t0ken-value", "czNjcmV0", "bjN3LXMz", "dDBrZW4t"):
        assert secret not in dumped
    for path in Path(os.environ["DRIFTGATE_HOME"]).joinpath("kube-cache").iterdir():
        assert "n3w-s3cret-value" not in path.read_text()


def test_ignore_rules_by_json_path_and_field_manager(shop: DemoWorld, kube: Kube) -> None:
    sync(shop)
    # An autoscaler owns replicas now (server-side apply by another manager, forced).
    apply_as(kube, "hpa-controller", f"/apis/apps/v1/namespaces/{kube.namespace}/deployments/web",
             {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 5}})
    drifted = plan(shop)
    assert [(c.kind, c.name) for c in drifted.changes] == [("Deployment", "web")]
    assert "-  replicas: 5" in drifted.changes[0].diff and "+  replicas: 2" in drifted.changes[0].diff

    edit_config(shop, "shop", target={"ignore": [{"kind": "Deployment", "name": "web", "managers": ["hpa-controller"]}]})
    assert plan(shop).in_sync
    edit_config(shop, "shop", target={"ignore": [{"kind": "Deploy*", "json_paths": ["/spec/replicas"]}]})
    assert plan(shop).in_sync


def test_conflicts_fail_the_object_unless_forced(shop: DemoWorld, kube: Kube) -> None:
    from kubernetes import client

    sync(shop)
    core = client.CoreV1Api(kube.client())
    apply_as(kube, "someone-else", f"/api/v1/namespaces/{kube.namespace}/configmaps/web-config",
             {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-config"}, "data": {"greeting": "mine"}})
    conflicted = plan(shop)
    assert [c.name for c in conflicted.changes] == ["web-config"]
    assert "! conflict with another field manager" in conflicted.changes[0].diff
    assert "-  greeting: mine" in conflicted.changes[0].diff
    env, bundle, access = stages(shop)
    result = targets.apply(env, bundle, access, conflicted)
    assert not result.succeeded
    (failed,) = [t for h in result.hosts for t in h.tasks if t.status == "failed"]
    assert failed.host == f"ConfigMap/{kube.namespace}/web-config" and "conflict" in failed.message
    assert "someone-else" in failed.message and "force_conflicts" in failed.message

    edit_config(shop, "shop", target={"force_conflicts": True})
    sync(shop)
    assert core.read_namespaced_config_map("web-config", kube.namespace).data == {"greeting": "hello from git"}


def test_prune_deletes_only_what_driftgate_created(shop: DemoWorld, kube: Kube) -> None:
    from kubernetes import client

    sync(shop)
    core = client.CoreV1Api(kube.client())
    core.create_namespaced_config_map(kube.namespace, {"metadata": {"name": "hand-made"}, "data": {"a": "1"}})
    config = (shop.repo / "k8s/config.yaml").read_text().split("---")[1]  # keep the Secret only
    commit_change(shop.repo, "k8s/config.yaml", config, "drop the ConfigMap")
    pruning = plan(shop)
    assert [(c.action, c.name, c.risky, c.rules) for c in pruning.changes] == [(Action.DELETE, "web-config", True, ("prune",))]
    sync(shop)
    names = {cm.metadata.name for cm in core.list_namespaced_config_map(kube.namespace).items}
    assert "web-config" not in names and "hand-made" in names

    # A kind that left Git entirely is still pruned: its kind is in the inventory.
    commit_change(shop.repo, "k8s/config.yaml", "", "no more config at all")
    gone = plan(shop)
    assert [(c.action, c.kind, c.name) for c in gone.changes] == [(Action.DELETE, "Secret", "web-secret")]

    edit_config(shop, "shop", target={"prune": False})
    assert plan(shop).in_sync


def test_waves_and_crds_before_their_resources(shop: DemoWorld, kube: Kube) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{kube.namespace}.example.com"},
        "spec": {
            "group": f"{kube.namespace}.example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                "type": "object", "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}],
        },
    }  # fmt: skip
    widget = {"apiVersion": f"{kube.namespace}.example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}}
    late = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "early", "annotations": {"driftgate.io/wave": "0"}}, "data": {}}
    commit_change(shop.repo, "k8s/crd.yaml", yaml.safe_dump_all([widget, crd, late]), "a CRD and a widget")
    first = plan(shop)
    order = [c.target for c in first.changes]
    ns = kube.namespace
    assert order[:3] == [f"CustomResourceDefinition/widgets.{ns}.example.com", f"Namespace/{ns}", f"ConfigMap/{ns}/early"]
    assert order.index(f"CustomResourceDefinition/widgets.{kube.namespace}.example.com") < order.index(f"Widget/{kube.namespace}/w1")
    sync(shop)
    assert plan(shop).in_sync


def test_unhealthy_workload_fails_with_its_name(shop: DemoWorld, kube: Kube) -> None:
    kube.need_double()
    text = (shop.repo / "k8s/web.yaml").read_text().replace("  name: web\nspec:\n  replicas: 2", "  name: web\n  annotations: {kubeapi.test/never-ready: 'true'}\nspec:\n  replicas: 2", 1)
    commit_change(shop.repo, "k8s/web.yaml", text, "a deployment that never becomes ready")
    edit_config(shop, "shop", target={"health_timeout": "1s"})
    env, bundle, access = stages(shop)
    result = targets.apply(env, bundle, access, targets.plan(env, bundle, access))
    assert not result.succeeded
    (unhealthy,) = [t for h in result.hosts for t in h.tasks if t.status == "failed"]
    assert unhealthy.host == f"Deployment/{kube.namespace}/web" and unhealthy.task == "health"
    assert unhealthy.message.startswith("progressing after 0:00:01")


def test_transient_errors_are_retried_validation_errors_are_not(shop: DemoWorld, kube: Kube, monkeypatch: pytest.MonkeyPatch) -> None:
    from driftgate import retry

    double = kube.need_double()
    waits: list[float] = []
    monkeypatch.setattr(retry, "_sleep", waits.append)  # the waits, recorded instead of slept
    double.inject_fault(method="GET", path="/api/v1/configmaps", status=503, times=1)
    double.inject_throttle(retry_after=3, verb="list", resource="secrets")
    assert len(retry.call(lambda: plan(shop)).changes) == 5  # answered on the third attempt
    # (each attempt's first read of a kind: by this environment's label, across namespaces; no inventory yet)
    assert double.count(verb="list", path="/api/v1/configmaps") == 3 and double.count(verb="list", path="/api/v1/secrets") == 2
    assert waits == [2.0, 8.0]  # a 3 s Retry-After is less than the 8 s backoff: the longer wait wins

    sync(shop)
    # A Deployment's selector is immutable: the server refuses the change (422), for good.
    bad = (shop.repo / "k8s/web.yaml").read_text().replace("{app: web}", "{app: web2}")
    commit_change(shop.repo, "k8s/web.yaml", bad, "a new selector")
    double.reset_requests()
    with pytest.raises(PermanentError) as caught:
        plan(shop)
    assert double.count(method="PATCH", resource="deployments", dry_run=True) == 1  # a refusal is not retried
    assert f"Deployment/{kube.namespace}/web from web.yaml (document 0) is rejected by the server" in str(caught.value)


def test_render_validation_names_file_and_document(shop: DemoWorld) -> None:
    commit_change(shop.repo, "k8s/broken.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n---\n", "no name")
    with pytest.raises(PermanentError, match=r"broken.yaml \(document 0\): missing metadata.name"):
        stages(shop)
    commit_change(shop.repo, "k8s/broken.yaml", (shop.repo / "k8s/web.yaml").read_text().split("---")[1], "duplicate")
    with pytest.raises(PermanentError, match=r"Service/shop-\w+/web is defined twice: in broken.yaml \(document 0\) and in web.yaml \(document 1\)"):
        stages(shop)


def test_kustomize_and_jinja_rendering(shop: DemoWorld, kube: Kube) -> None:
    commit_change(shop.repo, "k8s/kustomization.yaml", "resources: [namespace.yaml, config.yaml, web.yaml]\ncommonLabels: {team: shop}\n", "kustomize")
    edit_config(shop, "shop", render={"kind": "kustomize"})
    env, bundle, _ = stages(shop)
    from driftgate.manifests import stored_manifests

    manifests = stored_manifests(bundle.directory)
    assert len(manifests) == 5 and all(m.object["metadata"]["labels"]["team"] == "shop" for m in manifests)

    commit_change(shop.repo, "k8s/extra.yaml.j2", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg-{{ environment }}}\ndata: {size: '{{ size }}'}\n", "jinja")
    edit_config(shop, "shop", render={"kind": "jinja", "values": {"size": 7}})
    env, bundle, _ = stages(shop)
    extra = [m for m in stored_manifests(bundle.directory) if m.name == "cfg-shop"]
    assert extra and extra[0].object["data"] == {"size": "7"}

    edit_config(shop, "shop", render={"kind": "helm"})
    if not __import__("shutil").which("helm"):
        with pytest.raises(PermanentError, match="no helm binary is on PATH"):
            stages(shop)


def test_plan_json_carries_object_fields(shop: DemoWorld) -> None:
    from tests.conftest import invoke_cli

    result = invoke_cli("plan", "shop", "--config", str(shop.config), "--output", "json")
    assert result.returncode == 2, result.stderr
    change = json.loads(result.stdout)["changes"][0]
    assert {k: change[k] for k in ("kind", "name", "action", "risky")} == {"kind": "Namespace", "name": change["name"], "action": "create", "risky": True}
    assert change["rules"] == ["kind:Namespace"]  # the plan says which rule made it risky
    assert "namespace" in change and "diff" in change


@pytest.mark.usefixtures("prefect_api")
def test_reconcile_flow_with_a_cluster_block(shop: DemoWorld, kube: Kube, driftgate_home: Path) -> None:
    from driftgate.blocks import KubernetesCluster
    from driftgate.models import Outcome
    from driftgate.store import Store
    from driftgate.flows.reconcile import reconcile

    kubeconfig = Path(kube.kubeconfig).read_text()
    token = next(line.split(":", 1)[1].strip() for line in kubeconfig.splitlines() if line.strip().startswith("token:"))
    KubernetesCluster(kubeconfig=kubeconfig).save("shop-cluster", overwrite=True)
    edit_config(shop, "shop", target={"kubeconfig": None, "cluster": "shop-cluster"})

    with as_cli(yes=True):
        state = reconcile(environment="shop", config=str(shop.config), return_state=True)
    assert state.is_completed(), state.message
    record = Store().history("shop", limit=1)[0]
    assert record.outcome == Outcome.APPLIED and len(record.changes) == 5
    assert {c.kind for c in record.changes} == {"Namespace", "ConfigMap", "Secret", "Deployment", "Service"}
    web = next(h for h in record.hosts if h.host == f"Deployment/{kube.namespace}/web")
    assert [t.task for t in web.tasks] == ["apply", "health"]
    row = next(c for c in record.changes if c.target == web.host)  # each object's row joins its own steps
    assert (row.result, row.health, row.unplanned) == tuple(t.status for t in web.tasks) + (False,)

    state = reconcile(environment="shop", config=str(shop.config), return_state=True)
    assert Store().history("shop", limit=1)[0].outcome == Outcome.IN_SYNC

    # The block's token is nowhere on disk; the Secret's value is in Git's object
    # store only, never in the record or the diff cache (see test_secrets_on_disk).
    for path in driftgate_home.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path
    for path in [*driftgate_home.glob("driftgate.db*"), *(driftgate_home / "kube-cache").iterdir()]:
        assert b"s3cret-from-git" not in path.read_bytes(), path


@pytest.mark.usefixtures("prefect_api")
def test_risky_kubernetes_plan_pauses_and_a_prune_needs_approval(shop: DemoWorld, kube: Kube) -> None:
    """The gate on a Kubernetes environment: creating a Namespace and a Secret is
    risky (paused until approved), and so is a prune (rejected here: nothing deleted)."""
    from kubernetes import client

    from driftgate.models import Outcome
    from driftgate.store import Store
    from driftgate.flows.reconcile import reconcile
    from tests.conftest import answer, approver

    with approver(answer("approve", "alice", "new shop")) as seen:
        state = reconcile(environment="shop", config=str(shop.config), return_state=True)
    record = Store().history("shop", limit=1)[0]
    assert state.is_completed(), state.message
    assert record.outcome == Outcome.APPLIED and record.approval.approver == "alice"
    assert seen[0].environment == "shop"
    risky = {c.kind: list(c.rules) for c in record.changes if c.risky}
    assert risky == {"Namespace": ["kind:Namespace"], "Secret": ["kind:Secret"]}

    config = (shop.repo / "k8s/config.yaml").read_text().split("---")[1]
    commit_change(shop.repo, "k8s/config.yaml", config, "drop the ConfigMap")
    with approver(answer("reject", "alice", "keep it for now")):
        state = reconcile(environment="shop", config=str(shop.config), return_state=True)
    record = Store().history("shop", limit=1)[0]
    assert record.outcome == Outcome.REJECTED
    assert [(c.action, c.name, c.rules) for c in record.changes] == [("delete", "web-config", ("prune",))]
    names = {cm.metadata.name for cm in client.CoreV1Api(kube.client()).list_namespaced_config_map(kube.namespace).items}
    assert "web-config" in names


def _crd(group: str, kind: str, plural: str, scope: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group, "scope": scope, "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
            "versions": [{"name": "v1beta1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                "type": "object", "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}],
        },
    }  # fmt: skip


def _wait_established(kube: Kube, name: str, timeout: float = 10) -> None:
    import time

    from kubernetes import client

    api = client.ApiextensionsV1Api(kube.client())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conditions = api.read_custom_resource_definition(name).status.conditions or []
        if any(c.type == "Established" and c.status == "True" for c in conditions):
            return
        time.sleep(0.05)
    pytest.fail(f"CRD {name} not established within {timeout}s")


def test_a_custom_kind_named_namespace_is_a_namespaced_custom_resource(shop: DemoWorld, kube: Kube, tmp_path: Path) -> None:
    """Azure Service Operator's `Namespace` (servicebus.azure.com) is a namespaced
    custom resource: applied in its namespace, in the last wave, and not risky as
    kind:Namespace; the core Namespace in the same plan still is."""
    from kubernetes import dynamic

    from driftgate.kube import Wave, wave_of
    from driftgate.manifests import stored_manifests

    ns = kube.namespace
    bus = {"apiVersion": "servicebus.azure.com/v1beta1", "kind": "Namespace", "metadata": {"name": "orders-bus"},
           "spec": {"location": "westeurope"}}  # fmt: skip
    crd = _crd("servicebus.azure.com", "Namespace", "namespaces", "Namespaced")
    commit_change(shop.repo, "k8s/bus.yaml", yaml.safe_dump_all([crd, bus]), "a service bus namespace")

    first = plan(shop)
    by_target = {c.target: c for c in first.changes}
    ours = by_target[f"Namespace.servicebus.azure.com/{ns}/orders-bus"]  # the group shows where the name is shared
    assert (ours.namespace, ours.api_version, ours.rules, ours.risky) == (ns, "servicebus.azure.com/v1beta1", (), False)
    assert by_target[f"Namespace/{ns}"].rules == ("kind:Namespace",)
    assert by_target["CustomResourceDefinition/namespaces.servicebus.azure.com"].rules == ("kind:CustomResourceDefinition",)
    env, bundle, _ = stages(shop)
    waves = {m.display: wave_of(m) for m in stored_manifests(bundle.directory)}
    assert waves[f"Namespace.servicebus.azure.com/{ns}/orders-bus"] == Wave.REST
    assert waves[f"Namespace/{ns}"] == Wave.NAMESPACES_AND_CRDS
    assert list(by_target).index(ours.target) == len(by_target) - 1  # after the Deployment and the Service

    sync(shop)
    custom = dynamic.DynamicClient(kube.client()).resources.get(api_version="servicebus.azure.com/v1beta1", kind="Namespace")
    live = custom.get(name="orders-bus", namespace=ns).to_dict()
    assert live["spec"] == {"location": "westeurope"} and live["metadata"]["namespace"] == ns
    assert plan(shop).in_sync

    # Scope from discovery: a cluster-scoped look-alike whose CRD someone else
    # installed (not in this render) loses the namespace render guessed for it.
    apply_as(kube, "platform-team", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/namespaces.fleet.example.com",
             _crd("fleet.example.com", "Namespace", "namespaces", "Cluster"))
    fleet = {"apiVersion": "fleet.example.com/v1beta1", "kind": "Namespace", "metadata": {"name": "team-a"}}
    commit_change(shop.repo, "k8s/fleet.yaml", yaml.safe_dump(fleet), "a fleet namespace")
    _wait_established(kube, "namespaces.fleet.example.com")
    created = plan(shop)
    assert [(c.target, c.namespace, c.rules) for c in created.changes] == [("Namespace.fleet.example.com/team-a", "", ())]
    sync(shop)
    fleets = dynamic.DynamicClient(kube.client()).resources.get(api_version="fleet.example.com/v1beta1", kind="Namespace")
    assert fleets.get(name="team-a").to_dict()["metadata"].get("namespace") is None
    assert plan(shop).in_sync


def test_kind_rules_name_a_group_for_custom_kinds(shop: DemoWorld) -> None:
    """`kind: Namespace` means the core Namespace; a custom kind needs its group;
    a bare name that is no built-in is refused rather than silently matching nothing."""
    from driftgate import policy
    from driftgate.errors import ConfigError
    from driftgate.models import Change

    def rules(api_version: str, kind: str, **approval: Any) -> tuple[str, ...]:
        edit_config(shop, "shop", approval={"risk": {}, "rules": [], **approval})
        env = load_config(shop.config).environment("shop")
        change = Change(action=Action.UPDATE, target="x", name="x", kind=kind, namespace="web", api_version=api_version)
        return policy.assess(env, Plan(environment="shop", revision="c0ffee", changes=(change,))).changes[0].rules

    bus = ("servicebus.azure.com/v1beta1", "Namespace")
    assert rules(*bus) == ()
    assert rules("v1", "Namespace") == ("kind:Namespace",)
    assert rules(*bus, risk={"kinds": ["Namespace.servicebus.azure.com"]}) == ("kind:Namespace.servicebus.azure.com",)
    assert rules(*bus, rules=[{"rule": "ns", "kind": "Namespace"}]) == ()
    assert rules(*bus, rules=[{"rule": "bus", "kind": "*.servicebus.azure.com"}]) == ("rule:bus",)
    assert rules(*bus, rules=[{"rule": "any", "kind": "Name*"}]) == ("rule:any",)  # a glob names every group
    assert rules("rbac.authorization.k8s.io/v1", "ClusterRole") == ("kind:ClusterRole",)
    assert rules("example.com/v1", "ClusterRole") == ()
    with pytest.raises(ConfigError, match=r"'Widget' is not a built-in Kubernetes kind: write a custom kind with its API group"):
        rules(*bus, rules=[{"rule": "w", "kind": "Widget"}])


def test_secret_keys_are_shown_new_changed_removed_never_their_values() -> None:
    from driftgate.kubediff import mask_secrets, object_diff

    live = {"kind": "Secret", "metadata": {"name": "db"}, "data": {"user": "YWRtaW4=", "password": "b2xk", "legacy": "eA=="}}
    desired = {"kind": "Secret", "metadata": {"name": "db"}, "data": {"user": "YWRtaW4=", "password": "bmV3"},
               "stringData": {"token": "t0ken-value"}}  # fmt: skip
    masked, before = mask_secrets(desired, live)
    assert masked["data"] == {"user": "***", "password": "*** (changed)", "token": "*** (new)"}
    assert before is not None and before["data"] == {"user": "***", "password": "***", "legacy": "*** (removed)"}
    diff = object_diff(masked, before, label="Secret/db")
    assert "-  legacy: '*** (removed)'" in diff and "+  token: '*** (new)'" in diff
    for value in ("YWRtaW4=", "b2xk", "bmV3", "eA==", "t0ken-value", "dDBrZW4t"):
        assert value not in diff
    assert desired["stringData"] == {"token": "t0ken-value"}, "the caller's object is left as it was"
    # A pruned Secret: every key goes.
    _, pruned = mask_secrets({"kind": "Secret"}, live)
    assert pruned is not None and set(pruned["data"].values()) == {"*** (removed)"}

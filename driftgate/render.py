"""render: turn an exported commit into a ready-to-run bundle (cached per commit).

Kubernetes targets are rendered by `driftgate.manifests`; the rest of this
module is the Ansible bundle.

`render_bundle()` exports the commit from the Git object store, renders the driftgate templates
(the inventory file when it ends in ``.j2`` and the globs in
``render.templates``) with a sandboxed Jinja2 environment, writes inline hosts
as an inventory, and validates before anything runs: the playbook exists and
is YAML, the inventory exists and names at least one host. Bundles are cached
under ``$DRIFTGATE_HOME/renders`` by (commit, subpath, render settings), so an
unchanged commit is rendered once. Other ``.j2`` files (Ansible's own
``templates/``) are left for Ansible. Called by the render task and the CLI.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import jinja2
import yaml
from jinja2.sandbox import SandboxedEnvironment

from driftgate import git, home, yamlload
from driftgate.config import Environment
from driftgate.errors import PermanentError
from driftgate.hashing import canonical_hash
from driftgate.manifests import remember, render_manifests
from driftgate.models import Bundle, Checkout, Stage

PROJECT = "project"  # ansible-runner's layout: the playbook lives in <dir>/project
MARKER = ".driftgate-bundle.json"
LOCAL_OVERLAY = "driftgate-local.yml"


def render_bundle(env: Environment, checkout: Checkout, *, identities: tuple[str, ...] = ()) -> Bundle:
    """Build (or reuse) the bundle for ``env`` at ``checkout.commit``; ``identities``
    decrypt a Kubernetes environment's age-encrypted files."""
    _forget_plaintext_caches()
    key = _cache_key(env, checkout)
    target = home.subdir("renders") / f"{checkout.commit[:12]}-{key}"
    marker = target / MARKER
    if marker.is_file():
        return Bundle.model_validate({**json.loads(marker.read_text()), "cached": True})

    staging = Path(tempfile.mkdtemp(prefix="render-", dir=target.parent))
    try:
        manifests = None
        if env.target.kind == "kubernetes":
            manifests = render_manifests(env, checkout, staging, identities=identities)
            bundle = Bundle(
                commit=checkout.commit,
                directory=target,
                target_kind="kubernetes",
                hosts=tuple(m.display for m in manifests),
                checkout=checkout,
            )
        else:
            project = staging / PROJECT
            git.export(checkout, project)  # straight from the object store: no other copy
            bundle = _build(env, checkout, project, target)
        (staging / MARKER).write_text(bundle.model_dump_json())
        try:
            staging.rename(target)
        except OSError:  # another run rendered the same commit first: theirs is as good
            shutil.rmtree(staging, ignore_errors=True)
        if manifests is not None:
            remember(target, manifests)  # with their Secret values, in memory only
        return bundle
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


_swept = False


def _forget_plaintext_caches() -> None:
    """Once per process: delete what older driftgate versions left with Secret
    values in clear — exported checkouts, and Kubernetes bundles rendered before
    Secrets were kept off disk (their marker names no checkout)."""
    global _swept
    if _swept:
        return
    _swept = True
    shutil.rmtree(home.home() / "checkouts", ignore_errors=True)
    for marker in home.subdir("renders").glob(f"*/{MARKER}"):
        try:
            old = json.loads(marker.read_text())
        except (OSError, ValueError):
            continue
        if old.get("target_kind") == "kubernetes" and not old.get("checkout"):
            shutil.rmtree(marker.parent, ignore_errors=True)


def _cache_key(env: Environment, checkout: Checkout) -> str:
    # (commit, subpath) as the issue asks, plus the settings that change the output:
    # the same commit rendered with other values is another bundle.
    inputs = {
        "commit": checkout.commit,
        "path": checkout.path,
        "render": env.render.model_dump(mode="json", exclude={"timeout"}),
        "target": env.target.model_dump(mode="json", exclude={"timeout", "ssh"}),
        "python": sys.executable,
    }
    # json.dumps' default separators: the spelling the cache was first keyed with.
    return canonical_hash(inputs, separators=(", ", ": "))[:20]


def _build(env: Environment, checkout: Checkout, project: Path, final: Path) -> Bundle:
    where = f"environment {env.name!r} at commit {checkout.commit[:12]}"
    target = env.target
    values = {**env.render.values, "environment": env.name}

    templates = set()
    for pattern in env.render.templates:
        templates.update(p for p in project.glob(pattern) if p.is_file() and p.suffix == ".j2")
    inventory_name = target.inventory
    if inventory_name and inventory_name.endswith(".j2"):
        templates.add(project / inventory_name)
        inventory_name = inventory_name.removesuffix(".j2")
    for template in sorted(templates):
        _render_template(template, values, where, project)

    _check_playbook(project / target.playbook, target.playbook, where)

    if target.hosts is not None:
        inventory_name = "driftgate-hosts.yml"
        inline = {"all": {"hosts": {name: dict(hv or {}) for name, hv in target.hosts.items()}}}
        (project / inventory_name).write_text(yaml.safe_dump(inline, sort_keys=True))
    assert inventory_name is not None  # config validation guarantees one of the two
    inventory_path = project / inventory_name
    if not inventory_path.exists():
        raise PermanentError(
            f"{where}: inventory {inventory_name!r} does not exist in the bundle: "
            "fix target.inventory (paths are relative to source.path)",
            stage=Stage.RENDER,
        )
    _check_ansible_yaml(project, inventory=inventory_path, playbook=project / target.playbook, where=where)
    hosts, local_overlay = _read_inventory(inventory_path, target.vars, where)
    sources = [f"{PROJECT}/{inventory_name}"]
    if local_overlay:
        (project.parent / LOCAL_OVERLAY).write_text(yaml.safe_dump({"all": {"hosts": local_overlay}}))
        sources.append(LOCAL_OVERLAY)
    return Bundle(
        commit=checkout.commit,
        directory=final,
        playbook=target.playbook,
        inventory=tuple(sources),
        hosts=tuple(hosts),
    )


def _render_template(template: Path, values: dict[str, Any], where: str, root: Path) -> None:
    name = template.relative_to(root)
    sandbox = SandboxedEnvironment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
    )
    try:
        text = sandbox.from_string(template.read_text()).render(values)
    except jinja2.UndefinedError as exc:
        raise PermanentError(
            f"{where}: template {name}: {exc.message}: add it to render.values in driftgate.yaml",
            stage=Stage.RENDER,
        ) from None
    except jinja2.TemplateError as exc:
        line = getattr(exc, "lineno", None)
        raise PermanentError(
            f"{where}: template {name}{f' line {line}' if line else ''}: {exc}",
            stage=Stage.RENDER,
        ) from None
    template.with_suffix("").write_text(text)
    template.unlink()


def _check_playbook(path: Path, name: str, where: str) -> None:
    if not path.is_file():
        raise PermanentError(
            f"{where}: playbook {name!r} does not exist in the bundle: fix target.playbook",
            stage=Stage.RENDER,
        )
    try:
        plays = yamlload.load_file(path, source=f"playbook {name}", local_tags=True)
    except yamlload.YAMLInputError as exc:
        raise PermanentError(f"{where}: {exc}", stage=Stage.RENDER) from None
    if not isinstance(plays, list) or not plays:
        raise PermanentError(
            f"{where}: playbook {name} must be a list of plays", stage=Stage.RENDER
        )


_VARS_SUFFIXES = ("", ".yml", ".yaml", ".json")  # what Ansible's host_group_vars plugin reads


def _check_ansible_yaml(project: Path, *, inventory: Path, playbook: Path, where: str) -> None:
    """A YAML inventory and the group_vars/host_vars files beside the inventory
    and the playbook, through driftgate's bounded loader before Ansible's own
    loader (which has no alias limit) reads them."""
    files = [inventory] if inventory.suffix in _VARS_SUFFIXES[1:] else []
    for folder in sorted({base.parent / sub for base in (inventory, playbook) for sub in ("group_vars", "host_vars")}):
        if folder.is_dir():
            files += sorted(
                p for p in folder.rglob("*") if p.is_file() and p.suffix in _VARS_SUFFIXES and not p.name.startswith(".")
            )
    for path in files:
        try:
            yamlload.load_file(path, source=str(path.relative_to(project)), local_tags=True)
        except yamlload.YAMLInputError as exc:
            raise PermanentError(f"{where}: {exc}", stage=Stage.RENDER) from None


def _read_inventory(
    path: Path, extra_vars: dict[str, Any], where: str
) -> tuple[list[str], dict[str, dict[str, str]]]:
    """Hosts named by the inventory, and interpreter settings for local hosts.

    Ansible's interpreter discovery picks a broken pyenv shim on some machines;
    a local-connection host runs modules with the interpreter driftgate runs
    on unless the inventory or the extra vars choose one.
    """
    # Imported here: loading ansible costs ~0.3 s and only render needs it.
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    try:
        manager = InventoryManager(loader=DataLoader(), sources=[str(path)])
    except AnsibleError as exc:
        raise PermanentError(f"{where}: inventory {path.name}: {exc}", stage=Stage.RENDER) from None
    hosts = manager.get_hosts()
    if not hosts:
        raise PermanentError(
            f"{where}: inventory {path.name} names no hosts: an empty inventory would "
            "'succeed' while managing nothing; add hosts",
            stage=Stage.RENDER,
        )
    overlay: dict[str, dict[str, str]] = {}
    if "ansible_python_interpreter" not in extra_vars:
        for host in hosts:
            hostvars = host.get_vars()
            local = hostvars.get("ansible_connection") == "local"
            if local and "ansible_python_interpreter" not in hostvars:
                overlay[str(host.name)] = {"ansible_python_interpreter": sys.executable}
    return sorted(str(h.name) for h in hosts), overlay

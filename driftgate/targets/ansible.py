"""The Ansible target: hosts managed by a playbook from the bundle.

Settings (``target: {kind: ansible, ...}``), the bundle (the commit exported
from Git, driftgate's own templates rendered, the inventory checked), plan
and apply through `driftgate.ansible` (ansible-runner, check mode for the
plan), the Ansible risk rules (unpredictable modules, tags read from the
playbook, risky task names, too many hosts) and the SSH access from an
AnsibleSSH block. Registered with `driftgate.targets` on import.
"""

from __future__ import annotations

import logging
import sys
from datetime import timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import jinja2
import yaml
from jinja2.sandbox import SandboxedEnvironment
from pydantic import Field, field_validator, model_validator

from driftgate import ansible as engine
from driftgate import git, yamlload
from driftgate.config import ApprovalPolicy, Duration, Environment, TargetSettings, safe_subpath
from driftgate.errors import PermanentError
from driftgate.models import Action, ApplyResult, Bundle, Change, Checkout, Plan, Stage
from driftgate.targets import BlockRef, RuleCheck, Target, register

if TYPE_CHECKING:
    from driftgate.access import Access

log = logging.getLogger(__name__)

PROJECT = "project"  # ansible-runner's layout: the playbook lives in <dir>/project
LOCAL_OVERLAY = "driftgate-local.yml"


class AnsibleSettings(TargetSettings):
    """Hosts managed by an Ansible playbook from the bundle."""

    kind: Literal["ansible"]
    playbook: str = "site.yml"
    inventory: str | None = Field(default=None, description="inventory file in the bundle")
    hosts: dict[str, dict[str, Any]] | None = Field(
        default=None, description="inline hosts: name -> host vars"
    )
    vars: dict[str, Any] = Field(default_factory=dict, description="extra vars for every run")
    ssh: str | None = Field(default=None, description="AnsibleSSH block name")
    timeout: Duration = Field(default=timedelta(minutes=30), description="per ansible run")

    @field_validator("playbook", "inventory")
    @classmethod
    def _inside_bundle(cls, value: str | None) -> str | None:
        return None if value is None else safe_subpath(value)

    @model_validator(mode="after")
    def _one_inventory(self) -> "AnsibleSettings":
        if self.inventory and self.hosts is not None:
            raise ValueError("give either inventory (a file) or hosts (inline), not both")
        if not self.inventory and self.hosts is None:
            raise ValueError("give an inventory file or inline hosts")
        if self.hosts is not None and not self.hosts:
            raise ValueError("hosts is empty: name at least one host")
        return self


class Ansible(Target):
    kind = "ansible"
    settings = AnsibleSettings
    noun = "host"
    columns = ("host", "task")
    # The bundle is the path exported (git.export of the checkout) and nothing else:
    # roles, includes and vars files ansible reads must be under it, and a symlink
    # leaving it is refused at fetch.
    render_reads = "path"

    def render(self, env: Environment, checkout: Checkout, staging: Path, final: Path,
               *, identities: tuple[str, ...]) -> Bundle:
        project = staging / PROJECT
        git.export(checkout, project)  # straight from the object store: no other copy
        return _build(env, checkout, project, final)

    def plan(self, env: Environment, bundle: Bundle, access: Access) -> Plan:
        return engine.check(env, bundle, ssh=access.target, masker=access.masker)

    def apply(self, env: Environment, bundle: Bundle, access: Access, plan: Plan) -> ApplyResult:
        return engine.apply(env, bundle, ssh=access.target, masker=access.masker)

    def risk_rules(self, env: Environment, bundle: Bundle | None) -> RuleCheck:
        tags = task_tags(bundle.directory, bundle.playbook) if bundle and bundle.playbook else {}
        return lambda change: change_rules(change, env.approval, tags=tags.get(change.name, frozenset()))

    def plan_rules(self, env: Environment, plan: Plan) -> list[str]:
        max_hosts = env.approval.risk.max_hosts
        if max_hosts is not None and len({c.target for c in plan.changes}) > max_hosts:
            return [f"max-hosts:{max_hosts}"]
        return []

    def blocks(self, settings: AnsibleSettings) -> list[BlockRef]:
        return [BlockRef("ssh", "AnsibleSSH", settings.ssh)] if settings.ssh else []

    def credentials(self, env: Environment, blocks: dict[str, Any]) -> tuple[Any, list[str]]:
        block = blocks["ssh"]
        ssh = engine.SSHAccess(
            user=block.user, private_key=block.private_key.get_secret_value(), known_hosts=block.known_hosts
        )
        return ssh, [ssh.private_key]


# ---------------------------------------------------------------- risk rules


def change_rules(change: Change, policy: ApprovalPolicy, *, tags: frozenset[str] = frozenset()) -> list[str]:
    """The Ansible rules one change (a task on a host) matches: a module check
    mode cannot predict, the risky tag, a risky task name."""
    risk = policy.risk
    rules = []
    short_module = change.module.rsplit(".", 1)[-1]
    # `run`: any task check mode could not predict (skipped, check_mode: false).
    if risk.unpredictable_modules and (short_module in engine.UNPREDICTABLE_MODULES or change.action == Action.RUN):
        rules.append(f"module:{short_module}")
    if risk.ansible_tag and risk.ansible_tag in tags:
        rules.append(f"tag:{risk.ansible_tag}")
    rules += [f"task:{pattern}" for pattern in policy.risky_tasks if fnmatchcase(change.name, pattern)]
    return rules


# ---------------------------------------------------------------- tags

_INCLUDE_TASKS = {"import_tasks", "include_tasks", "ansible.builtin.import_tasks", "ansible.builtin.include_tasks"}
_INCLUDE_ROLE = {"import_role", "include_role", "ansible.builtin.import_role", "ansible.builtin.include_role"}
_TASK_SECTIONS = ("pre_tasks", "roles", "tasks", "post_tasks", "handlers")


def task_tags(directory: Path, playbook: str) -> dict[str, frozenset[str]]:
    """Tags per task name, with the tags tasks inherit from plays, blocks,
    roles and static imports. ansible-runner's events do not carry a task's
    tags, so they are read from the playbook. Never raises: render has
    already validated the playbook, and a task it cannot place is simply
    untagged here."""
    tags: dict[str, set[str]] = {}
    try:
        _walk_playbook(directory / playbook, tags, seen=set())
    except (OSError, yaml.YAMLError, RecursionError) as exc:
        log.warning("could not read task tags from %s: %s", playbook, exc)
    return {name: frozenset(values) for name, values in tags.items()}


def _tag_set(node: Any) -> set[str]:
    raw = node.get("tags") if isinstance(node, dict) else None
    if isinstance(raw, str):
        return {t.strip() for t in raw.split(",") if t.strip()}
    if isinstance(raw, list):
        return {str(t).strip() for t in raw}
    return set()


def _load(path: Path, seen: set[Path]) -> Any:
    path = path.resolve()
    if path in seen or not path.is_file():
        return None
    seen.add(path)
    return yamlload.load_file(path, local_tags=True)  # bounded: the files come from Git


def _walk_playbook(path: Path, tags: dict[str, set[str]], *, seen: set[Path]) -> None:
    plays = _load(path, seen)
    for play in plays if isinstance(plays, list) else []:
        if not isinstance(play, dict):
            continue
        imported = play.get("import_playbook") or play.get("ansible.builtin.import_playbook")
        if isinstance(imported, str) and "{{" not in imported:
            _walk_playbook(path.parent / imported, tags, seen=seen)
            continue
        inherited = _tag_set(play)
        for section in _TASK_SECTIONS:
            if section == "roles":
                for role in play.get("roles") or []:
                    name = role.get("role") or role.get("name") if isinstance(role, dict) else role
                    if isinstance(name, str):
                        _walk_role(path.parent, name, inherited | _tag_set(role), tags, seen=seen)
            else:
                _walk_tasks(play.get(section), path.parent, path.parent, inherited, tags, seen=seen)


def _walk_role(root: Path, name: str, inherited: set[str], tags: dict[str, set[str]], *, seen: set[Path]) -> None:
    for folder in ("tasks", "handlers"):
        for candidate in (root / "roles" / name / folder / "main.yml", root / "roles" / name / folder / "main.yaml"):
            tasks = _load(candidate, seen)
            if tasks is not None:
                _walk_tasks(tasks, candidate.parent, root, inherited, tags, seen=seen)


def _walk_tasks(
    tasks: Any, base: Path, root: Path, inherited: set[str], tags: dict[str, set[str]], *, seen: set[Path]
) -> None:
    """``base``: where relative imports start; ``root``: the playbook's folder, holding roles/."""
    for task in tasks if isinstance(tasks, list) else []:
        if not isinstance(task, dict):
            continue
        own = inherited | _tag_set(task)
        if any(k in task for k in ("block", "rescue", "always")):
            for section in ("block", "rescue", "always"):
                _walk_tasks(task.get(section), base, root, own, tags, seen=seen)
            continue
        for key in _INCLUDE_TASKS & task.keys():
            target = task[key] if isinstance(task[key], str) else (task[key] or {}).get("file")
            if isinstance(target, str) and "{{" not in target:
                _walk_tasks(_load(base / target, seen), (base / target).parent, root, own, tags, seen=seen)
        for key in _INCLUDE_ROLE & task.keys():
            role = (task[key] or {}).get("name") if isinstance(task[key], dict) else None
            if isinstance(role, str):
                _walk_role(root, role, own, tags, seen=seen)
        if isinstance(task.get("name"), str):
            tags.setdefault(task["name"], set()).update(own)


# ---------------------------------------------------------------- the bundle


def _build(env: Environment, checkout: Checkout, project: Path, final: Path) -> Bundle:
    """Render driftgate's templates, write inline hosts, check playbook and inventory."""
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
    """Hosts named by the inventory, and settings for local hosts.

    Ansible's interpreter discovery picks a broken pyenv shim on some machines;
    a local-connection host runs modules with the interpreter driftgate runs
    on, and writes them (each with its task's arguments) into the run's own
    directory (`driftgate.ansible.LOCAL_MODULE_TMP`), unless the inventory or the extra vars choose.
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
    for host in hosts:
        hostvars = host.get_vars()
        if hostvars.get("ansible_connection") != "local":
            continue
        chosen = {**hostvars, **extra_vars}
        settings = {"ansible_python_interpreter": sys.executable, "ansible_remote_tmp": engine.LOCAL_MODULE_TMP}
        settings = {name: value for name, value in settings.items() if name not in chosen}
        if settings:
            overlay[str(host.name)] = settings
    return sorted(str(h.name) for h in hosts), overlay


register(Ansible())

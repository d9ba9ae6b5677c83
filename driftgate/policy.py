"""Which changes are risky, whether a plan must wait for a person, and who may decide.

`assess()` marks every change of a plan with the names of the risk rules it
matches (``Change.rules``), so the plan says *why* it needs approval. The
rules, all on by default and each tunable in ``approval.risk``:

    delete / prune      any Ansible delete, any Kubernetes prune
    kind:<Kind>         Namespaces, CRDs, RBAC, Secrets, ServiceAccounts, PV/PVCs
                        (by group and kind: see `driftgate.kinds`)
    scale-to-zero       a workload whose replicas become 0
    module:<module>     Ansible command/shell/raw/script/reboot/expect tasks, and any
                        task check mode cannot predict (action ``run``)
    tag:risky           Ansible tasks tagged ``risky``
    task:<glob>         Ansible task names in ``approval.risky_tasks``
    rule:<name>         a rule of your own (``approval.rules``)
    production          any change in a ``production: true`` environment
    max-changes:<N>     a plan with more than N changes
    max-hosts:<N>       Ansible changes on more than N hosts

The last three are about the whole plan, so they mark every change of it.
`needs_approval()` applies the mode (never / risky / always) and
`approver_refusal()` checks a decider against ``approvers`` and
``forbid_self_approval``. Called by the diff task, the gate, the CLI and the
Ansible diff (`ansible_risk_rules`, per change).
"""

from __future__ import annotations

import logging
import re
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

from driftgate import yamlload
from driftgate.config import ApprovalMode, ApprovalPolicy, Environment, RiskRule
from driftgate.kinds import builtin, kind_matches
from driftgate.models import Action, Bundle, Change, Plan

log = logging.getLogger(__name__)

# Check mode cannot see what these do: a change from them is a leap of faith.
UNPREDICTABLE_MODULES = frozenset(
    {"command", "shell", "raw", "script", "reboot", "expect", "win_command", "win_shell", "win_reboot"}
)
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"})

# "+  replicas: 0" in a unified YAML/JSON diff, or "replicas: 3 -> 0" in a field diff.
_TO_ZERO = (
    re.compile(r'^\+(?!\+)\s*"?replicas"?\s*:\s*0\s*,?\s*$'),
    re.compile(r'replicas"?\s*:?\s*\S+\s*(?:->|→)\s*0\s*$'),
)


def assess(env: Environment, plan: Plan, *, bundle: Bundle | None = None) -> Plan:
    """``plan`` with every change's ``rules`` and ``risky`` computed afresh
    from the environment's policy (idempotent)."""
    risk = env.approval.risk
    ansible = env.target.kind == "ansible"
    tags = ansible_task_tags(bundle.directory, bundle.playbook) if ansible and bundle and bundle.playbook else {}

    plan_wide: list[str] = []
    if risk.production and env.production:
        plan_wide.append("production")
    if risk.max_changes is not None and len(plan.changes) > risk.max_changes:
        plan_wide.append(f"max-changes:{risk.max_changes}")
    if ansible and risk.max_hosts is not None and len({c.target for c in plan.changes}) > risk.max_hosts:
        plan_wide.append(f"max-hosts:{risk.max_hosts}")

    changes = []
    for change in plan.changes:
        rules = change_rules(change, env.approval, ansible=ansible, tags=tags.get(change.name, frozenset()))
        rules += [r for r in plan_wide if r not in rules]
        changes.append(change.model_copy(update={"rules": tuple(rules), "risky": bool(rules)}))
    return plan.model_copy(update={"changes": tuple(changes)})


def change_rules(
    change: Change, policy: ApprovalPolicy, *, ansible: bool, tags: frozenset[str] = frozenset()
) -> list[str]:
    """The names of the rules one change matches by itself (plan-wide rules aside)."""
    risk = policy.risk
    rules = []
    if risk.deletes and change.action == Action.DELETE:
        rules.append("prune" if change.kind else "delete")  # a Kubernetes delete is always a prune
    if change.kind:  # by group and kind: a custom resource named Namespace is no Namespace
        rules += [f"kind:{pattern}" for pattern in risk.kinds if kind_matches(pattern, change.api_version, change.kind)]
    if risk.scale_to_zero and scales_to_zero(change):
        rules.append("scale-to-zero")
    if ansible:
        short_module = change.module.rsplit(".", 1)[-1]
        # `run`: any task check mode could not predict (skipped, check_mode: false).
        if risk.unpredictable_modules and (short_module in UNPREDICTABLE_MODULES or change.action == Action.RUN):
            rules.append(f"module:{short_module}")
        if risk.ansible_tag and risk.ansible_tag in tags:
            rules.append(f"tag:{risk.ansible_tag}")
        rules += [f"task:{pattern}" for pattern in policy.risky_tasks if fnmatchcase(change.name, pattern)]
    rules += [f"rule:{rule.rule}" for rule in policy.rules if rule_matches(rule, change)]
    return rules


def ansible_risk_rules(*, action: Action, module: str, task: str, policy: ApprovalPolicy) -> tuple[str, ...]:
    """The rules one Ansible change matches by itself; `assess()` later adds
    tags and plan-wide rules. Called by the Ansible diff."""
    change = Change(action=action, target="", name=task, module=module)
    return tuple(change_rules(change, policy, ansible=True))


def scales_to_zero(change: Change) -> bool:
    """A workload whose diff sets replicas to 0 (read from the masked diff)."""
    if not change.kind or change.action == Action.DELETE:
        return False
    if builtin(change.api_version, change.kind) not in WORKLOAD_KINDS:
        return False
    return any(p.search(line.rstrip()) for line in change.diff.splitlines() for p in _TO_ZERO)


def rule_matches(rule: RiskRule, change: Change) -> bool:
    """A user rule matches when every field it gives matches the change."""
    if rule.kind is not None and not (change.kind and kind_matches(rule.kind, change.api_version, change.kind)):
        return False
    if rule.namespace is not None and not fnmatchcase(change.namespace, rule.namespace):
        return False
    if rule.name is not None and not fnmatchcase(change.name, rule.name):
        return False
    if rule.action is not None and change.action.value not in rule.action:
        return False
    return rule.path is None or touches_path(change, rule.path)


def touches_path(change: Change, path: str) -> bool:
    """Whether the change touches ``path`` (or a field inside or above it).

    Uses the change's structured ``paths`` when the target filled them;
    otherwise looks for the field's key on the diff's added/removed lines.
    """
    wanted = split_path(path)
    if change.paths:
        return any(_overlaps(split_path(p), wanted) for p in change.paths)
    key = wanted[-1] if wanted else ""
    if not key or "*" in key:
        return False
    pattern = re.compile(rf'^[+-](?![+-])\s*(?:-\s+)?"?{re.escape(key)}"?\s*:')
    return any(pattern.match(line) for line in change.diff.splitlines())


def split_path(path: str) -> list[str]:
    """'$.spec.containers[0].image', '/spec/containers/0/image' -> ['spec', 'containers', '0', 'image']."""
    text = path.strip().removeprefix("$")
    text = re.sub(r"\[(\d+|\*)\]", r".\1", text)
    return [part for part in re.split(r"[./]", text) if part]


def _overlaps(changed: list[str], wanted: list[str]) -> bool:
    # A change to a parent (all of spec) or to a child (spec.replicas.x) touches the path.
    return all(fnmatchcase(c, w) for c, w in zip(changed, wanted))


def needs_approval(plan: Plan, policy: ApprovalPolicy) -> bool:
    """True when the gate must pause this plan for a person's decision."""
    if plan.in_sync:
        return False
    if policy.mode == ApprovalMode.ALWAYS:
        return True
    if policy.mode == ApprovalMode.RISKY:
        return plan.risky
    return False


def approver_refusal(approver: str, policy: ApprovalPolicy, *, requester: str) -> str | None:
    """Why ``approver`` may not decide a run that ``requester`` asked for; None if they may."""
    allowed = policy.allowed_approvers()
    if allowed is not None and approver not in allowed:
        return f"{approver!r} is not an approver of this environment (approvers: {describe_approvers(policy)})"
    if policy.forbid_self_approval and approver == requester:
        return f"{approver!r} requested this run and may not decide it (forbid_self_approval)"
    return None


def deciders(policy: ApprovalPolicy, *, requester: str) -> list[str] | None:
    """The names that may decide, sorted; None when anyone (but maybe the requester) may."""
    allowed = policy.allowed_approvers()
    if allowed is None:
        return None
    return sorted(n for n in allowed if approver_refusal(n, policy, requester=requester) is None)


def describe_approvers(policy: ApprovalPolicy) -> str:
    """'alice, group ops (carol, dave)'."""
    if not policy.approvers:
        return "anyone"
    parts = []
    for entry in policy.approvers:
        members = policy.groups.get(entry)
        parts.append(f"group {entry} ({', '.join(members) or 'no members'})" if members is not None else entry)
    return ", ".join(parts)


# ---------------------------------------------------------------- Ansible tags

_INCLUDE_TASKS = {"import_tasks", "include_tasks", "ansible.builtin.import_tasks", "ansible.builtin.include_tasks"}
_INCLUDE_ROLE = {"import_role", "include_role", "ansible.builtin.import_role", "ansible.builtin.include_role"}
_TASK_SECTIONS = ("pre_tasks", "roles", "tasks", "post_tasks", "handlers")


def ansible_task_tags(directory: Path, playbook: str) -> dict[str, frozenset[str]]:
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

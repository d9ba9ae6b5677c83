"""Which changes are risky, whether a plan must wait for a person, and who may decide.

`assess()` marks every change of a plan with the names of the risk rules it
matches (``Change.rules``), so the plan says *why* it needs approval. The
rules, all on by default and each tunable in ``approval.risk``:

    delete / prune      any delete (a target kind names its rule: Kubernetes says prune)
    (the target's)      the rules of the environment's target kind, e.g.
                        kind:<Kind> and scale-to-zero (`driftgate.targets.kubernetes`),
                        module:<module>, tag:risky, task:<glob> (`driftgate.targets.ansible`)
    rule:<name>         a rule of your own (``approval.rules``)
    production          any change in a ``production: true`` environment
    max-changes:<N>     a plan with more than N changes
    (the target's)      plan-wide rules of the target kind, e.g. max-hosts:<N> (Ansible)
    pinned-revision     a revision asked for (sync --revision, rollback) that is not
                        the head of the ref (`off_ref`, applied by the pipeline's diff)

The last three are about the whole plan, so they mark every change of it.
`needs_approval()` applies the mode (never / risky / always) and
`approver_refusal()` checks a decider against ``approvers`` and
``forbid_self_approval``. Called by `driftgate.targets` (plan, apply), the
diff task, the gate and the CLI.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase

from driftgate import targets
from driftgate.config import ApprovalMode, ApprovalPolicy, Environment, RiskRule
from driftgate.jsonpath import split_path
from driftgate.kinds import kind_matches
from driftgate.models import Action, Bundle, Change, Plan


def assess(env: Environment, plan: Plan, *, bundle: Bundle | None = None) -> Plan:
    """``plan`` with every change's ``rules`` and ``risky`` computed afresh
    from the environment's policy and its target kind's rules (idempotent)."""
    target = targets.target_for(env)
    risk = env.approval.risk
    own_rules = target.risk_rules(env, bundle)

    plan_wide: list[str] = []
    if risk.production and env.production:
        plan_wide.append("production")
    if risk.max_changes is not None and len(plan.changes) > risk.max_changes:
        plan_wide.append(f"max-changes:{risk.max_changes}")
    plan_wide += target.plan_rules(env, plan)

    changes = []
    for change in plan.changes:
        rules = []
        if risk.deletes and change.action == Action.DELETE:
            rules.append(target.delete_rule)
        rules += own_rules(change)
        rules += [f"rule:{rule.rule}" for rule in env.approval.rules if rule_matches(rule, change)]
        rules += [r for r in plan_wide if r not in rules]
        changes.append(change.model_copy(update={"rules": tuple(rules), "risky": bool(rules)}))
    return plan.model_copy(update={"changes": tuple(changes)})


PINNED_REVISION = "pinned-revision"


def off_ref(env: Environment, plan: Plan, why: str) -> Plan:
    """``plan`` of a revision asked for that is not its ref's head (``why``
    says so): every change is risky under rule pinned-revision, unless
    ``approval.risk.pinned_revision`` is off."""
    if not env.approval.risk.pinned_revision:
        return plan
    changes = []
    for change in plan.changes:
        rules = change.rules if PINNED_REVISION in change.rules else (*change.rules, PINNED_REVISION)
        changes.append(change.model_copy(update={"rules": rules, "risky": True}))
    return plan.model_copy(update={"changes": tuple(changes), "warnings": (*plan.warnings, why)})


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

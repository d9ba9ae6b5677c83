"""Which changes are risky, and whether a plan must wait for a person.

A change is risky when it deletes something, when it runs a module whose
effect Ansible cannot predict in check mode (command, shell, raw, script,
reboot), or when its task name matches one of the environment's
``approval.risky_tasks`` globs. `needs_approval()` applies the environment's
mode (never / risky / always). Called by the Ansible diff (to mark changes)
and by the flow's gate.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from driftgate.config import ApprovalMode, ApprovalPolicy
from driftgate.models import Action, Plan

# Check mode cannot see what these do: a change from them is a leap of faith.
UNPREDICTABLE_MODULES = frozenset({"command", "shell", "raw", "script", "reboot", "expect"})


def ansible_risk_rules(*, action: Action, module: str, task: str, policy: ApprovalPolicy) -> tuple[str, ...]:
    """The names of the rules that make one Ansible change risky (empty: not risky)."""
    short_module = module.rsplit(".", 1)[-1]
    rules = []
    if action == Action.DELETE:
        rules.append("delete")
    if short_module in UNPREDICTABLE_MODULES:
        rules.append(f"module:{short_module}")
    rules += [f"task:{pattern}" for pattern in policy.risky_tasks if fnmatchcase(task, pattern)]
    return tuple(rules)


def needs_approval(plan: Plan, policy: ApprovalPolicy) -> bool:
    """True when the gate must pause this plan for a person's decision."""
    if plan.in_sync:
        return False
    if policy.mode == ApprovalMode.ALWAYS:
        return True
    if policy.mode == ApprovalMode.RISKY:
        return plan.risky
    return False

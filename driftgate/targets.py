"""One entry point per stage for every kind of target.

The flow and the CLI call `render()`, `plan()` and `apply()` here and never
branch on the target kind themselves: Ansible goes to `driftgate.ansible`,
Kubernetes to `driftgate.kube` (imported only when used: the client is slow
to import).
"""

from __future__ import annotations

from driftgate import ansible, policy
from driftgate import render as bundles
from driftgate.access import Access
from driftgate.config import Environment
from driftgate.models import ApplyResult, Bundle, Checkout, Plan


def render(env: Environment, checkout: Checkout, *, access: Access | None = None) -> Bundle:
    """The commit, made ready for its target (cached per commit); ``access``
    brings the age identities that decrypt encrypted Secrets."""
    return bundles.render_bundle(env, checkout, identities=access.age_identities if access else ())


def plan(env: Environment, bundle: Bundle, access: Access) -> Plan:
    """Desired (the bundle) against live: what a sync would change, each change
    marked with the risk rules it matches."""
    if env.target.kind == "kubernetes":
        from driftgate import kube

        found = kube.plan(env, bundle, kube.cluster_for(env, access.kube), masker=access.masker,
                          identities=access.age_identities)
    else:
        found = ansible.check(env, bundle, ssh=access.ssh, masker=access.masker)
    return policy.assess(env, found, bundle=bundle)


def apply(env: Environment, bundle: Bundle, access: Access, plan: Plan) -> ApplyResult:
    """Make live match the bundle (the plan's changes); per host/object results,
    and (Ansible) every change apply made, with its risk rules."""
    if env.target.kind == "kubernetes":
        from driftgate import kube

        return kube.apply(env, bundle, kube.cluster_for(env, access.kube), plan, masker=access.masker,
                          identities=access.age_identities)
    result = ansible.apply(env, bundle, ssh=access.ssh, masker=access.masker)
    # What apply changed, marked by the same rules as a plan: a change the plan
    # did not list is recorded with the rules it would have matched.
    done = policy.assess(env, Plan(environment=env.name, revision=bundle.commit, changes=result.changes), bundle=bundle)
    return result.model_copy(update={"changes": done.changes})

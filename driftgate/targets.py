"""One entry point per stage for every kind of target.

The flow and the CLI call `render()`, `plan()` and `apply()` here and never
branch on the target kind themselves; each kind's module (ansible, and
kubernetes later) does the work.
"""

from __future__ import annotations

from driftgate import ansible
from driftgate import render as ansible_render
from driftgate.access import Access
from driftgate.config import Environment
from driftgate.models import ApplyResult, Bundle, Checkout, Plan


def render(env: Environment, checkout: Checkout) -> Bundle:
    """The commit, made ready for its target (cached per commit)."""
    return ansible_render.render_bundle(env, checkout)


def plan(env: Environment, bundle: Bundle, access: Access) -> Plan:
    """Desired (the bundle) against live: what a sync would change."""
    return ansible.check(env, bundle, ssh=access.ssh, masker=access.masker)


def apply(env: Environment, bundle: Bundle, access: Access) -> ApplyResult:
    """Make live match the bundle; per host/object results."""
    return ansible.apply(env, bundle, ssh=access.ssh, masker=access.masker)

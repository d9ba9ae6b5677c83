"""Kinds of target: what each must provide, the registry keyed by kind, and
one entry point per stage.

A target kind (``target.kind`` in driftgate.yaml) is one module that
subclasses `Target` and calls `register()`: its settings model (the
``target:`` section), render, plan, apply, its own risk rules, the blocks it
reads its credentials from, and how its changes are named to people. The
built-in kinds are `driftgate.targets.ansible` and
`driftgate.targets.kubernetes`; nothing outside the target modules branches
on the kind.

Another package adds a kind by declaring it as an entry point in the group
``driftgate.targets`` (name: the kind; value: its `Target` subclass), e.g.
``files = mypackage.files:FilesTarget`` in its pyproject.toml's
``[project.entry-points."driftgate.targets"]``: every driftgate process that
reads a configuration naming that kind (the CLI, `driftgate serve`, a Prefect
worker's flow run) loads it (`load_plugins()`). A plugin cannot replace a
built-in kind.

The flow and the CLI call `render()`, `plan()` and `apply()` here; the config
(`driftgate.config`) validates ``target:`` with the model registered for its
``kind``; `driftgate.policy` adds each target's rules to the generic ones;
the report and the CLI name changes through `label()`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple, get_args

from pydantic import BaseModel

from driftgate.models import ApplyResult, Bundle, Change, Checkout, HostResult, Plan

if TYPE_CHECKING:
    from driftgate.access import Access
    from driftgate.config import Environment, TargetSettings

RuleCheck = Callable[[Change], list[str]]


class BlockRef(NamedTuple):
    """A block a target's settings name: the settings field, the block class
    (by its name in `blocks.credentials`), and the block document's name."""

    field: str
    block_type: str
    name: str


class Target(ABC):
    """One kind of target. Subclass, set the class attributes, implement
    render/plan/apply, override what differs from the defaults, and
    `register()` an instance."""

    kind: ClassVar[str]  # the value of target.kind in driftgate.yaml
    settings: ClassVar[type[TargetSettings]]  # validates the target: section (its `kind` a Literal)
    noun: ClassVar[str] = "host"  # what a plan's hosts are: "3 host(s)" in sync
    columns: ClassVar[tuple[str, ...]] = ("target", "name")  # the CLI's plan table, before action and risky
    delete_rule: ClassVar[str] = "delete"  # the name of approval.risk.deletes' rule for this kind
    # What render may read of a commit: "path", only the environment's source.path
    # (through git.export / git.read_files of the checkout), or "repository", anything
    # in it. The render cache keeps a bundle for every commit whose tree there is the
    # same (driftgate.render): a kind that reads outside the path but says "path"
    # would be handed a bundle rendered from other files, so "repository" is the default.
    render_reads: ClassVar[Literal["path", "repository"]] = "repository"

    # ------------------------------------------------------------ stages

    @abstractmethod
    def render(self, env: Environment, checkout: Checkout, staging: Path, final: Path,
               *, identities: tuple[str, ...]) -> Bundle:
        """Write what the target applies into ``staging``; the bundle names ``final``
        (where `driftgate.render` moves it once written). Raise `PermanentError`
        (stage render) for a commit that cannot be rendered."""

    @abstractmethod
    def plan(self, env: Environment, bundle: Bundle, access: Access) -> Plan:
        """Desired (the bundle) against live; the risk rules are added afterwards."""

    @abstractmethod
    def apply(self, env: Environment, bundle: Bundle, access: Access, plan: Plan) -> ApplyResult:
        """Make live match the bundle; per host/object results. ``changes`` of the
        result: what apply changed, when the target can tell (marked unplanned
        by the record when the plan did not list them)."""

    # ------------------------------------------------------------ risk

    def risk_rules(self, env: Environment, bundle: Bundle | None) -> RuleCheck:
        """The rules of this kind one change matches by itself (the generic ones,
        delete, user rules and plan-wide rules, are `driftgate.policy`'s)."""
        return lambda change: []

    def plan_rules(self, env: Environment, plan: Plan) -> list[str]:
        """Rules of this kind about the whole plan: they mark every change of it."""
        return []

    # ------------------------------------------------------------ access

    def blocks(self, settings: Any) -> list[BlockRef]:
        """The blocks these settings name (none: the target needs no credentials)."""
        return []

    def credentials(self, env: Environment, blocks: dict[str, Any]) -> tuple[Any, list[str]]:
        """The target's credentials from its loaded blocks (by settings field),
        and the secrets among them (masked in every output). Called by
        `blocks.load_access`; the result is `Access.target`."""
        return None, []

    # ------------------------------------------------------------ names

    def label(self, change: Change) -> str:
        """How people read one change: 'web1: restart nginx'."""
        return f"{change.target}: {change.name}"

    def row(self, change: Change) -> tuple[str, ...]:
        """The change's cells under `columns` in the CLI's plan table."""
        return (change.target, change.name)

    def result_line(self, host: HostResult) -> str:
        """One host's (or object's) result as `driftgate show` prints it."""
        return f"{host.host}: changed={host.changed} ok={host.ok} failed={host.failed} unreachable={host.unreachable}"


_REGISTRY: dict[str, Target] = {}


def register(target: Target) -> Target:
    """Make ``target.kind`` a valid target kind (the config accepts its settings
    from now on). Registering a kind again replaces it."""
    if get_args(target.settings.model_fields["kind"].annotation) != (target.kind,):
        raise TypeError(f"{type(target).__name__}.settings must declare kind: Literal[{target.kind!r}]")
    _REGISTRY[target.kind] = target
    _settings_changed()
    return target


def unregister(kind: str) -> None:
    """Forget a kind (tests that registered their own)."""
    if _REGISTRY.pop(kind, None) is not None:
        _settings_changed()


def _settings_changed() -> None:
    from driftgate import config  # the models that embed `target:` validate against the registry

    config.rebuild_target_models()


PLUGIN_GROUP = "driftgate.targets"
_plugin_errors: dict[str, str] = {}  # kind -> why its plugin did not load
_plugins_loaded = False


def load_plugins() -> None:
    """Register the kinds installed packages declare as entry points in
    `PLUGIN_GROUP`, once per process. Called by `driftgate.config` when a
    configuration names a kind not registered yet, so a process that uses only
    the built-in kinds never scans the installed packages (about 60 ms). A plugin
    that fails to load is remembered (`plugin_error`) and skipped: the
    configuration that names its kind says why, the others still load."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for entry in entry_points(group=PLUGIN_GROUP):
        if entry.name in _REGISTRY:
            continue  # a built-in (or one registered in this process) is never replaced by a package
        try:
            found = entry.load()
            target = found() if isinstance(found, type) and issubclass(found, Target) else found
            if not isinstance(target, Target):
                raise TypeError(f"{entry.value} is not a driftgate.targets.Target subclass")
            if target.kind != entry.name:
                raise TypeError(f"{entry.value} is kind {target.kind!r}, not {entry.name!r}")
            register(target)
        except Exception as exc:  # noqa: BLE001 - any failure of someone else's code: said where the kind is used
            _plugin_errors[entry.name] = f"{entry.value} did not load: {type(exc).__name__}: {exc}"


def plugin_error(kind: str) -> str | None:
    """Why the plugin declaring ``kind`` did not load, if one tried."""
    return _plugin_errors.get(kind)


def kinds() -> list[str]:
    """Every registered kind, sorted."""
    return sorted(_REGISTRY)


def settings_models() -> dict[str, type[BaseModel]]:
    """kind -> the model of its ``target:`` section (for `driftgate.config`)."""
    return {kind: target.settings for kind, target in sorted(_REGISTRY.items())}


def get(kind: str) -> Target:
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise KeyError(f"no target kind {kind!r} (known: {', '.join(kinds())})") from None


def target_for(env: Environment) -> Target:
    """The target kind of an environment (validated by the config, so registered)."""
    return get(env.target.kind)


# ---------------------------------------------------------------- stages


def render(env: Environment, checkout: Checkout, *, access: Access | None = None) -> Bundle:
    """The commit, made ready for its target (kept while what render reads is
    unchanged: `driftgate.render`); ``access``
    brings the age identities that decrypt encrypted Secrets."""
    from driftgate import render as bundles

    return bundles.render_bundle(env, checkout, identities=access.age_identities if access else ())


def plan(env: Environment, bundle: Bundle, access: Access) -> Plan:
    """Desired (the bundle) against live: what a sync would change, each change
    marked with the risk rules it matches."""
    from driftgate import policy

    target = target_for(env)
    return policy.assess(env, _stamped(target, target.plan(env, bundle, access)), bundle=bundle)


def apply(env: Environment, bundle: Bundle, access: Access, plan: Plan) -> ApplyResult:
    """Make live match the bundle (the plan's changes); per host/object results,
    and every change apply made (when the target tells), with its risk rules."""
    from driftgate import policy

    target = target_for(env)
    result = target.apply(env, bundle, access, plan)
    if not result.changes:
        return result
    # What apply changed, marked by the same rules as a plan: a change the plan
    # did not list is recorded with the rules it would have matched.
    done = Plan(environment=env.name, revision=bundle.commit, changes=result.changes)
    done = policy.assess(env, _stamped(target, done), bundle=bundle)
    return result.model_copy(update={"changes": done.changes})


def _stamped(target: Target, plan: Plan) -> Plan:
    changes = tuple(c.model_copy(update={"target_kind": target.kind}) for c in plan.changes)
    return plan.model_copy(update={"changes": changes})


# ---------------------------------------------------------------- names


def kind_of(change: Change) -> str:
    """The target kind a change came from. Changes stored before changes named
    their kind are told apart the way they were then: a Kubernetes change
    names the object's kind, an Ansible change does not."""
    return change.target_kind or ("kubernetes" if change.kind else "ansible")


def label(change: Change) -> str:
    """'Deployment/web/api' for an object, 'web1: restart nginx' for an Ansible
    task: as the change's target kind names it."""
    target = _REGISTRY.get(kind_of(change))
    return target.label(change) if target else f"{change.target}: {change.name}"


def for_record(changes: Sequence[Change], hosts: Sequence[HostResult]) -> Target | None:
    """The target kind of a stored run, from its changes; for rows stored before
    changes named their kind, Kubernetes objects (Kind/namespace/name) tell."""
    for change in changes:
        if change.target_kind:
            return _REGISTRY.get(change.target_kind)
    legacy = any(change.kind for change in changes) or any("/" in h.host for h in hosts)
    return _REGISTRY.get("kubernetes" if legacy else "ansible")


def _register_builtins() -> None:
    from driftgate.targets import ansible, kubernetes  # noqa: F401 - each registers itself


_register_builtins()

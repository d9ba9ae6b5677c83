"""driftgate.yaml: the environments, where their desired state lives, how it
is applied, and who must approve.

`load_config()` finds the file (``--config``, then ``DRIFTGATE_CONFIG``, then
``./driftgate.yaml``), merges ``defaults`` into every environment, validates
with pydantic and raises `ConfigError` with one line per problem, each naming
the environment and the field. Unknown keys are errors: a typo must not
silently switch off a safety setting. Called by the CLI and by the flow.
"""

from __future__ import annotations

import copy
import os
import posixpath
import re
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import core_schema

from driftgate import yamlload
from driftgate.errors import ConfigError
from driftgate.kinds import pattern_problem

CONFIG_ENV_VAR = "DRIFTGATE_CONFIG"
DEFAULT_CONFIG_NAME = "driftgate.yaml"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: Any) -> timedelta:
    """'90s', '5m', '1h', '2d' or a number of seconds -> timedelta."""
    if isinstance(value, timedelta):
        return value
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return timedelta(seconds=value)
        match = _DURATION.match(str(value))
        if match:
            number, unit = match.groups()
            return timedelta(seconds=float(number) * _UNIT_SECONDS[unit])
    except (OverflowError, ValueError):  # .inf, .nan, 1e30: not a duration either
        pass
    raise ValueError(f"{value!r} is not a duration: use e.g. 30s, 5m, 1h or a number of seconds")


def _positive(value: timedelta) -> timedelta:
    # A zero or negative timeout or interval would fire at once or never.
    if value <= timedelta(0):
        raise ValueError(f"must be longer than zero, not {value.total_seconds():g} s")
    return value


def _not_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError(f"must not be negative, not {value.total_seconds():g} s")
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_positive)]
NonNegativeDuration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_not_negative)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(Strict):
    """Where the desired state lives: a Git repository, a ref and a subpath."""

    repo: str = Field(description="URL, or a path (relative to driftgate.yaml)")
    ref: str = "main"
    path: str = "."
    credentials: str | None = Field(default=None, description="GitCredentials block name")
    require_signed_commits: bool = False
    allowed_signers: list[str] = Field(
        default_factory=list,
        description="armored public keys, or files holding them (relative to driftgate.yaml)",
    )
    allowed_signers_block: str | None = Field(default=None, description="SigningKeys block name")
    timeout: Duration = Field(default=timedelta(minutes=10), description="per git clone or fetch")

    @field_validator("path")
    @classmethod
    def _path_stays_inside(cls, value: str) -> str:
        return safe_subpath(value)

    @field_validator("ref")
    @classmethod
    def _ref_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("ref must name a branch, a tag or a commit")
        return value.strip()

    @model_validator(mode="after")
    def _signers_when_required(self) -> "Source":
        if self.require_signed_commits and not (self.allowed_signers or self.allowed_signers_block):
            raise ValueError(
                "require_signed_commits is on but no allowed_signers or allowed_signers_block is given"
            )
        return self


def safe_subpath(value: str) -> str:
    """Normalise a repository subpath; refuse one that leaves the repository."""
    raw = value.strip() or "."
    if raw.startswith("/") or raw.startswith("\\"):
        raise ValueError(f"path {value!r} must be relative to the repository root")
    normal = posixpath.normpath(raw.replace("\\", "/"))
    if normal == ".." or normal.startswith("../"):
        raise ValueError(f"path {value!r} escapes the repository (it climbs out with '..')")
    return normal


class TargetSettings(Strict):
    """The ``target:`` section: where and how an environment is applied. Each
    target kind (`driftgate.targets`) subclasses this with ``kind`` a Literal
    of its name and its own fields."""

    kind: str


class _RegisteredTargets:
    """Validates ``target:`` with the settings model registered for its ``kind``
    (a tagged union over `driftgate.targets.settings_models()`); the models
    holding it are rebuilt when a kind is registered."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        from driftgate import targets  # registers the built-in kinds on first import

        choices = {kind: handler.generate_schema(model) for kind, model in targets.settings_models().items()}
        return core_schema.tagged_union_schema(choices, discriminator="kind")


Target = Annotated[TargetSettings, _RegisteredTargets]


class ApprovalMode(str, Enum):
    NEVER = "never"
    RISKY = "risky"
    ALWAYS = "always"


# Kinds whose change can lock people out, leak data or lose it: risky by default.
SENSITIVE_KINDS = (
    "Namespace",
    "CustomResourceDefinition",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "Secret",
    "ServiceAccount",
    "PersistentVolume",
    "PersistentVolumeClaim",
)


def check_kind_pattern(value: Any) -> Any:
    """Kinds are told apart by group and kind: a bare name must be a built-in."""
    for pattern in value if isinstance(value, list) else [value]:
        if isinstance(pattern, str) and (problem := pattern_problem(pattern)):
            raise ValueError(problem)
    return value


class RiskRules(Strict):
    """The built-in risk rules of ``approval.mode: risky``; each is on by
    default and can be switched off (false / [] / null) or tuned."""

    deletes: bool = Field(default=True, description="any delete or prune")
    kinds: list[str] = Field(
        default_factory=lambda: list(SENSITIVE_KINDS), description="changes to objects of these kinds"
    )
    scale_to_zero: bool = Field(default=True, description="a workload scaled to zero replicas")
    _kind_patterns = field_validator("kinds")(lambda cls, value: check_kind_pattern(value))
    max_changes: int | None = Field(default=20, ge=0, description="more changes than this in one plan")
    production: bool = Field(default=True, description="any change in an environment with production: true")
    unpredictable_modules: bool = Field(
        default=True,
        description="Ansible command/shell/raw/script/reboot/expect tasks, and any task check mode cannot predict (run)",
    )
    ansible_tag: str | None = Field(default="risky", description="Ansible tasks carrying this tag")
    max_hosts: int | None = Field(default=5, ge=0, description="Ansible changes on more hosts than this")
    pinned_revision: bool = Field(
        default=True, description="a revision asked for (sync --revision, rollback) that is not the head of the ref"
    )


class RiskRule(Strict):
    """A rule of your own: a change matching every field given is risky.
    kind, namespace and name are globs; path is a JSON path (spec.replicas,
    /spec/replicas or $.spec.replicas; * matches one segment)."""

    rule: str = Field(description="the rule's name, shown in the plan")
    kind: str | None = None
    namespace: str | None = None
    name: str | None = Field(default=None, description="object name (Ansible: task name) glob")
    path: str | None = Field(default=None, description="a JSON path the change touches")
    action: list[Literal["create", "update", "delete", "run"]] | None = None

    _kind_pattern = field_validator("kind")(lambda cls, value: check_kind_pattern(value))

    @field_validator("action", mode="before")
    @classmethod
    def _one_action_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _matches_something(self) -> "RiskRule":
        if all(v is None for v in (self.kind, self.namespace, self.name, self.path, self.action)):
            raise ValueError(f"rule {self.rule!r} matches every change: give kind, namespace, name, path or action")
        return self


class ApprovalPolicy(Strict):
    """Whether a plan waits for a person, and who may decide (``approval:``)."""

    mode: ApprovalMode = ApprovalMode.RISKY
    timeout: Duration = timedelta(hours=1)
    approvers: list[str] = Field(
        default_factory=list, description="who may decide: names, or group names from groups (empty: anyone)"
    )
    groups: dict[str, list[str]] = Field(
        default_factory=dict, description="group name -> member names (put shared ones in defaults)"
    )
    forbid_self_approval: bool = Field(default=False, description="the requester of a run may not decide it")
    risk: RiskRules = RiskRules()
    rules: list[RiskRule] = Field(default_factory=list, description="your own risk rules")
    risky_tasks: list[str] = Field(
        default_factory=list, description="glob patterns of task names that always need approval"
    )
    require_signature: bool = Field(
        default=False, description="an answer must carry the approver's SSH signature over the run's statement"
    )
    allowed_signers: str | None = Field(
        default=None,
        description="OpenSSH allowed_signers file in the environment's repository (from its root), read at the fetched commit",
    )
    allowed_signers_block: str | None = Field(default=None, description="ApprovalSigners block name (instead)")

    @field_validator("allowed_signers")
    @classmethod
    def _signers_inside_repo(cls, value: str | None) -> str | None:
        return None if value is None else safe_subpath(value)

    @model_validator(mode="after")
    def _one_signers_source(self) -> "ApprovalPolicy":
        sources = [s for s in (self.allowed_signers, self.allowed_signers_block) if s]
        if self.require_signature and len(sources) != 1:
            raise ValueError(
                "require_signature needs exactly one of allowed_signers (a file in the repository) "
                "or allowed_signers_block (a block)"
            )
        if sources and not self.require_signature:
            raise ValueError("allowed_signers is given but require_signature is not true: set it, or drop allowed_signers")
        return self

    @model_validator(mode="after")
    def _unique_rule_names(self) -> "ApprovalPolicy":
        names = [r.rule for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rules: names must be unique ({', '.join(dupes)} repeated)")
        return self

    def allowed_approvers(self) -> set[str] | None:
        """Every name that may decide, groups expanded; None when anyone may."""
        if not self.approvers:
            return None
        names: set[str] = set()
        for entry in self.approvers:
            names.update(self.groups.get(entry, [entry]))
        return names


class Schedule(Strict):
    """When a deployment runs: every ``interval`` or on ``cron``, spread by up
    to ``jitter`` so many environments do not all start at once."""

    interval: Duration | None = None
    cron: str | None = None
    jitter: NonNegativeDuration = Field(default=timedelta(seconds=30), description="0 to start exactly on time")

    @model_validator(mode="after")
    def _exactly_one(self) -> "Schedule":
        if (self.interval is None) == (self.cron is None):
            raise ValueError("give exactly one of interval or cron")
        return self


class SyncWindow(Strict):
    """A stretch of time that closes syncs (``kind: deny``), or one of the only
    stretches that opens them (``kind: allow``): from each time ``schedule`` (a
    five-field cron) fires in ``timezone``, for ``duration``. Scheduled and
    self-heal syncs are skipped while closed, manual ones refused unless
    overridden (`driftgate.sync_guard`; the time arithmetic: `driftgate.windows`)."""

    kind: Literal["deny", "allow"]
    schedule: str = Field(description='five-field cron of when the window opens, e.g. "0 22 * * *"')
    duration: Duration = Field(description="how long it stays open once opened, e.g. 8h")
    timezone: str = Field(default="UTC", description="IANA time zone the cron is read in, e.g. Europe/Berlin")
    name: str | None = Field(default=None, description="shown in the record; default: kind, cron, duration and zone")

    @field_validator("schedule")
    @classmethod
    def _five_field_cron(cls, value: str) -> str:
        from cronsim import CronSim, CronSimError

        if len(value.split()) != 5:
            raise ValueError(f"{value!r} is not a five-field cron expression (minute hour day month weekday), e.g. \"0 22 * * *\"")
        try:
            CronSim(value, datetime.now(UTC))
        except CronSimError as exc:
            raise ValueError(f"{value!r} is not a cron expression ({exc}): use five fields, e.g. \"0 22 * * *\"") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a time zone: use an IANA name such as UTC or Europe/Berlin") from None
        return value

    @property
    def label(self) -> str:
        """How the record and the CLI name the window."""
        if self.name:
            return f"{self.name!r} ({self.schedule} for {human_duration(self.duration)}, {self.timezone})"
        return f"{self.schedule!r} for {human_duration(self.duration)} ({self.timezone})"


def human_duration(value: timedelta) -> str:
    """8h, 90m, 2d: a duration as driftgate.yaml would write it."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{value.total_seconds():g}s"


class SyncSettings(Strict):
    schedule: Schedule | None = None
    windows: list[SyncWindow] = Field(
        default_factory=list, description="deny windows, or the allow windows outside which syncs wait (like Argo CD's)"
    )
    wait: Duration = Field(
        default=timedelta(minutes=30),
        description="how long a sync waits while another sync of the environment runs, then gives up",
    )


class DriftSettings(Strict):
    """The read-only drift check, and what to do when it finds drift:
    ``report`` it, ``sync`` (the sync's gate still applies), or
    ``sync-if-safe`` (only when the correcting plan is not risky)."""

    schedule: Schedule | None = None
    self_heal: Literal["report", "sync-if-safe", "sync"] = "report"


class NotifySettings(Strict):
    """Who hears about what: a Prefect notification block, e.g. a custom webhook."""

    block: str = Field(description="block document slug, e.g. custom-webhook/ops-channel")
    # Not "on": YAML 1.1 reads a bare `on` key as the boolean true.
    events: list[Literal["drift", "failed", "approval"]] = Field(default_factory=lambda: ["drift", "failed", "approval"])


class RenderSettings(Strict):
    """How the source becomes what the target applies.

    Kubernetes: ``kind`` picks plain YAML, kustomize, Jinja2 templates or helm.
    Ansible: the bundle is the playbook; ``templates`` lists driftgate's own.
    """

    kind: Literal["plain", "kustomize", "jinja", "helm"] = "plain"
    values: dict[str, Any] = Field(default_factory=dict, description="values for the templates")
    templates: list[str] = Field(
        default_factory=list,
        description="globs of *.j2 files (relative to source.path) that driftgate renders; "
        "an inventory ending in .j2 is always rendered. Ansible's own templates/ are not listed here.",
    )
    timeout: Duration = Field(default=timedelta(minutes=2), description="per kustomize or helm run")
    age_identity: str | None = Field(
        default=None, description="Kubernetes: a driftgate-age-identity block whose key decrypts *.yaml.age files"
    )
    age_identity_file: str | None = Field(
        default=None, description="Kubernetes: or a file of age identities (AGE-SECRET-KEY-...), for the CLI and the demo"
    )

    @model_validator(mode="after")
    def _one_age_identity(self) -> "RenderSettings":
        if self.age_identity and self.age_identity_file:
            raise ValueError("give either age_identity (a block) or age_identity_file, not both")
        return self


class Promotion(Strict):
    """Where an environment's promotions come from (``driftgate promote``): the
    commit last applied and healthy in ``environment`` for at least ``after``."""

    environment: str = Field(description="the environment promoted from, e.g. staging")
    after: Duration = Field(default=timedelta(minutes=30), description="how long it must have run healthy there")


def _promotion_shorthand(value: Any) -> Any:
    return {"environment": value} if isinstance(value, str) else value


_ENVIRONMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def environment_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name an environment (it becomes deployment names, tags and
    lock names), or None; hand-written and generated names alike."""
    if _ENVIRONMENT_NAME.match(name):
        return None
    return "use letters, digits, '-', '_' and '.', starting with a letter or digit, at most 63 characters"


class Environment(Strict):
    """One environment: a source, how to render it, where to apply it."""

    # Built at first use, when the target kinds are registered (`_RegisteredTargets`).
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    name: str
    source: Source
    render: RenderSettings = RenderSettings()
    target: Target
    approval: ApprovalPolicy = ApprovalPolicy()
    production: bool = False
    sync: SyncSettings = SyncSettings()
    drift: DriftSettings = DriftSettings()
    notify: NotifySettings | None = None
    promote_from: Annotated[Promotion | None, BeforeValidator(_promotion_shorthand)] = None

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if problem := environment_name_problem(value):
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _signers_file_needs_signed_commits(self) -> "Environment":
        # Whoever can push could otherwise list their own key as an approver's in the
        # very commit they want approved, and sign for that approver.
        if self.approval.allowed_signers and not self.source.require_signed_commits:
            raise ValueError(
                "approval.allowed_signers is read from the repository, so source.require_signed_commits must be true "
                "(or anyone who can push could list their own key); or use approval.allowed_signers_block"
            )
        return self


class Generated(Strict):
    """Where a generated environment came from (`driftgate.generators`)."""

    generator: str
    values: dict[str, str | int | float | bool]


class FleetSettings(Strict):
    """``fleet:``: one drift-check run over many environments (flows/fleet.py
    `drift_fleet`), on ``drift_schedule``, for those without a ``drift.schedule`` of their own."""

    drift_schedule: Schedule | None = None
    concurrency: int = Field(default=4, ge=1, le=64, description="environments checked at a time")


class Config(Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    path: Path = Field(description="the driftgate.yaml this came from")
    environments: dict[str, Environment]
    generated: dict[str, Generated] = Field(default_factory=dict, description="environments made by generators:")
    fleet: FleetSettings = FleetSettings()

    def environment(self, name: str) -> Environment:
        try:
            return self.environments[name]
        except KeyError:
            known = ", ".join(sorted(self.environments)) or "none"
            raise ConfigError(
                f"environment {name!r} is not in {self.path} (known: {known})"
            ) from None


def rebuild_target_models() -> None:
    """Validate ``target:`` against the kinds registered now (called by
    `driftgate.targets.register`); models not built yet pick them up when built."""
    for model in (Environment, Config):
        if model.__pydantic_complete__:
            model.model_rebuild(force=True)


def __getattr__(name: str) -> Any:
    # The built-in targets' settings live in their target modules; these names
    # stay importable from here for the engines that import them from here.
    if name in ("AnsibleTarget",):
        from driftgate.targets.ansible import AnsibleSettings

        return AnsibleSettings
    if name in ("KubernetesTarget", "IgnoreRule"):
        from driftgate.targets import kubernetes

        return {"KubernetesTarget": kubernetes.KubernetesSettings, "IgnoreRule": kubernetes.IgnoreRule}[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--config, then $DRIFTGATE_CONFIG, then ./driftgate.yaml."""
    for candidate, origin in (
        (explicit, "--config"),
        (os.environ.get(CONFIG_ENV_VAR), CONFIG_ENV_VAR),
    ):
        if candidate:
            path = Path(candidate).expanduser()
            if not path.is_file():
                raise ConfigError(f"config file {path} (from {origin}) does not exist")
            return path.resolve()
    path = Path.cwd() / DEFAULT_CONFIG_NAME
    if not path.is_file():
        raise ConfigError(
            f"no {DEFAULT_CONFIG_NAME} in {Path.cwd()}: pass --config FILE or set {CONFIG_ENV_VAR}"
        )
    return path


def load_config(explicit: str | os.PathLike[str] | None = None) -> Config:
    """Find, parse and validate driftgate.yaml; raise ConfigError listing every problem."""
    path = find_config(explicit)
    try:
        raw = yamlload.load_file(path) or {}
    except yamlload.YAMLInputError as exc:  # too big, an alias bomb, a duplicate key, not YAML
        raise ConfigError(str(exc)) from None
    return parse_config(raw, path)


def parse_config(raw: Any, path: Path) -> Config:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping with 'environments'")
    problems = [f"unknown key {key!r} at the top level" for key in raw if key not in ("defaults", "environments", "generators", "fleet")]
    defaults = raw.get("defaults") or {}
    envs_raw = raw.get("environments", {} if raw.get("generators") else None)
    if not isinstance(envs_raw, dict) or not (envs_raw or raw.get("generators")):
        problems.append("'environments' must map at least one environment name to its settings")
        envs_raw = {}
    if not isinstance(defaults, dict):
        problems.append("'defaults' must be a mapping")
        defaults = {}
    from driftgate import generators  # it reads Git (driftgate.git), which imports this module

    expansion = generators.expand(raw.get("generators"), envs_raw, defaults, path)
    problems += expansion.problems
    envs_raw = {**envs_raw, **expansion.bodies}
    try:
        fleet = FleetSettings.model_validate(raw.get("fleet") or {})
    except ValidationError as exc:
        fleet = FleetSettings()
        problems.extend(f"fleet.{_describe(err)}" for err in exc.errors())
    if fleet.drift_schedule is not None and "fleet" in envs_raw:
        problems.append("environment 'fleet': its drift-fleet deployment would be the fleet's (fleet.drift_schedule): rename it")

    environments: dict[str, Environment] = {}
    for name, body in envs_raw.items():
        if not isinstance(body, dict):
            problems.append(f"environment {name!r}: must be a mapping of settings")
            continue
        merged = deep_merge(defaults, body)
        _load_plugin_kind(merged.get("target"))
        merged["name"] = str(name)
        resolve_local_paths(merged, path.parent)
        try:
            environments[str(name)] = Environment.model_validate(merged)
        except ValidationError as exc:
            problems.extend(f"environment {name!r}{expansion.origin(str(name))}: {_describe(err)}" for err in exc.errors())
    for name, env in environments.items():
        source = env.promote_from.environment if env.promote_from else None
        if source is not None and (source == name or source not in envs_raw):
            problems.append(f"environment {name!r}: promote_from.environment: {source!r} is not another environment of this file")
    if problems:
        header = f"{path} is invalid ({len(problems)} problem{'s' if len(problems) > 1 else ''}):"
        raise ConfigError("\n  ".join([header, *problems]), problems)
    return Config(path=path, environments=environments, generated=expansion.generated, fleet=fleet)


def _load_plugin_kind(target: Any) -> None:
    """A kind no module registered yet may be an installed plugin's (`driftgate.targets.load_plugins`)."""
    from driftgate import targets

    kind = target.get("kind") if isinstance(target, dict) else None
    if isinstance(kind, str) and kind not in targets.kinds():
        targets.load_plugins()


def _describe(err: dict[str, Any]) -> str:
    from driftgate import targets

    # Drop the discriminator tag pydantic puts in the location ("target.ansible.playbook").
    loc = [str(p) for i, p in enumerate(err["loc"]) if not (i and err["loc"][i - 1] == "target" and p in targets.kinds())]
    where = ".".join(loc)
    message = err["msg"].removeprefix("Value error, ")
    known = " or ".join(", ".join(repr(k) for k in targets.kinds()).rsplit(", ", 1))
    if err["type"] == "extra_forbidden":
        message = "unknown key (check the spelling)"
    elif err["type"] == "union_tag_invalid":
        kind = err.get("input", {}).get("kind")
        message = f"unknown kind {kind!r}: use {known}"
        if isinstance(kind, str) and targets.plugin_error(kind):
            message += f" (the plugin for {kind!r}: {targets.plugin_error(kind)})"
    elif err["type"] == "union_tag_not_found":
        message = f"missing 'kind' (use {known})"
    return f"{where}: {message}" if where else message


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def resolve_local_paths(env: dict[str, Any], base: Path) -> None:
    """A relative repository path or key file is relative to driftgate.yaml, not the cwd."""
    source = env.get("source")
    if not isinstance(source, dict):
        return
    repo = source.get("repo")
    if isinstance(repo, str) and is_local_repo(repo) and not Path(repo).expanduser().is_absolute():
        source["repo"] = str((base / repo).resolve())
    render = env.get("render")
    identity_file = render.get("age_identity_file") if isinstance(render, dict) else None
    if isinstance(identity_file, str) and not Path(identity_file).expanduser().is_absolute():
        render["age_identity_file"] = str((base / identity_file).resolve())
    signers = source.get("allowed_signers")
    if isinstance(signers, list):
        source["allowed_signers"] = [
            s if not isinstance(s, str) or "BEGIN PGP" in s else str((base / s).resolve())
            for s in signers
        ]


def is_local_repo(repo: str) -> bool:
    """True for a filesystem path; False for URLs and scp-style git@host:path."""
    if "://" in repo:
        return repo.startswith("file://")
    return not re.match(r"^[\w.-]+@[\w.-]+:", repo)

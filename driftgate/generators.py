"""Environment generators: many environments from one template (``generators:`` in driftgate.yaml).

Like Argo CD's ApplicationSet list and Git-directory generators::

    generators:
      clinics:                                   # the generator's name
        list:                                    # one environment per entry
          - {tenant: north, namespace: clinic-north}
          - {tenant: south, namespace: clinic-south}
        template:                                # an environment, with {{ key }} placeholders
          name: "clinic-{{tenant}}"
          source: {repo: ./repo, path: "tenants/{{tenant}}"}
          target: {kind: kubernetes, namespace: "{{namespace}}"}
      teams:
        git: {path: teams}                       # one per directory under teams/ in the template's
        template:                                # source.repo at its source.ref
          name: "team-{{path.basename}}"
          source: {repo: ./repo, path: "{{path}}"}
          ...

Substitution is deliberately small: ``{{ key }}`` is replaced by the
generator's value for ``key``, in string values only, in one pass (a value
that itself holds ``{{ }}`` is not expanded again), and nothing else is
evaluated: no expressions, filters or attribute access, so a value written by
a tenant (or a directory name pushed to the repository) cannot reach anything
but the text it lands in. A string that is exactly one placeholder takes the
value's type (``production: "{{prod}}"`` with ``prod: true`` is a boolean).

`expand()` is called by `driftgate.config.parse_config` before validation:
each generated environment is then merged with ``defaults`` and validated
like one written by hand, and `Config.generated` says where it came from
(`driftgate envs`). The Git-directory generator reads the repository through
`driftgate.git.directories` (the same mirror the fetch stage uses).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from driftgate.config import Generated, Source, deep_merge, environment_name_problem, resolve_local_paths, safe_subpath
from driftgate.errors import DriftgateError

_KEY = r"[A-Za-z_][A-Za-z0-9_.-]*"
_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}")
_SIMPLE = re.compile(rf"^\s*({_KEY})\s*$")
_KINDS = ("list", "git")
Scalar = str | int | float | bool


@dataclass
class Expansion:
    """What the generators made: raw environment settings by name (as if written
    under ``environments:``), where each came from, and every problem found."""

    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)
    generated: dict[str, Generated] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def origin(self, name: str) -> str:
        """' (generator NAME: values)' for a generated environment, for its errors; '' for a hand-written one."""
        made = self.generated.get(name)
        return f" (generator {made.generator!r}: {_shown(made.values)})" if made else ""


class _TemplateError(ValueError):
    pass


def expand(raw: Any, hand_written: dict[str, Any], defaults: dict[str, Any], config_path: Path) -> Expansion:
    """Expand every generator of ``raw`` (the ``generators:`` mapping, or None)."""
    result = Expansion()
    if raw is None:
        return result
    if not isinstance(raw, dict):
        result.problems.append("'generators' must map generator names to a generator (list: or git:, and template:)")
        return result
    for name, body in raw.items():
        where = f"generator {str(name)!r}"
        try:
            template, value_sets = _read(where, body, defaults, config_path)
            for values in value_sets:
                _add(result, where, str(name), values, _substitute(template, values, where), hand_written)
        except _TemplateError as exc:
            result.problems.append(str(exc))
    return result


def _read(where: str, body: Any, defaults: dict[str, Any], config_path: Path) -> tuple[dict[str, Any], list[dict[str, Scalar]]]:
    if not isinstance(body, dict):
        raise _TemplateError(f"{where}: must be a mapping with list: or git:, and template:")
    unknown = sorted(set(body) - {*_KINDS, "template"})
    if unknown:
        raise _TemplateError(f"{where}: unknown key {unknown[0]!r} (use list: or git:, and template:)")
    kinds = [k for k in _KINDS if k in body]
    if len(kinds) != 1:
        raise _TemplateError(f"{where}: give exactly one of list: (values per environment) or git: (directories of the repository)")
    template = body.get("template")
    if not isinstance(template, dict) or not isinstance(template.get("name"), str):
        raise _TemplateError(f"{where}: template: must be an environment's settings with a name, e.g. name: \"clinic-{{{{tenant}}}}\"")
    if kinds[0] == "list":
        return template, _list_values(where, body["list"])
    return template, _directory_values(where, body["git"], template, defaults, config_path)


def _list_values(where: str, entries: Any) -> list[dict[str, Scalar]]:
    if not isinstance(entries, list) or not entries:
        raise _TemplateError(f"{where}: list: must be a list of mappings, one per environment (e.g. - {{tenant: north}})")
    found = []
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or not entry:
            raise _TemplateError(f"{where}: list entry {number} must be a mapping of values, e.g. {{tenant: north}}")
        for key, value in entry.items():
            if not (isinstance(key, str) and re.fullmatch(_KEY, key)):
                raise _TemplateError(f"{where}: list entry {number}: {key!r} is not a value name (letters, digits, _ . -)")
            if not isinstance(value, Scalar):
                raise _TemplateError(f"{where}: list entry {number}: {key} must be a string, number or boolean")
        found.append(dict(entry))
    return found


def _directory_values(
    where: str, settings: Any, template: dict[str, Any], defaults: dict[str, Any], config_path: Path
) -> list[dict[str, Scalar]]:
    from driftgate import access, git  # git imports driftgate.config, which imports this module lazily

    if not isinstance(settings, dict) or set(settings) - {"path", "exclude"} or not isinstance(settings.get("path"), str):
        raise _TemplateError(f"{where}: git: must be {{path: DIR, exclude: [NAME, ...]}} (the directories under DIR become environments)")
    exclude = settings.get("exclude") or []
    if not isinstance(exclude, list) or not all(isinstance(e, str) for e in exclude):
        raise _TemplateError(f"{where}: git.exclude must be a list of directory names")
    try:
        path = safe_subpath(settings["path"])
    except ValueError as exc:
        raise _TemplateError(f"{where}: git.path: {exc}") from None
    merged = deep_merge(defaults, template)
    resolve_local_paths(merged, config_path.parent)
    raw_source = {k: v for k, v in (merged.get("source") or {}).items() if k != "path"}
    if _PLACEHOLDER.search(str(raw_source.get("repo", "")) + str(raw_source.get("ref", ""))):
        raise _TemplateError(f"{where}: template source.repo and source.ref are read to list the directories: they cannot hold {{{{ }}}} placeholders")
    try:
        source = Source.model_validate(raw_source)
    except ValidationError as exc:
        first = exc.errors()[0]
        field_name = ".".join(str(p) for p in first["loc"]) or "source"
        raise _TemplateError(f"{where}: template source.{field_name}: {first['msg']} (the repository to list is read from it)") from None
    if source.credentials or source.allowed_signers_block:
        raise _TemplateError(
            f"{where}: the repository is read while driftgate.yaml loads, where Prefect blocks are not: "
            "a Git-directory generator needs a repository readable without source.credentials and allowed_signers_block "
            "(use a list: generator for a private repository)"
        )
    try:
        keys = access.source_signing_keys(source, where) if source.require_signed_commits else []
        commit, names = git.directories(source, path, where=f"{where} (git.path {path!r} in {source.repo} at {source.ref})", signing_keys=keys)
    except DriftgateError as exc:
        raise _TemplateError(str(exc)) from None
    names = [n for n in names if n not in exclude]
    if not names:
        raise _TemplateError(f"{where}: git.path {path!r} has no directories at commit {commit[:12]} of {source.repo}: add one, or fix git.path")
    return [{"path": f"{path}/{n}" if path != "." else n, "path.basename": n} for n in names]


def _substitute(value: Any, values: dict[str, Scalar], where: str) -> Any:
    """``value`` with every ``{{ key }}`` replaced from ``values``, in one pass."""
    if isinstance(value, dict):
        return {k: _substitute(v, values, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, values, where) for v in value]
    if not isinstance(value, str) or "{{" not in value:
        return copy.deepcopy(value)

    def lookup(inner: str) -> Scalar:
        simple = _SIMPLE.match(inner)
        if not simple:
            raise _TemplateError(f"{where}: {{{{{inner}}}}} is not a placeholder: only {{{{ key }}}} is replaced, nothing is evaluated")
        key = simple.group(1)
        if key not in values:
            known = ", ".join(sorted(values))
            raise _TemplateError(f"{where}: the template uses {{{{{key}}}}} but the generator gives only {known}")
        return values[key]

    whole = _PLACEHOLDER.fullmatch(value)
    if whole:
        return lookup(whole.group(1))
    return _PLACEHOLDER.sub(lambda match: _as_text(lookup(match.group(1))), value)


def _as_text(value: Scalar) -> str:
    # YAML's spelling: "debug={{flag}}" with flag: true reads debug=true, as written.
    return str(value).lower() if isinstance(value, bool) else str(value)


def _add(result: Expansion, where: str, generator: str, values: dict[str, Scalar], body: dict[str, Any], hand_written: dict[str, Any]) -> None:
    name = str(body.pop("name"))
    shown = _shown(values)
    if problem := environment_name_problem(name):
        result.problems.append(f"{where} ({shown}): name {name!r}: {problem}")
        return
    if name in hand_written:
        result.problems.append(f"environment {name!r}: generated by {where} ({shown}) and also written under environments: rename one")
        return
    if name in result.generated:
        first = result.generated[name]
        earlier = _shown(first.values)
        result.problems.append(
            f"environment {name!r}: generated twice, by generator {first.generator!r} ({earlier}) and by {where} ({shown}): "
            "make the template's name tell them apart"
        )
        return
    result.bodies[name] = body
    result.generated[name] = Generated(generator=generator, values=values)


def _shown(values: dict[str, Scalar]) -> str:
    return ", ".join(f"{key}={value}" for key, value in values.items())

"""The credentials one environment needs, gathered in one value.

`Access` holds what the stages need to reach the source and the target (Git
credentials, the target kind's own credentials, e.g. SSH access or a
kubeconfig, the allowed signing keys) and a `Masker` that knows every secret
among them. `load_access()` is the one way in, for the credentials task and the
CLI: environments that reference no block get `local_access()`, with no Prefect
involved; the others `blocks.load_access()`, which the caller passes in (the
engine never loads blocks itself).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driftgate import targets
from driftgate.config import Environment, Source
from driftgate.errors import PermanentError
from driftgate.git import GitAuth
from driftgate.models import Stage
from driftgate.secrets import Masker


@dataclass(frozen=True)
class Access:
    git: GitAuth | None = None
    # The target kind's credentials from its blocks (`Target.credentials`): Ansible's
    # SSHAccess, Kubernetes' KubeAccess; None when the target names no block.
    target: Any = None
    signing_keys: list[str] = field(default_factory=list)
    masker: Masker = field(default_factory=Masker)
    age_identities: tuple[str, ...] = ()  # AGE-SECRET-KEY-... lines: decrypt *.yaml.age at render


def load_access(env: Environment, *, from_blocks: Callable[[Environment], Access]) -> Access:
    """What ``env`` needs: ``from_blocks(env)`` (`blocks.load_access`, which needs
    the Prefect API) when it names a block, else `local_access` without Prefect."""
    return from_blocks(env) if uses_blocks(env) else local_access(env)


def uses_blocks(env: Environment) -> bool:
    source = env.source
    target_blocks = targets.target_for(env).blocks(env.target)
    return bool(source.credentials or source.allowed_signers_block or target_blocks or env.render.age_identity)


def config_signing_keys(env: Environment) -> list[str]:
    """allowed_signers from driftgate.yaml: inline armored keys or key files."""
    return source_signing_keys(env.source, f"environment {env.name!r}")


def source_signing_keys(source: Source, where: str) -> list[str]:
    """``source.allowed_signers``: inline armored keys or key files (``where`` names its owner in errors)."""
    keys = []
    for entry in source.allowed_signers:
        if "BEGIN PGP PUBLIC KEY BLOCK" in entry:
            keys.append(entry)
            continue
        path = Path(entry)
        if not path.is_file():
            raise PermanentError(
                f"{where}: allowed_signers file {path} does not exist",
                stage=Stage.FETCH,
            )
        keys.append(path.read_text())
    return keys


def local_access(env: Environment) -> Access:
    """Access for an environment that needs no block."""
    identities = age_identities_from_file(env)
    return Access(signing_keys=config_signing_keys(env), age_identities=identities, masker=Masker(identities))


def age_identities_from_file(env: Environment) -> tuple[str, ...]:
    """The identities in ``render.age_identity_file`` (none when it is not set)."""
    path = env.render.age_identity_file
    if not path:
        return ()
    try:
        text = Path(path).expanduser().read_text()
    except OSError as exc:
        raise PermanentError(
            f"environment {env.name!r}: render.age_identity_file {path} cannot be read ({exc.strerror}): "
            "create it with age-keygen, or fix the path",
            stage=Stage.CONFIG,
        ) from None
    return parse_age_identities(text, f"environment {env.name!r}: render.age_identity_file {path}")


def parse_age_identities(text: str, where: str) -> tuple[str, ...]:
    """AGE-SECRET-KEY-... lines of an age identity file (comments and blank lines
    skipped); each is checked here, so a broken key fails before render, by name only."""
    from pyrage import IdentityError, x25519

    identities = tuple(line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#"))
    if not identities:
        raise PermanentError(f"{where} holds no age identity (AGE-SECRET-KEY-...)", stage=Stage.CONFIG)
    for number, identity in enumerate(identities, 1):
        try:
            x25519.Identity.from_str(identity)
        except IdentityError:
            raise PermanentError(
                f"{where}: identity {number} is not an age X25519 identity (AGE-SECRET-KEY-...)", stage=Stage.CONFIG
            ) from None
    return identities

"""The credentials one environment needs, gathered in one value.

`Access` holds what the stages need to reach the source and the hosts (Git
credentials, SSH access, the allowed signing keys) and a `Masker` that knows
every secret among them. The engine never loads blocks itself: the task layer
(or the CLI) builds an `Access` with `blocks.load_access()`; environments that
reference no block get `local_access()`, with no Prefect involved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driftgate.ansible import SSHAccess
from driftgate.config import Environment
from driftgate.errors import PermanentError
from driftgate.git import GitAuth
from driftgate.models import Stage
from driftgate.secrets import Masker


@dataclass(frozen=True)
class Access:
    git: GitAuth | None = None
    ssh: SSHAccess | None = None
    kube: Any = None  # driftgate.kube.KubeAccess (not imported here: the client is slow to import)
    signing_keys: list[str] = field(default_factory=list)
    masker: Masker = field(default_factory=Masker)


def uses_blocks(env: Environment) -> bool:
    source = env.source
    target_block = getattr(env.target, "ssh", None) or getattr(env.target, "cluster", None)
    return bool(source.credentials or source.allowed_signers_block or target_block)


def config_signing_keys(env: Environment) -> list[str]:
    """allowed_signers from driftgate.yaml: inline armored keys or key files."""
    keys = []
    for entry in env.source.allowed_signers:
        if "BEGIN PGP PUBLIC KEY BLOCK" in entry:
            keys.append(entry)
            continue
        path = Path(entry)
        if not path.is_file():
            raise PermanentError(
                f"environment {env.name!r}: allowed_signers file {path} does not exist",
                stage=Stage.FETCH,
            )
        keys.append(path.read_text())
    return keys


def local_access(env: Environment) -> Access:
    """Access for an environment that needs no block."""
    return Access(signing_keys=config_signing_keys(env))

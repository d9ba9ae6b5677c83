"""The Block types and the loader that turns them into an engine `Access`."""

from __future__ import annotations

import os

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from driftgate import targets
from driftgate.access import Access, age_identities_from_file, config_signing_keys, parse_age_identities
from driftgate.config import Environment
from driftgate.errors import PermanentError
from driftgate.git import GitAuth
from driftgate.models import Stage
from driftgate.secrets import Masker


class GitCredentials(Block):
    """How to read a Git repository: an HTTPS token, or an SSH key."""

    _block_type_name = "driftgate Git credentials"
    _description = "Read access to a Git repository for driftgate (HTTPS token or SSH key)."

    username: str = Field(default="git", description="HTTPS user name (ignored for SSH)")
    token: SecretStr | None = Field(default=None, description="HTTPS token or password")
    ssh_private_key: SecretStr | None = Field(default=None, description="SSH private key (PEM/OpenSSH)")
    known_hosts: str | None = Field(default=None, description="known_hosts lines for the Git server")


class AnsibleSSH(Block):
    """How Ansible reaches remote hosts: a user, a key, and their host keys."""

    _block_type_name = "driftgate Ansible SSH"
    _description = "SSH user, private key and known_hosts for hosts managed by driftgate."

    user: str = Field(default="root", description="remote user")
    private_key: SecretStr = Field(description="SSH private key")
    known_hosts: str = Field(description="known_hosts lines: host-key checking is always on")


class SigningKeys(Block):
    """Public keys whose signatures driftgate accepts on commits."""

    _block_type_name = "driftgate signing keys"
    _description = "Keys allowed to sign deployed commits: armored OpenPGP public keys, or OpenSSH allowed_signers text."

    public_keys: list[str] = Field(description="armored public key blocks, or OpenSSH allowed_signers files' text")


class ApprovalSigners(Block):
    """Who may sign approvals: an OpenSSH allowed_signers file (approval.allowed_signers_block)."""

    _block_type_name = "driftgate approval signers"
    _description = "OpenSSH allowed_signers lines (principal, key) of the people who may sign approvals."

    allowed_signers: str = Field(
        description="allowed_signers file text: one 'name [namespaces=\"driftgate-approval\"] ssh-ed25519 AAAA...' line per key"
    )


class KubernetesCluster(Block):
    """How to reach a Kubernetes cluster: a kubeconfig (and optionally a context)."""

    _block_type_name = "driftgate Kubernetes cluster"
    _description = "A kubeconfig for a cluster driftgate reconciles."

    kubeconfig: SecretStr = Field(description="the kubeconfig file's YAML (may hold tokens and keys)")
    context: str | None = Field(default=None, description="context to use (default: the file's current)")


class AgeIdentity(Block):
    """The key that decrypts Secrets kept encrypted with age in Git (*.yaml.age)."""

    _block_type_name = "driftgate age identity"
    _description = "age identities (AGE-SECRET-KEY-...) that decrypt a Kubernetes environment's *.yaml.age files."

    identity: SecretStr = Field(description="one or more AGE-SECRET-KEY-... lines, as age-keygen writes them")


class DriftgateDatabase(Block):
    """Where the record lives, when it is not the default SQLite file."""

    _block_type_name = "driftgate database"
    _description = "SQLAlchemy URL of driftgate's record (e.g. postgresql+psycopg://...)."

    url: SecretStr = Field(description="database URL, with its password")


BLOCK_TYPES: tuple[type[Block], ...] = (
    GitCredentials, AnsibleSSH, SigningKeys, ApprovalSigners, KubernetesCluster, AgeIdentity, DriftgateDatabase,
)  # fmt: skip


def register_block_types() -> list[str]:
    """Make the types appear on the Prefect UI's Blocks page; returns their slugs."""
    for block_type in BLOCK_TYPES:
        block_type.register_type_and_schema()
    return [b.get_block_type_slug() for b in BLOCK_TYPES]


def _load(block_type: type[Block], name: str, env: Environment, field: str) -> Block:
    try:
        return block_type.load(name)
    except ValueError as exc:
        raise PermanentError(
            f"environment {env.name!r}: {field} names block {name!r}, which cannot be loaded "
            f"({exc}); create a {block_type.get_block_type_slug()} block with that name",
            stage=Stage.CONFIG,
        ) from None


def load_access(env: Environment) -> Access:
    """Everything ``env`` needs to reach its source and hosts, from its blocks."""
    masker = Masker()
    git_auth = None
    keys = config_signing_keys(env)
    if env.source.credentials:
        creds = _load(GitCredentials, env.source.credentials, env, "source.credentials")
        git_auth = GitAuth(
            username=creds.username,
            token=creds.token.get_secret_value() if creds.token else None,
            ssh_private_key=creds.ssh_private_key.get_secret_value() if creds.ssh_private_key else None,
            known_hosts=creds.known_hosts,
        )
        masker.add(*git_auth.secrets())
    credentials = _target_credentials(env, masker)
    if env.source.allowed_signers_block:
        signers = _load(SigningKeys, env.source.allowed_signers_block, env, "source.allowed_signers_block")
        keys.extend(signers.public_keys)
    identities = age_identities_from_file(env)
    if env.render.age_identity:
        block = _load(AgeIdentity, env.render.age_identity, env, "render.age_identity")
        where = f"environment {env.name!r}: render.age_identity block {env.render.age_identity!r}"
        identities = parse_age_identities(block.identity.get_secret_value(), where)
    masker.add(*identities)
    return Access(git=git_auth, target=credentials, signing_keys=keys, masker=masker, age_identities=identities)


def _target_credentials(env: Environment, masker: Masker) -> object:
    """The target kind's credentials, from the blocks its settings name
    (`driftgate.targets.Target.blocks`); their secrets join ``masker``."""
    target = targets.target_for(env)
    refs = target.blocks(env.target)
    if not refs:
        return None
    types = {block_type.__name__: block_type for block_type in BLOCK_TYPES}
    loaded = {ref.field: _load(types[ref.block_type], ref.name, env, f"target.{ref.field}") for ref in refs}
    credentials, secrets = target.credentials(env, loaded)
    masker.add(*secrets)
    return credentials


def load_approval_signers(env: Environment) -> str:
    """The allowed_signers text of ``env``'s approval.allowed_signers_block."""
    block = _load(ApprovalSigners, env.approval.allowed_signers_block, env, "approval.allowed_signers_block")
    return block.allowed_signers


DATABASE_BLOCK_ENV_VAR = "DRIFTGATE_DATABASE_BLOCK"


def record_database_url() -> str | None:
    """The record's URL from the block named by $DRIFTGATE_DATABASE_BLOCK, if set.

    Otherwise None, and the store falls back to $DRIFTGATE_DATABASE_URL or the
    SQLite file under $DRIFTGATE_HOME.
    """
    name = os.environ.get(DATABASE_BLOCK_ENV_VAR)
    if not name:
        return None
    try:
        block = DriftgateDatabase.load(name)
    except ValueError as exc:
        raise PermanentError(
            f"{DATABASE_BLOCK_ENV_VAR} names block {name!r}, which cannot be loaded ({exc}); "
            f"create a {DriftgateDatabase.get_block_type_slug()} block with that name",
            stage=Stage.RECORD,
        ) from None
    return block.url.get_secret_value()

"""Prefect Block types that hold driftgate's connection settings and secrets.

driftgate.yaml refers to blocks by name, so no secret is written in Git. A
person creates them on the Prefect UI's Blocks page (after `driftgate blocks
register`) or in Python (`GitCredentials(token=...).save("deploy-repo")`).
`load_access()` turns the blocks an environment names into the engine's
`Access`; it is called by the flow's first task and by the CLI.
"""

from driftgate.blocks.credentials import (
    AgeIdentity,
    AnsibleSSH,
    ApprovalSigners,
    DriftgateDatabase,
    GitCredentials,
    KubernetesCluster,
    SigningKeys,
    BLOCK_TYPES,
    load_access,
    load_approval_signers,
    record_database_url,
    register_block_types,
)

__all__ = [
    "AgeIdentity",
    "AnsibleSSH",
    "ApprovalSigners",
    "BLOCK_TYPES",
    "DriftgateDatabase",
    "GitCredentials",
    "KubernetesCluster",
    "SigningKeys",
    "load_access",
    "load_approval_signers",
    "record_database_url",
    "register_block_types",
]

"""What an approver's answer holds, and where a paused run publishes what the
CLI needs: the contract between the gate (flows/approval.py, in the flow) and
the API the CLI uses (flows/approvals_api.py, outside it).

A pause publishes its summary as the flow run input ``INFO_PREFIX + key`` and
its verdict on an answer as ``VERDICT_PREFIX + key``, ``key`` being the
pause's key; an answer is an `ApprovalInput` (a `SignedApprovalInput` where
the environment requires signed approvals).
"""

from __future__ import annotations

from prefect.input import RunInput
from pydantic import Field

from driftgate.models import Decision

INFO_PREFIX = "driftgate-"  # flow run input key of a pause's summary, for `driftgate approvals`
VERDICT_PREFIX = "driftgate-verdict-"  # ... and of the flow's verdict on the answer to a pause

APPROVER_HELP = "your name as the environment's approvers list it; the record names you as who decided"


class ApprovalInput(RunInput):
    """What an approver submits. No defaults: an empty resume must not approve."""

    decision: Decision = Field(
        description="approve: apply exactly the plan shown above (asked again if it changes); "
        "reject: apply nothing and end the run as rejected"
    )
    approver: str = Field(min_length=1, description=APPROVER_HELP)
    reason: str = Field(default="", description="why you decided so; kept in the record")


SIGNATURE_HELP = (
    "what the command above printed: -----BEGIN SSH SIGNATURE----- ... (the statement before it may be pasted too); "
    "checked against the environment's allowed_signers for the approver named"
)


class SignedApprovalInput(ApprovalInput):
    """The answer in an environment with approval.require_signature."""

    signature: str = Field(min_length=1, description=SIGNATURE_HELP, json_schema_extra={"format": "textarea"})


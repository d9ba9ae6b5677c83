"""The two kinds of failure a reconcile can meet, after kopf.

`PermanentError` is bad input or a refusal: retrying cannot help (an unknown
ref, an invalid playbook, an unsigned commit). `TransientError` may go away by
itself (a network blip, a locked database): the task layer retries those, and
only those, with backoff. Both carry the `Stage` they happened in, so the
record can say where a run stopped and why.

Raised by every engine module; caught by the flow (to record the run) and by
the CLI (to print one clear line and exit non-zero).
"""

from __future__ import annotations

from driftgate.models import Stage


class DriftgateError(Exception):
    """A failure a person must read: the message names the environment, the
    file or object, and what to do."""

    stage: Stage = Stage.CONFIG

    def __init__(self, message: str, *, stage: Stage | None = None) -> None:
        super().__init__(message)
        if stage is not None:
            self.stage = stage

    @property
    def reason(self) -> str:
        """Flux-style reason code, e.g. ``FetchFailed``."""
        return self.stage.reason


class PermanentError(DriftgateError):
    """Retrying will not help: the input or the policy must change first."""


class TransientError(DriftgateError):
    """May succeed on retry (network, lock contention, a busy server)."""


class ConfigError(PermanentError):
    """driftgate.yaml is missing or invalid; `problems` lists each one."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message, stage=Stage.CONFIG)
        self.problems = problems or []


def is_transient(exc: BaseException) -> bool:
    """Used by the tasks' retry condition: retry transient failures only."""
    return isinstance(exc, TransientError)

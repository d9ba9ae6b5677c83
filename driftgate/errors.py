"""The two kinds of failure a reconcile can meet, after kopf.

`PermanentError` is bad input or a refusal: retrying cannot help (an unknown
ref, an invalid playbook, an unsigned commit, a server that did not answer
within its timeout). `TransientError` may go away by itself (a network blip, a
5xx, a 429): `driftgate.retry` retries those, and only those, in one layer,
with backoff or the delay the error carries (`retry_after`, from a server's
Retry-After). The engine itself never retries. Both carry the `Stage` they
happened in, so the record can say where a run stopped and why.

Raised by every engine module; caught by the flow (to record the run) and by
the CLI (to print one clear line and exit non-zero).
"""

from __future__ import annotations

from driftgate.models import ApplyResult, Stage


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
    """May succeed on retry (network, a busy or restarting server).
    ``retry_after``: seconds the server asked us to wait (Retry-After), if it said."""

    def __init__(self, message: str, *, stage: Stage | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, stage=stage)
        self.retry_after = retry_after


class ApplyFailed(PermanentError):
    """Apply ran and some hosts or objects failed. ``result`` holds every host's
    and object's result, so the run's record stays complete."""

    def __init__(self, environment: str, result: ApplyResult) -> None:
        failures = result.failures or ["ansible-playbook reported failures"]
        super().__init__(f"environment {environment!r}: apply failed: {'; '.join(failures)}", stage=Stage.APPLY)
        self.result = result


class SyncRefused(PermanentError):
    """A sync that may not run now, refused before it changed anything: its
    environment is suspended, a sync window is closed, or the live plan is not
    the saved plan it was asked to apply. The record's outcome is ``refused``."""


class ConfigError(PermanentError):
    """driftgate.yaml is missing or invalid; `problems` lists each one."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message, stage=Stage.CONFIG)
        self.problems = problems or []


def is_transient(exc: BaseException) -> bool:
    """Whether `driftgate.retry` may try again after ``exc``."""
    return isinstance(exc, TransientError)

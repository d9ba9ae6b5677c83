"""The one retry budget: the only place a transient failure is tried again.

A stage that can meet a transient failure (fetch: the Git remote; diff: the
hosts or the Kubernetes API server) runs through `call()`: at most
``ATTEMPTS`` attempts, waiting ``BACKOFF`` seconds between them, or longer
when the error carries the server's Retry-After (`TransientError.retry_after`,
honoured up to ``MAX_WAIT``). Nothing below retries: the Kubernetes client
makes one request per call (urllib3's own retries are off), git and
ansible-playbook run once. Nothing above retries either: the Prefect tasks
and flows set ``retries=0`` themselves, whatever Prefect's defaults say.
Permanent errors, timeouts among them, are raised at once: a server that
does not answer within its timeout is not asked again.

So a stage that keeps failing transiently costs ATTEMPTS attempts and at most
sum(BACKOFF) seconds of waiting (2 x MAX_WAIT when the server asks for more).
Called by fetch and diff in driftgate.pipeline (the tasks and `driftgate plan`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from driftgate.errors import TransientError

T = TypeVar("T")

ATTEMPTS = 3
BACKOFF = (2.0, 8.0)  # seconds before the 2nd and the 3rd attempt
MAX_WAIT = 60.0  # a Retry-After longer than this is cut to it

# Replaced by tests to record the waits instead of sleeping through them.
_sleep: Callable[[float], None] = time.sleep


def delay(retry: int, error: TransientError) -> float:
    """Seconds to wait before retry number ``retry`` (0-based): the backoff, or
    what the server asked for when that is longer, never more than MAX_WAIT."""
    backoff = BACKOFF[min(retry, len(BACKOFF) - 1)]
    return min(max(backoff, error.retry_after or 0.0), MAX_WAIT)


def call(fn: Callable[[], T], *, on_retry: Callable[[int, float, TransientError], None] | None = None) -> T:
    """``fn()``, tried again after a `TransientError` within the budget.
    ``on_retry(attempt, seconds, error)`` is told before each wait (to log it).
    The last error is raised with how many attempts were made."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return fn()
        except TransientError as exc:
            if attempt == ATTEMPTS:
                raise TransientError(
                    f"{exc} (gave up after {ATTEMPTS} attempts)", stage=exc.stage, retry_after=exc.retry_after
                ) from None
            seconds = delay(attempt - 1, exc)
            if on_retry is not None:
                on_retry(attempt, seconds, exc)
            _sleep(seconds)
    raise AssertionError("unreachable")

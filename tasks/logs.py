"""What a run's logs say about a failure: one line for an expected one.

Prefect logs every task or flow that raises at ERROR with the traceback. For
a `DriftgateError` (a render error, an unreachable host, a refused object, a
failed apply) the message already names the environment, the file or object
and what to do: its traceback is only noise in the run's Logs tab. The filter
below keeps the ERROR line and drops the traceback for those; an unexpected
error (a bug) keeps its traceback. Installed on import by tasks/stages.py.
`run_logs_in_terminal` quiets the terminal of `driftgate sync` while its flow runs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from driftgate.errors import DriftgateError

RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs")


class NoTracebackForExpectedFailures(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], DriftgateError):
            record.exc_info, record.exc_text = None, None
        return True


def install() -> None:
    """Add the filter to the loggers of flow and task runs (once)."""
    for name in RUN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, NoTracebackForExpectedFailures) for f in logger.filters):
            logger.addFilter(NoTracebackForExpectedFailures())


class _NoFailureLogs(logging.Filter):
    """The CLI says how a run failed in one line, from the record: Prefect's own
    ERROR lines and tracebacks would only repeat it, at length."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR and not record.exc_info


@contextmanager
def run_logs_in_terminal(*, verbose: bool) -> Iterator[None]:
    """While a flow runs in ``driftgate sync``'s process: Prefect's console handler shows
    warnings only (the run's logs go to the API either way), or with
    ``verbose`` everything from INFO up, tracebacks included."""
    from prefect.logging.handlers import PrefectConsoleHandler

    handlers = [h for h in logging.getLogger().handlers if isinstance(h, PrefectConsoleHandler)]
    levels = [h.level for h in handlers]
    quiet = _NoFailureLogs()
    for handler in handlers:
        if verbose:
            handler.setLevel(logging.INFO)
        else:
            handler.addFilter(quiet)
    try:
        yield
    finally:
        for handler, level in zip(handlers, levels):
            handler.setLevel(level)
            handler.removeFilter(quiet)

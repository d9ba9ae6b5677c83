"""What a run's logs say about a failure: one line for an expected one.

Prefect logs every task or flow that raises at ERROR with the traceback. For
a `DriftgateError` (a render error, an unreachable host, a refused object, a
failed apply) the message already names the environment, the file or object
and what to do: its traceback is only noise in the run's Logs tab. The filter
below keeps the ERROR line and drops the traceback for those; an unexpected
error (a bug) keeps its traceback. Installed on import by tasks/stages.py.
"""

from __future__ import annotations

import logging

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

"""``python -m driftgate.cli``: the same as the ``driftgate`` console script."""

from driftgate.cli import app

app()

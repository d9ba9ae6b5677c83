"""Where driftgate keeps its state on disk.

``DRIFTGATE_HOME`` (default ``~/.driftgate``) holds the Git cache
(``repos/``), rendered bundles (``renders/``), the per-run Ansible directories
while a run lasts (``runs/``) and, unless ``DRIFTGATE_DATABASE_URL`` says
otherwise, the record (``driftgate.db``, SQLite). Read at call time, not at
import, so tests and the demo can point it elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV_VAR = "DRIFTGATE_HOME"
DATABASE_ENV_VAR = "DRIFTGATE_DATABASE_URL"


def home() -> Path:
    path = Path(os.environ.get(HOME_ENV_VAR) or "~/.driftgate").expanduser()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def subdir(name: str) -> Path:
    path = home() / name
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def database_url() -> str:
    return os.environ.get(DATABASE_ENV_VAR) or f"sqlite:///{home() / 'driftgate.db'}"

"""The comparison cache of `plan`: (desired object, live resourceVersion,
ignore rules and force setting) -> what the dry-run comparison found.

An object whose desired form and live resourceVersion did not change since
the last plan needs no dry-run again: an unchanged environment costs its
LISTs only. The entries are masked (driftgate/kube/planning.py stores a Secret's
values only as whether each equals the live one), so they are safe on disk,
one file per environment under the driftgate home's ``kube-cache``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from driftgate import home
from driftgate.config import Environment
from driftgate.kubediff import stable_hash


class ComparisonCache:
    """(desired hash, live resourceVersion, rules) -> comparison; masked, so safe on disk."""

    def __init__(self, env: Environment) -> None:
        self.path = home.subdir("kube-cache") / f"{stable_hash({'env': env.name})[:16]}.json"
        try:
            self.entries: dict[str, dict[str, str]] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.entries = {}
        self.used: dict[str, dict[str, str]] = {}
        self._settings: dict[tuple[int, ...], str] = {}

    def settings_key(self, rules: list, force: bool) -> str:
        """What besides the objects changes a comparison; hashed once per distinct rule set."""
        ids = (*map(id, rules), force)
        if ids not in self._settings:
            self._settings[ids] = stable_hash({"r": [r.model_dump() for r in rules], "f": force})[:16]
        return self._settings[ids]

    def get(self, key: str) -> dict[str, str] | None:
        found = self.entries.get(key)
        if found is not None:
            self.used[key] = found
        return found

    def put(self, key: str, value: dict[str, str]) -> None:
        self.used[key] = value

    def save(self, *, keep_loaded: bool = False) -> None:
        """A plan keeps only what it used: the file stays the size of the
        environment. Apply (``keep_loaded``) adds its entries to those there.

        Written to a file of its own, then renamed over the cache: two plans of
        one environment (a `driftgate plan` beside its drift check) may save at
        once, and each rename moves a whole file; the last one wins."""
        entries = {**self.entries, **self.used} if keep_loaded else self.used
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.stem}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(entries, out)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


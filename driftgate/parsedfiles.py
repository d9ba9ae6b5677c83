"""Plain manifest files already parsed, by Git blob SHA, in this process's memory.

A blob's SHA names its content, so a file Git has not changed since this
process last parsed it needs no second parse, nor a second read from the
object store: a 10,000-file environment after a commit that touched one file,
or a fleet process checking its environments again, parses only the files that
changed. Only plain YAML is kept: not a Jinja2 template (its output depends on
the values), not an age file (its plaintext stays out of every cache).

Bounded by the size of the files kept (`MAX_BYTES` of YAML; parsed, up to
about 18 times that), the least recently used going first; safe across a
fleet's threads. An environment larger than the bound gains nothing (each
render pushes out what the next would find) and costs little more. What is
kept is shared: readers must not change the documents (`driftgate.manifests`
copies each before it labels it). Called by `driftgate.manifests`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

# 10,000 small ConfigMaps (0.7 MiB of YAML) hold 13 MiB parsed: at most about 150 MiB.
MAX_BYTES = 8 << 20

Documents = tuple[tuple[int, Any], ...]  # (index in the file, document), None documents left out


class ParsedFiles:
    """Documents by blob SHA, least recently used out first past ``max_bytes`` of files."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes, self.size = max_bytes, 0
        self._kept: OrderedDict[str, tuple[int, Documents]] = OrderedDict()
        self._lock = threading.Lock()

    def holds(self, sha: str) -> bool:
        with self._lock:
            return sha in self._kept

    def get(self, sha: str) -> Documents | None:
        with self._lock:
            found = self._kept.get(sha)
            if found is None:
                return None
            self._kept.move_to_end(sha)
            return found[1]

    def put(self, sha: str, size: int, documents: Documents) -> None:
        if size > self.max_bytes:
            return
        with self._lock:
            if sha in self._kept:
                return
            self._kept[sha] = (size, documents)
            self.size += size
            while self.size > self.max_bytes:
                _, (dropped, _) = self._kept.popitem(last=False)
                self.size -= dropped

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()
            self.size = 0


PARSED = ParsedFiles()

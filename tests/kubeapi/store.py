"""The double's etcd: objects by (group, plural, namespace, name), a global revision, events.

Every write goes through :meth:`Store.put` or :meth:`Store.delete`, which bump the
global ``resourceVersion`` counter (the real server exposes etcd's revision the same
way: one counter across all kinds, as a decimal string) and append a watch event.
Reads return deep copies, so callers can never mutate stored state by accident.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable

Key = tuple[str, str]  # (group, plural)


@dataclass(frozen=True)
class Event:
    """A watch event: ``ADDED``/``MODIFIED``/``DELETED`` of ``obj`` at revision ``rv``."""

    rv: int
    type: str
    key: Key
    namespace: str
    obj: dict[str, Any]


class Store:
    """In-memory object storage with a global revision and a bounded event history."""

    def __init__(self, *, start_revision: int = 1000, history: int = 20000) -> None:
        self.lock = threading.RLock()
        self._objects: dict[Key, dict[tuple[str, str], dict[str, Any]]] = {}
        self.revision = start_revision
        self._events: list[Event] = []
        self._history = history
        self._listeners: list[Callable[[], None]] = []

    # -- reads -------------------------------------------------------------------------
    def get(self, key: Key, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            obj = self._objects.get(key, {}).get((namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, key: Key, namespace: str | None = None) -> list[dict[str, Any]]:
        """Objects of ``key`` (in ``namespace``, or all), sorted by namespace then name."""
        with self.lock:
            items = [copy.deepcopy(o) for (ns, _), o in self._objects.get(key, {}).items()
                     if namespace is None or ns == namespace]
        return sorted(items, key=lambda o: (o["metadata"].get("namespace", ""),
                                            o["metadata"]["name"]))

    def keys(self) -> list[Key]:
        with self.lock:
            return list(self._objects)

    def namespaced_keys_in(self, namespace: str) -> list[tuple[Key, str]]:
        with self.lock:
            return [(k, name) for k, objs in self._objects.items()
                    for (ns, name) in objs if ns == namespace]

    # -- writes ------------------------------------------------------------------------
    def next_revision(self) -> int:
        with self.lock:
            self.revision += 1
            return self.revision

    def put(self, key: Key, obj: dict[str, Any]) -> dict[str, Any]:
        """Store ``obj`` with a new ``resourceVersion``; returns the stored copy."""
        with self.lock:
            meta = obj["metadata"]
            ns, name = meta.get("namespace", ""), meta["name"]
            bucket = self._objects.setdefault(key, {})
            existed = (ns, name) in bucket
            rv = self.next_revision()
            meta["resourceVersion"] = str(rv)
            bucket[(ns, name)] = copy.deepcopy(obj)
            self._record(Event(rv, "MODIFIED" if existed else "ADDED", key, ns,
                               copy.deepcopy(obj)))
            return copy.deepcopy(obj)

    def delete(self, key: Key, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            obj = self._objects.get(key, {}).pop((namespace, name), None)
            if obj is None:
                return None
            rv = self.next_revision()
            obj["metadata"]["resourceVersion"] = str(rv)
            self._record(Event(rv, "DELETED", key, namespace, copy.deepcopy(obj)))
            return copy.deepcopy(obj)

    def drop_key(self, key: Key) -> list[dict[str, Any]]:
        """Delete every object of ``key`` (a CRD went away)."""
        with self.lock:
            gone = [self.delete(key, ns, name) for (ns, name) in list(self._objects.get(key, {}))]
            self._objects.pop(key, None)
            return [g for g in gone if g]

    def clear(self) -> None:
        with self.lock:
            self._objects.clear()
            self._events.clear()

    # -- events ------------------------------------------------------------------------
    def _record(self, event: Event) -> None:
        self._events.append(event)
        if len(self._events) > self._history:
            del self._events[: len(self._events) - self._history]
        for fn in list(self._listeners):
            fn()

    def add_listener(self, fn: Callable[[], None]) -> None:
        self._listeners.append(fn)

    def oldest_revision(self) -> int:
        with self.lock:
            return self._events[0].rv if self._events else self.revision

    def events_since(self, rv: int, keys: Iterable[Key]) -> list[Event]:
        wanted = set(keys)
        with self.lock:
            return [e for e in self._events if e.rv > rv and e.key in wanted]

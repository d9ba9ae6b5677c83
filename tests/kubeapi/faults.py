"""Request accounting and fault injection, driven from tests.

:class:`RequestLog` records every request the double served as a :class:`Request`
(method, path, Kubernetes verb, resource, dry-run flag, response code) so tests and
benchmarks can assert how many LISTs or dry-run PATCHes a client made.

:class:`FaultRule` makes matching requests fail (any status code, ``429`` with
``Retry-After``) or slow (added latency), for the next ``times`` matches or forever.
Both are reachable from Python (``KubeAPIDouble.inject_fault``) and over HTTP under
``/_double/`` (see :mod:`tests.kubeapi.server`).
"""

from __future__ import annotations

import fnmatch
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Request:
    """One served request."""

    method: str
    path: str
    query: dict[str, str]
    verb: str            # get list watch create update patch apply delete deletecollection, or ""
    group: str
    version: str
    resource: str        # plural, "" for discovery and other non-resource paths
    subresource: str
    namespace: str
    name: str
    dry_run: bool
    content_type: str
    status: int
    user_agent: str
    time: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RequestLog:
    """Thread-safe list of :class:`Request` with counting helpers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Request] = []

    def add(self, req: Request) -> None:
        with self._lock:
            self._items.append(req)

    def all(self) -> list[Request]:
        with self._lock:
            return list(self._items)

    def reset(self) -> None:
        with self._lock:
            self._items.clear()

    def filter(self, *, method: str | None = None, verb: str | None = None,
               resource: str | None = None, namespace: str | None = None,
               name: str | None = None, path: str | None = None,
               dry_run: bool | None = None, status: int | None = None) -> list[Request]:
        """Requests matching every given criterion (``path`` is a glob, e.g. ``/api/v1/*``)."""
        out = []
        for r in self.all():
            if method and r.method != method.upper():
                continue
            if verb and r.verb != verb:
                continue
            if resource and r.resource != resource:
                continue
            if namespace is not None and r.namespace != namespace:
                continue
            if name is not None and r.name != name:
                continue
            if path and not fnmatch.fnmatchcase(r.path, path):
                continue
            if dry_run is not None and r.dry_run != dry_run:
                continue
            if status is not None and r.status != status:
                continue
            out.append(r)
        return out

    def count(self, **criteria: Any) -> int:
        return len(self.filter(**criteria))


@dataclass
class FaultRule:
    """Fail or delay requests matching ``method``/``path``/``verb``/``resource``.

    ``path`` is a glob (``*`` crosses ``/``) or, when it starts with ``^``, a regex.
    ``status=None`` with ``latency`` only slows requests down. ``times=None`` means
    every matching request; otherwise the rule retires after that many matches.
    """

    method: str = "*"
    path: str = "*"
    verb: str | None = None
    resource: str | None = None
    status: int | None = 500
    times: int | None = 1
    retry_after: int | None = None
    latency: float = 0.0
    message: str | None = None
    reason: str | None = None
    hits: int = field(default=0)
    id: int = field(default=0)

    def matches(self, method: str, path: str, verb: str, resource: str) -> bool:
        if self.method not in ("*", method.upper()):
            return False
        if self.path.startswith("^"):
            if not re.search(self.path, path):
                return False
        elif not fnmatch.fnmatchcase(path, self.path):
            return False
        if self.verb and self.verb != verb:
            return False
        if self.resource and self.resource != resource:
            return False
        return True

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_DEFAULT_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
                    409: "Conflict", 410: "Expired", 422: "Invalid", 429: "TooManyRequests",
                    500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}


def default_reason(status: int) -> str:
    return _DEFAULT_REASONS.get(status, "InternalError" if status >= 500 else "BadRequest")


class Faults:
    """The active fault rules."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._ids = 0

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._ids += 1
            rule.id = self._ids
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def remove(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules = [r for r in self._rules if r is not rule]

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def take(self, method: str, path: str, verb: str, resource: str) -> tuple[float, FaultRule | None]:
        """Total latency to add and the first error rule that fires for this request."""
        latency, error = 0.0, None
        with self._lock:
            for rule in self._rules:
                if rule.exhausted or not rule.matches(method, path, verb, resource):
                    continue
                if rule.status is None:
                    latency += rule.latency
                    rule.hits += 1
                elif error is None:
                    latency += rule.latency
                    rule.hits += 1
                    error = rule
            self._rules = [r for r in self._rules if not r.exhausted]
        return latency, error


def now() -> float:
    return time.time()

"""Kubernetes ``Status`` error objects, shaped exactly like the real API server's.

Every handler in :mod:`tests.kubeapi.server` raises :class:`ApiError`; the server turns
it into the JSON body ``{"kind": "Status", "apiVersion": "v1", "status": "Failure", ...}``
that clients (``kubectl``, the ``kubernetes`` Python client) parse.
"""

from __future__ import annotations

from typing import Any

# HTTP code for each Status "reason" the double uses (metav1.StatusReason).
REASON_CODES = {
    "BadRequest": 400,
    "Unauthorized": 401,
    "Forbidden": 403,
    "NotFound": 404,
    "MethodNotAllowed": 405,
    "NotAcceptable": 406,
    "AlreadyExists": 409,
    "Conflict": 409,
    "Gone": 410,
    "Expired": 410,
    "UnsupportedMediaType": 415,
    "Invalid": 422,
    "TooManyRequests": 429,
    "InternalError": 500,
    "ServiceUnavailable": 503,
    "Timeout": 504,
}


class ApiError(Exception):
    """An error answered with a ``Status`` body (``code`` is the HTTP status)."""

    def __init__(self, reason: str, message: str, *, code: int | None = None,
                 details: dict[str, Any] | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.code = code if code is not None else REASON_CODES.get(reason, 500)
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        """The ``Status`` object for the response body."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    """``404 NotFound`` as for a GET of a missing object: ``configmaps "x" not found``."""
    qualified = f"{resource}.{group}" if group else resource
    return ApiError("NotFound", f'{qualified} "{name}" not found',
                    details={"name": name, "group": group, "kind": resource} if group
                    else {"name": name, "kind": resource})


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    """``409 AlreadyExists`` for a POST of an existing name."""
    qualified = f"{resource}.{group}" if group else resource
    details = {"name": name, "kind": resource}
    if group:
        details["group"] = group
    return ApiError("AlreadyExists", f'{qualified} "{name}" already exists', details=details)


def conflict(resource: str, name: str, group: str = "", why: str = "") -> ApiError:
    """``409 Conflict`` for an optimistic-concurrency failure (stale resourceVersion)."""
    qualified = f"{resource}.{group}" if group else resource
    details = {"name": name, "kind": resource}
    if group:
        details["group"] = group
    return ApiError("Conflict",
                    f'Operation cannot be fulfilled on {qualified} "{name}": {why}',
                    details=details)


def invalid(kind: str, name: str, causes: list[tuple[str, str, str]], group: str = "") -> ApiError:
    """``422 Invalid``; ``causes`` are ``(reason, field, message)`` triples.

    The message reads like the real one:
    ``ConfigMap "x" is invalid: metadata.name: Required value: name or generateName is required``.
    """
    parts = [f"{field}: {message}" for _, field, message in causes]
    text = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    details: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "causes": [{"reason": r, "message": m, "field": f} for r, f, m in causes],
    }
    if group:
        details["group"] = group
    return ApiError("Invalid", f'{kind}{"." + group if group else ""} "{name}" is invalid: {text}',
                    details=details)


def bad_request(message: str) -> ApiError:
    """``400 BadRequest``."""
    return ApiError("BadRequest", message)

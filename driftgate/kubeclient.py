"""The only module that talks to a Kubernetes API server.

`Cluster` wraps the official client's `ApiClient` (kubeconfig, auth, TLS)
with the handful of REST calls driftgate needs: discovery, LIST, GET,
server-side apply (dry-run or real) and DELETE. Transient failures (5xx,
429 with Retry-After, timeouts) are retried with backoff here, so callers
see either a result or a `KubeError` that says whether it is permanent.
Used by `driftgate.kube` (plan, apply, prune, health).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from driftgate.errors import PermanentError, TransientError
from driftgate.models import Stage

log = logging.getLogger(__name__)

FIELD_MANAGER = "driftgate"
RETRIES = 4
_DISCOVERY: dict[str, dict[str, dict[str, "Resource"]]] = {}  # host -> apiVersion -> kind -> Resource


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the REST API (from discovery)."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def path(self, namespace: str = "", name: str = "") -> str:
        base = f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return f"{base}/{name}" if name else base


class KubeError(Exception):
    """An API call failed; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, *, status: int, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body or {}

    @property
    def transient(self) -> bool:
        return self.status in (0, 429) or self.status >= 500

    def conflicts(self) -> list[str]:
        """For a 409 from apply: 'field (manager)' per conflicting field."""
        causes = (self.body.get("details") or {}).get("causes") or []
        return [f"{c.get('field', '?')}: {c.get('message', '')}" for c in causes]


def connect(*, kubeconfig: str | None = None, kubeconfig_data: dict[str, Any] | None = None,
            context: str | None = None, request_timeout: float = 30) -> "Cluster":
    """A Cluster from a kubeconfig (a dict from a block, a file, or the default)."""
    try:
        if kubeconfig_data is not None:
            api_client = k8s_config.new_client_from_config_dict(kubeconfig_data, context=context)
        else:
            api_client = k8s_config.new_client_from_config(config_file=kubeconfig, context=context)
    except (k8s_config.ConfigException, OSError, TypeError) as exc:
        raise PermanentError(f"cannot load the kubeconfig: {exc}", stage=Stage.DIFF) from None
    return Cluster(api_client, request_timeout=request_timeout)


class Cluster:
    def __init__(self, api_client: k8s.ApiClient, *, request_timeout: float = 30) -> None:
        self.api_client = api_client
        self.request_timeout = request_timeout
        # Discovery is kept for the process (per API server): a plan then costs its LISTs only.
        self._discovered = _DISCOVERY.setdefault(self.host, {})
        self.requests = 0  # what this client sent, for benchmarks and tests

    @property
    def host(self) -> str:
        return self.api_client.configuration.host

    # ------------------------------------------------------------ discovery

    def resource(self, api_version: str, kind: str, *, refresh: bool = False) -> Resource | None:
        """The REST resource for a kind, or None if the server does not serve it.
        A kind missing from what was discovered earlier is looked up again once
        (a CRD may have been added since)."""
        known = self._discovered.get(api_version)
        if known is not None and kind not in known and not refresh:
            refresh = True
        if refresh or api_version not in self._discovered:
            path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
            try:
                body = self.request("GET", path)
            except KubeError as exc:
                if exc.status == 404:
                    self._discovered[api_version] = {}
                    return None
                raise
            self._discovered[api_version] = {
                r["kind"]: Resource(api_version, r["kind"], r["name"], bool(r.get("namespaced")))
                for r in body.get("resources", [])
                if "/" not in r["name"]
            }
        return self._discovered[api_version].get(kind)

    # ------------------------------------------------------------ verbs

    def list(self, resource: Resource, *, label_selector: str | None = None) -> list[dict[str, Any]]:
        """Every object of a kind, across namespaces (one request)."""
        query = [("labelSelector", label_selector)] if label_selector else []
        return self.request("GET", resource.path(), query=query).get("items", [])

    def get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.request("GET", resource.path(namespace, name))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def apply(self, resource: Resource, obj: dict[str, Any], *, dry_run: bool, force: bool) -> dict[str, Any]:
        """Server-side apply as field manager ``driftgate``."""
        metadata = obj["metadata"]
        query = [("fieldManager", FIELD_MANAGER), ("force", "true" if force else "false")]
        if dry_run:
            query.append(("dryRun", "All"))
        return self.request(
            "PATCH",
            resource.path(metadata.get("namespace", ""), metadata["name"]),
            query=query,
            body=obj,
            content_type="application/apply-patch+yaml",
        )

    def delete(self, resource: Resource, namespace: str, name: str) -> None:
        try:
            self.request("DELETE", resource.path(namespace, name), body={"propagationPolicy": "Background"},
                         content_type="application/json")
        except KubeError as exc:
            if exc.status != 404:  # already gone is what we wanted
                raise

    # ------------------------------------------------------------ transport

    def request(self, method: str, path: str, *, query: list[tuple[str, str]] | None = None,
                body: Any = None, content_type: str | None = None) -> dict[str, Any]:
        """One REST call with retries for transient failures; returns the JSON body."""
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        for attempt in range(RETRIES + 1):
            self.requests += 1
            try:
                response = self.api_client.call_api(
                    path, method, query_params=query or [], header_params=headers, body=body,
                    auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True,
                    _request_timeout=self.request_timeout,
                )
                data = response.data
                return json.loads(data) if data else {}
            except ApiException as exc:
                error = _error(method, path, exc.status or 0, exc.body, exc.reason)
                retry_after = _retry_after(exc.headers)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                error = KubeError(f"{method} {path}: no answer from {self.host}: {exc}", status=0)
                retry_after = None
            if not error.transient or attempt == RETRIES:
                raise error
            delay = retry_after if retry_after is not None else min(0.2 * 2**attempt, 5)
            log.info("retrying %s %s in %.1fs: %s", method, path, delay, error)
            time.sleep(delay)
        raise AssertionError("unreachable")


def _retry_after(headers: Any) -> float | None:
    value = (headers or {}).get("Retry-After")
    try:
        return min(float(value), 30.0) if value is not None else None
    except ValueError:
        return None


def _error(method: str, path: str, status: int, raw: Any, reason: str | None) -> KubeError:
    try:
        body = json.loads(raw) if raw else {}
    except (TypeError, ValueError):
        body = {}
    message = body.get("message") or reason or "error"
    return KubeError(f"{method} {path}: {status} {message}", status=status, body=body)


def as_driftgate_error(exc: KubeError, where: str, stage: Stage) -> PermanentError | TransientError:
    """A client failure as the error class the task layer retries (or not)."""
    cls = TransientError if exc.transient else PermanentError
    return cls(f"{where}: {exc}", stage=stage)

"""The only module that talks to a Kubernetes API server.

`Cluster` wraps the official client's `ApiClient` (kubeconfig, auth, TLS)
with the handful of REST calls driftgate needs: discovery, LIST, GET,
server-side apply (dry-run or real) and DELETE. Each call is exactly one
HTTP request: nothing is retried here (urllib3's own retries are off too),
so a failing server costs what `driftgate.retry`, the one retry layer,
allows. A `KubeError` says what kind of failure it was: transient (5xx, 429
with its Retry-After, no connection), a timeout (no answer within
``target.request_timeout``: permanent, asking again would wait as long
again), or a refusal (any other 4xx). Used by `driftgate.kube` (plan,
apply, prune, health).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from driftgate.errors import PermanentError, TransientError
from driftgate.models import Stage


FIELD_MANAGER = "driftgate"
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
    """An API call failed; ``status`` is the HTTP status (0: no answer),
    ``timed_out`` whether the answer did not come within the request timeout,
    ``retry_after`` the seconds a 429/503 asked us to wait."""

    def __init__(self, message: str, *, status: int, body: dict[str, Any] | None = None,
                 timed_out: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body or {}
        self.timed_out = timed_out
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        """May work if asked again later (5xx, 429, no connection); never a timeout."""
        return not self.timed_out and (self.status in (0, 429) or self.status >= 500)

    @property
    def refusal(self) -> bool:
        """The server answered and said no to this request (a 4xx other than 429):
        about this object, not about the server."""
        return 400 <= self.status < 500 and self.status != 429

    def conflicts(self) -> list[str]:
        """For a 409 from apply: 'field (manager)' per conflicting field."""
        causes = (self.body.get("details") or {}).get("causes") or []
        return [f"{c.get('field', '?')}: {c.get('message', '')}" for c in causes]


def connect(*, kubeconfig: str | None = None, kubeconfig_data: dict[str, Any] | None = None,
            context: str | None = None, request_timeout: float = 30) -> "Cluster":
    """A Cluster from a kubeconfig (a dict from a block, a file, or the default)."""
    configuration = k8s.Configuration()
    # urllib3 would retry every failed request 3 more times, under our budget's
    # feet (a slow server cost 4 x the timeout per request): one request per call.
    configuration.retries = False
    try:
        if kubeconfig_data is not None:
            api_client = k8s_config.new_client_from_config_dict(
                kubeconfig_data, context=context, client_configuration=configuration
            )
        else:
            api_client = k8s_config.new_client_from_config(
                config_file=kubeconfig, context=context, client_configuration=configuration
            )
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

    def list(self, resource: Resource, *, namespace: str = "", label_selector: str | None = None) -> list[dict[str, Any]]:
        """The objects of a kind in one namespace, or across namespaces (one request)."""
        query = [("labelSelector", label_selector)] if label_selector else []
        return self.request("GET", resource.path(namespace), query=query).get("items", [])

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
        """One REST call, one HTTP request; returns the JSON body or raises `KubeError`."""
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        self.requests += 1
        try:
            response = self.api_client.call_api(
                path, method, query_params=query or [], header_params=headers, body=body,
                auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True,
                _request_timeout=self.request_timeout,
            )
        except ApiException as exc:
            raise _error(method, path, exc.status or 0, exc.body, exc.reason, _retry_after(exc.headers)) from None
        except urllib3.exceptions.TimeoutError as exc:
            # NewConnectionError is a ConnectTimeoutError too, for history's sake: a refused
            # connection is no timeout (it comes back at once, and may work a moment later).
            if not isinstance(exc, urllib3.exceptions.NewConnectionError):
                raise KubeError(
                    f"{method} {path}: no answer from {self.host} within {self.request_timeout:g} s "
                    "(target.request_timeout); not asked again", status=0, timed_out=True,
                ) from None
            raise KubeError(f"{method} {path}: no answer from {self.host}: {exc}", status=0) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeError(f"{method} {path}: no answer from {self.host}: {exc}", status=0) from None
        data = response.data
        return json.loads(data) if data else {}


def _retry_after(headers: Any) -> float | None:
    """Retry-After in seconds (the API server sends seconds, never an HTTP date),
    as the server said it: driftgate.retry, the one that waits, caps the wait."""
    value = (headers or {}).get("Retry-After")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


def _error(method: str, path: str, status: int, raw: Any, reason: str | None, retry_after: float | None) -> KubeError:
    try:
        body = json.loads(raw) if raw else {}
    except (TypeError, ValueError):
        body = {}
    message = body.get("message") or reason or "error"
    return KubeError(f"{method} {path}: {status} {message}", status=status, body=body, retry_after=retry_after)


def as_driftgate_error(exc: KubeError, where: str, stage: Stage) -> PermanentError | TransientError:
    """A client failure as the error class `driftgate.retry` retries (or not),
    carrying the server's Retry-After."""
    if exc.transient:
        return TransientError(f"{where}: {exc}", stage=stage, retry_after=exc.retry_after)
    return PermanentError(f"{where}: {exc}", stage=stage)

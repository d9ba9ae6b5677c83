"""HTTP front of the double: routes the real Kubernetes REST paths to :class:`Cluster`.

:class:`KubeAPIDouble` runs an aiohttp server on ``127.0.0.1`` in a background thread::

    with KubeAPIDouble() as api:
        api.url                       # http://127.0.0.1:<port>
        api.kubeconfig_path           # a kubeconfig for kubectl / kubernetes.config
        api.inject_fault(method="PATCH", path="/apis/apps/v1/*", status=500, times=2)
        api.count(verb="list", resource="configmaps")
        api.reset_requests()

Besides the Kubernetes API it serves a control API under ``/_double/`` (requests,
faults, settings, reset) for processes that only have the URL — see ``_control``.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import tempfile
import threading
import time
from dataclasses import fields as dc_fields
from typing import Any

import yaml
from aiohttp import web

from . import discovery, protobuf, tables
from .cluster import APPLY_TYPES, Cluster, Options
from .controller import ControllerSettings
from .errors import ApiError, bad_request, not_found
from .merge import json_merge_patch, json_patch
from .faults import FaultRule, Faults, Request, RequestLog, default_reason
from .resources import ResourceType
from .store import Event

JSON = "application/json"
_TICK = 0.02


class _Route:
    """What a request path addresses."""

    def __init__(self, rt: ResourceType | None = None, namespace: str | None = None,
                 name: str = "", subresource: str = "", group: str = "", version: str = ""):
        self.rt, self.namespace, self.name, self.subresource = rt, namespace, name, subresource
        self.group, self.version = group, version


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


class KubeAPIServer:
    """The aiohttp application: routing, verbs, watch streams, faults, request log."""

    def __init__(self, cluster: Cluster, *, log: RequestLog | None = None,
                 faults: Faults | None = None) -> None:
        self.cluster = cluster
        self.log = log or RequestLog()
        self.faults = faults or Faults()
        self.address = "127.0.0.1:0"
        self._changed: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closing = False  # set on shutdown: open watches end
        cluster.store.add_listener(self._on_store_change)

    # -- wiring ------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        app.on_startup.append(self._startup)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _startup(self, app: web.Application) -> None:
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._ticker = asyncio.create_task(self._tick_forever())

    async def _cleanup(self, app: web.Application) -> None:
        self.closing = True
        self._wake()
        self._ticker.cancel()

    async def _tick_forever(self) -> None:
        while True:
            try:
                self.cluster.controller.tick()
            except Exception:  # a controller bug must not stop the server
                import logging
                logging.getLogger(__name__).exception("controller tick failed")
            await asyncio.sleep(_TICK)

    def _on_store_change(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    # -- routing -----------------------------------------------------------------------
    def _route(self, path: str) -> _Route | None:
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 2 and parts[0] == "api" and parts[1] == "v1":
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        if not rest:
            return None
        reg = self.cluster.registry
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            maybe = reg.lookup(group, version, rest[2])
            if maybe is not None and maybe.namespaced:
                namespace, rest = rest[1], rest[2:]
        rt = reg.lookup(group, version, rest[0])
        if rt is None:
            raise ApiError("NotFound", "the server could not find the requested resource",
                           details={})
        if rt.namespaced is False and namespace is not None:
            raise ApiError("NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if len(rest) > 3 or (sub and sub not in ("status", "scale")) or \
                (sub == "status" and not rt.status_subresource) or \
                (sub == "scale" and not rt.scale_subresource):
            raise ApiError("NotFound", "the server could not find the requested resource")
        return _Route(rt, namespace, name, sub, group, version)

    @staticmethod
    def _verb(method: str, route: _Route | None, query: dict[str, str], ctype: str) -> str:
        if route is None:
            return "get" if method == "GET" else method.lower()
        if method == "GET":
            if _truthy(query.get("watch")):
                return "watch"
            return "get" if route.name else "list"
        if method == "POST":
            return "create"
        if method == "PUT":
            return "update"
        if method == "PATCH":
            return "apply" if ctype.split(";")[0].strip() in APPLY_TYPES else "patch"
        if method == "DELETE":
            return "delete" if route.name else "deletecollection"
        return method.lower()

    # -- entry point -------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith("/_double/"):
            return await self._control(request)
        query = dict(request.query)
        ctype = request.headers.get("Content-Type", "")
        route: _Route | None = None
        try:
            route = self._route(path)
        except ApiError:
            route = None
            route_error = True
        else:
            route_error = False
        verb = self._verb(request.method, route, query, ctype)
        rt = route.rt if route else None
        status = 500
        try:
            latency, rule = self.faults.take(request.method, path, verb, rt.plural if rt else "")
            if latency:
                await asyncio.sleep(latency)
            if rule is not None:
                raise self._fault_error(rule)
            if route_error:
                self._route(path)  # raises the routing error
            response = await self._dispatch(request, route, verb, query, ctype)
            status = response.status
            return response
        except ApiError as exc:
            status = exc.code
            return self._error(exc)
        except Exception as exc:  # noqa: BLE001 - report as the real server would
            import logging
            logging.getLogger(__name__).exception("kubeapi double: %s %s", request.method, path)
            status = 500
            return self._error(ApiError("InternalError", f"Internal error occurred: {exc!r}"))
        finally:
            self.log.add(Request(
                method=request.method, path=path, query=query, verb=verb,
                group=route.group if route else "", version=route.version if route else "",
                resource=rt.plural if rt else "", subresource=route.subresource if route else "",
                namespace=(route.namespace or "") if route else "",
                name=route.name if route else "", dry_run=query.get("dryRun") == "All",
                content_type=ctype, status=status,
                user_agent=request.headers.get("User-Agent", ""), time=time.time()))

    @staticmethod
    def _fault_error(rule: FaultRule) -> ApiError:
        reason = rule.reason or default_reason(rule.status or 500)
        headers = {}
        details: dict[str, Any] | None = None
        if rule.retry_after is not None:
            headers["Retry-After"] = str(rule.retry_after)
            details = {"retryAfterSeconds": rule.retry_after}
        message = rule.message or (
            "the server has received too many requests and has asked us to try again later"
            if rule.status == 429 else f"injected fault ({rule.status})")
        return ApiError(reason, message, code=rule.status, details=details, headers=headers)

    @staticmethod
    def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None
              ) -> web.Response:
        return web.Response(body=json.dumps(body).encode(), status=status,
                            content_type=JSON, headers=headers)

    def _error(self, exc: ApiError) -> web.Response:
        return self._json(exc.status(), exc.code, exc.headers)

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            return {}
        ctype = request.headers.get("Content-Type", JSON).split(";")[0].strip()
        if ctype == "application/vnd.kubernetes.protobuf":
            try:
                return protobuf.decode(raw)
            except (ValueError, IndexError) as exc:
                raise ApiError("UnsupportedMediaType", f"the body of the request was in an "
                               f"unknown format - accepted media types include: "
                               f"application/json, application/yaml ({exc})") from None
        _check_media_type(ctype)
        try:
            if ctype in ("application/yaml", "application/x-yaml"):
                return yaml.safe_load(raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise bad_request(f"the body of the request was in an unknown format: {exc}") from None

    def _options(self, request: web.Request, query: dict[str, str]) -> Options:
        dry = query.get("dryRun")
        if dry not in (None, "", "All"):
            raise bad_request(f'Invalid dry run value: "{dry}": supported values: "All"')
        force = query.get("force")
        validation = query.get("fieldValidation", "")
        if validation not in ("", "Strict", "Warn", "Ignore"):
            raise bad_request(f'fieldValidation: Unsupported value: "{validation}": supported '
                              'values: "Ignore", "Strict", "Warn"')
        return Options(dry_run=dry == "All", field_manager=query.get("fieldManager", ""),
                       field_validation=validation,
                       force=_truthy(force),
                       user_agent=request.headers.get("User-Agent", ""))

    async def _dispatch(self, request: web.Request, route: _Route | None, verb: str,
                        query: dict[str, str], ctype: str) -> web.StreamResponse:
        if route is None:
            return self._non_resource(request.path, request)
        rt, c = route.rt, self.cluster
        ns = route.namespace if rt.namespaced else ""
        if rt.namespaced and route.name and route.namespace is None and verb != "list":
            raise ApiError("NotFound", "the server could not find the requested resource")
        if verb == "watch":
            return await self._watch(request, route, query)
        accept = request.headers.get("Accept", "")
        if verb == "list":
            listed = c.list(rt, route.namespace, query)
            if tables.wants_table(accept):
                meta = {k: v for k, v in listed["metadata"].items() if k != "resourceVersion"}
                return self._json(self._table(rt, listed["items"], query,
                                              listed["metadata"]["resourceVersion"], meta))
            return self._json(listed)
        if verb == "get":
            if route.subresource == "scale":
                return self._json(c.get_scale(rt, ns, route.name))
            obj = c.get(rt, ns, route.name)
            if tables.wants_table(accept) and not route.subresource:
                return self._json(self._table(rt, [obj], query,
                                              obj["metadata"]["resourceVersion"]))
            return self._json(obj)
        opts = self._options(request, query)
        if verb == "create":
            if route.namespace is None and rt.namespaced:
                raise ApiError("MethodNotAllowed", "the server does not allow this method on "
                               "the requested resource")
            return self._json(c.create(rt, ns, await self._body(request), opts), 201)
        if verb == "update":
            body = await self._body(request)
            if route.subresource == "scale":
                return self._json(c.set_scale(rt, ns, route.name, body, opts))
            return self._json(c.replace(rt, ns, route.name, body, opts, route.subresource))
        if verb in ("patch", "apply"):
            _check_media_type(ctype.split(";")[0].strip())
            raw = await request.read()
            if route.subresource == "scale":
                scale = c.get_scale(rt, ns, route.name)
                body = json.loads(raw or b"{}")
                patched = json_patch(scale, body) if isinstance(body, list) \
                    else json_merge_patch(scale, body)
                patched.get("metadata", {}).pop("resourceVersion", None)
                return self._json(c.set_scale(rt, ns, route.name, patched, opts))
            existed = verb == "apply" and c.store.get(rt.key, ns, route.name) is not None
            obj = c.patch(rt, ns, route.name, raw, ctype, opts, route.subresource)
            return self._json(obj, 201 if verb == "apply" and not existed and not opts.dry_run
                              else 200)
        if verb == "delete":
            body = await self._body(request)
            for key in ("propagationPolicy", "gracePeriodSeconds"):
                if key in query:
                    body.setdefault(key, query[key])
            return self._json(c.delete(rt, ns, route.name, body, opts))
        if verb == "deletecollection":
            body = await self._body(request)
            return self._json(c.delete_collection(rt, route.namespace, query, body, opts))
        raise ApiError("MethodNotAllowed", "the server does not allow this method on the "
                       "requested resource")

    def _table(self, rt: ResourceType, objects: list[dict[str, Any]], query: dict[str, str],
               resource_version: str, list_meta: dict[str, Any] | None = None
               ) -> dict[str, Any]:
        columns = None
        if rt.custom:
            crd = self.cluster.store.get(("apiextensions.k8s.io", "customresourcedefinitions"),
                                         "", f"{rt.plural}.{rt.group}") or {}
            for v in (crd.get("spec") or {}).get("versions") or []:
                if v.get("name") == rt.version:
                    columns = v.get("additionalPrinterColumns")
        return tables.table(rt, objects, resource_version=resource_version,
                            include=query.get("includeObject", "Metadata"),
                            printer_columns=columns, list_meta=list_meta)

    def _non_resource(self, path: str, request: web.Request) -> web.Response:
        if request.method != "GET":
            raise ApiError("MethodNotAllowed", "the server does not allow this method on the "
                           "requested resource")
        reg = self.cluster.registry
        parts = [p for p in path.split("/") if p]
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok", content_type="text/plain")
        if parts == ["version"]:
            return self._json(discovery.version())
        if parts == ["api"]:
            return self._json(discovery.api_versions(self.address))
        if parts == ["api", "v1"]:
            return self._json(discovery.resource_list(reg, "", "v1"))
        if parts == ["apis"]:
            return self._json(discovery.api_group_list(reg))
        if parts == ["openapi", "v3"]:
            return self._json(discovery.openapi_v3_root(reg))
        if parts[:2] == ["openapi", "v3"] and len(parts) in (4, 5):
            group, version = (("", "v1") if parts[2] == "api" else (parts[3], parts[4])) \
                if len(parts) == 5 or parts[2] == "api" else ("", "")
            doc = discovery.openapi_v3_group_version(reg, group, version) if version else None
            if doc is not None:
                return self._json(doc)
        if len(parts) == 2 and parts[0] == "apis":
            doc = discovery.api_group(reg, parts[1])
            if doc is not None:
                return self._json(doc)
        if len(parts) == 3 and parts[0] == "apis":
            doc = discovery.resource_list(reg, parts[1], parts[2])
            if doc is not None:
                return self._json(doc)
        raise ApiError("NotFound", "the server could not find the requested resource",
                       details={})

    # -- watch -------------------------------------------------------------------------
    async def _watch(self, request: web.Request, route: _Route, query: dict[str, str]
                     ) -> web.StreamResponse:
        from .selectors import parse_field_selector, parse_label_selector
        rt, c = route.rt, self.cluster
        namespace = route.namespace if rt.namespaced else None
        label = parse_label_selector(query.get("labelSelector"))
        field = parse_field_selector(query.get("fieldSelector"), rt.kind)
        if route.name:
            by_name = field
            field = lambda o: by_name(o) and o["metadata"]["name"] == route.name  # noqa: E731
        timeout = float(query.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout
        resp = web.StreamResponse(status=200, headers={"Content-Type": JSON})
        await resp.prepare(request)

        def matches(obj: dict[str, Any], ns: str) -> bool:
            return (namespace is None or ns == namespace) and label(obj) and field(obj)

        as_table = tables.wants_table(request.headers.get("Accept", ""))

        async def send(kind: str, obj: dict[str, Any]) -> None:
            obj = dict(obj)
            obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
            if as_table and kind != "BOOKMARK":
                obj = self._table(rt, [obj], query, obj["metadata"].get("resourceVersion", ""))
            await resp.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

        rv_param = query.get("resourceVersion") or ""
        with c.store.lock:
            current = c.store.revision
            if rv_param in ("", "0"):
                initial = [o for o in c.store.list(rt.key, namespace) if matches(
                    o, o["metadata"].get("namespace", ""))]
                last = current
            else:
                initial = []
                last = int(rv_param)
                if last < c.store.oldest_revision() - 1:
                    gone = ApiError("Expired", f"too old resource version: {last} "
                                    f"({c.store.oldest_revision()})", code=410).status()
                    await resp.write(json.dumps({"type": "ERROR", "object": gone}).encode()
                                     + b"\n")
                    return resp
        try:
            for obj in initial:
                await send("ADDED", obj)
            if _truthy(query.get("allowWatchBookmarks")) and _truthy(
                    query.get("sendInitialEvents")):
                await send("BOOKMARK", {"metadata": {"resourceVersion": str(last), "annotations":
                                        {"k8s.io/initial-events-end": "true"}}})
            while time.monotonic() < deadline and not self.closing:
                events: list[Event] = c.store.events_since(last, [rt.key])
                for ev in events:
                    last = ev.rv
                    if matches(ev.obj, ev.namespace):
                        await send(ev.type, ev.obj)
                waiter = self._changed
                try:
                    await asyncio.wait_for(waiter.wait(),
                                           timeout=max(0.0, min(1.0, deadline - time.monotonic())))
                except asyncio.TimeoutError:
                    pass
                if request.transport is None or request.transport.is_closing():
                    break
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return resp

    # -- /_double control API ----------------------------------------------------------
    async def _control(self, request: web.Request) -> web.Response:
        what = request.path[len("/_double/"):].strip("/")
        method = request.method
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            body = {}
        if what == "requests":
            if method == "DELETE":
                self.log.reset()
                return self._json({"reset": True})
            return self._json([r.to_dict() for r in self.log.all()])
        if what == "faults":
            if method == "POST":
                known = {f.name for f in dc_fields(FaultRule)} - {"hits", "id"}
                rule = self.faults.add(FaultRule(**{k: v for k, v in body.items() if k in known}))
                return self._json(rule.to_dict(), 201)
            if method == "DELETE":
                self.faults.clear()
                return self._json({"cleared": True})
            return self._json([r.to_dict() for r in self.faults.rules()])
        if what == "settings":
            s = self.cluster.controller.settings
            if method in ("POST", "PUT", "PATCH"):
                for k in ("ready_delay", "job_delay", "never_ready", "enabled"):
                    if k in body:
                        setattr(s, k, body[k])
            return self._json({k: getattr(s, k) for k in
                               ("ready_delay", "job_delay", "never_ready", "enabled")})
        if what == "reset" and method == "POST":
            self.cluster.reset()
            self.log.reset()
            self.faults.clear()
            return self._json({"reset": True})
        return self._error(not_found("_double", what))


def _check_media_type(ctype: str) -> None:
    """JSON and YAML bodies are understood (protobuf only for the kinds in
    :mod:`tests.kubeapi.protobuf`); CBOR and other protobuf bodies get 415."""
    if ctype in ("application/vnd.kubernetes.protobuf", "application/cbor"):
        raise ApiError("UnsupportedMediaType", "the body of the request was in an unknown "
                       "format - accepted media types include: application/json, "
                       "application/yaml")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def kubeconfig_dict(url: str, *, token: str = "kubeapi-double-token",
                    namespace: str = "default", name: str = "kubeapi-double") -> dict[str, Any]:
    """A kubeconfig that points kubectl and the Python client at ``url``."""
    return {"apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": name, "cluster": {"server": url}}],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name,
                                                    "namespace": namespace}}],
            "current-context": name}


def write_kubeconfig(path: str | os.PathLike[str], url: str, **kw: Any) -> str:
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(kubeconfig_dict(url, **kw), fh, sort_keys=False)
    os.chmod(path, 0o600)
    return path


class KubeAPIDouble:
    """A Kubernetes API double on loopback, in a background thread (a context manager).

    Keyword arguments: ``port`` (0 = a free one), ``ready_delay`` / ``job_delay`` (seconds
    until simulated workloads become ready / Jobs complete), ``never_ready`` (server-wide),
    ``namespace_defaults`` (create the ``default`` ServiceAccount and ``kube-root-ca.crt``
    in new namespaces, as a real cluster does), ``kubeconfig_path`` (where to write the
    kubeconfig; default a temporary file).
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, ready_delay: float = 0.2,
                 job_delay: float = 0.3, never_ready: bool = False,
                 namespace_defaults: bool = True, kubeconfig_path: str | None = None,
                 token: str = "kubeapi-double-token") -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the double only listens on loopback")
        self.host, self.port = host, port
        self.settings = ControllerSettings(ready_delay=ready_delay, job_delay=job_delay,
                                           never_ready=never_ready)
        self.cluster = Cluster(self.settings, namespace_defaults=namespace_defaults)
        self.server = KubeAPIServer(self.cluster)
        self.token = token
        self._kubeconfig_path = kubeconfig_path
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    # -- life cycle --------------------------------------------------------------------
    def start(self) -> "KubeAPIDouble":
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(128)
        self.port = sock.getsockname()[1]
        self.server.address = f"{self.host}:{self.port}"
        self._thread = threading.Thread(target=self._run, args=(sock,), daemon=True,
                                        name=f"kubeapi-double-{self.port}")
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("kubeapi double did not start within 10 s")
        if self._error:
            raise RuntimeError("kubeapi double failed to start") from self._error
        if self._kubeconfig_path is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="kubeapi-double-")
            self._kubeconfig_path = os.path.join(self._tmpdir.name, "kubeconfig")
        write_kubeconfig(self._kubeconfig_path, self.url, token=self.token)
        return self

    def _run(self, sock: socket.socket) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._runner = web.AppRunner(self.server.app(), access_log=None,
                                         handle_signals=False, shutdown_timeout=0.5)
            loop.run_until_complete(self._runner.setup())
            loop.run_until_complete(web.SockSite(self._runner, sock).start())
        except BaseException as exc:  # noqa: BLE001
            self._error = exc
            self._started.set()
            return
        self._started.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self.server.closing = True
            self._loop.call_soon_threadsafe(self.server._wake)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> "KubeAPIDouble":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def wait(self) -> None:
        """Block until the server thread ends (for the standalone entry point)."""
        if self._thread is not None:
            self._thread.join()

    # -- addresses ---------------------------------------------------------------------
    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def kubeconfig_path(self) -> str:
        assert self._kubeconfig_path, "start() the double first"
        return self._kubeconfig_path

    def write_kubeconfig(self, path: str | os.PathLike[str], namespace: str = "default") -> str:
        return write_kubeconfig(path, self.url, token=self.token, namespace=namespace)

    def api_client(self):  # -> kubernetes.client.ApiClient
        """A ``kubernetes.client.ApiClient`` configured for this double."""
        from kubernetes import config
        return config.new_client_from_config(config_file=self.kubeconfig_path)

    # -- requests ----------------------------------------------------------------------
    @property
    def requests(self) -> list[Request]:
        """Every request served so far (oldest first), excluding ``/_double/`` calls."""
        return self.server.log.all()

    def count(self, **criteria: Any) -> int:
        """Count requests: ``method``, ``verb``, ``resource``, ``namespace``, ``name``,
        ``path`` (glob), ``dry_run``, ``status``."""
        return self.server.log.count(**criteria)

    def count_lists(self, resource: str | None = None) -> int:
        return self.server.log.count(verb="list", resource=resource)

    def count_dry_run_patches(self, resource: str | None = None) -> int:
        """PATCH requests (apply or patch) with ``dryRun=All``."""
        return self.server.log.count(method="PATCH", dry_run=True, resource=resource)

    def count_applies(self, resource: str | None = None, *, dry_run: bool | None = None) -> int:
        return self.server.log.count(verb="apply", resource=resource, dry_run=dry_run)

    def reset_requests(self) -> None:
        self.server.log.reset()

    # -- faults ------------------------------------------------------------------------
    def inject_fault(self, *, method: str = "*", path: str = "*", verb: str | None = None,
                     resource: str | None = None, status: int | None = 500,
                     times: int | None = 1, retry_after: int | None = None,
                     latency: float = 0.0, message: str | None = None,
                     reason: str | None = None) -> FaultRule:
        """Fail (``status``) or delay (``latency``; ``status=None`` to only delay) the next
        ``times`` matching requests (``None`` = all of them until cleared)."""
        return self.server.faults.add(FaultRule(
            method=method.upper(), path=path, verb=verb, resource=resource, status=status,
            times=times, retry_after=retry_after, latency=latency, message=message,
            reason=reason))

    def inject_throttle(self, *, retry_after: int = 1, times: int = 1, **match: Any) -> FaultRule:
        """``429 TooManyRequests`` with ``Retry-After`` for the next ``times`` matches."""
        return self.inject_fault(status=429, retry_after=retry_after, times=times, **match)

    def inject_latency(self, seconds: float, *, times: int | None = None, **match: Any
                       ) -> FaultRule:
        return self.inject_fault(status=None, latency=seconds, times=times, **match)

    def clear_faults(self) -> None:
        self.server.faults.clear()

    # -- cluster state -----------------------------------------------------------------
    @property
    def never_ready(self) -> bool:
        return self.settings.never_ready

    @never_ready.setter
    def never_ready(self, value: bool) -> None:
        self.settings.never_ready = value

    def get_object(self, api_version: str, kind: str, name: str,
                   namespace: str = "") -> dict[str, Any] | None:
        """The stored object (a copy), or ``None``; bypasses HTTP and the request log."""
        rt = self.cluster.registry.by_kind(api_version, kind)
        if rt is None:
            return None
        return self.cluster.store.get(rt.key, namespace if rt.namespaced else "", name)

    def reset(self) -> None:
        """Back to a fresh cluster: objects, CRDs, request log and faults are all cleared."""
        self.cluster.reset()
        self.server.log.reset()
        self.server.faults.clear()

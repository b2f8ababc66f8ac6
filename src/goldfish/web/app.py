"""The dashboard as a Starlette app: pages, the ``/api/`` JSON they use, static assets, access rules.

Starlette and uvicorn come with the ``mcp`` SDK already, so the dashboard adds no dependency.
Handlers are plain (sync) functions: Starlette runs them on its thread pool, where each thread
holds its own SQLite connection (``Database`` is per-thread).

Access: bound to loopback without a token, only requests addressed to a loopback name are served
(a page on another site cannot reach it through DNS rebinding). With a token, every request
carries it: ``Authorization: Bearer T``, the cookie set by a page load with ``?token=T``, or
``?token=T`` itself.
"""

from __future__ import annotations

import hmac
import ipaddress
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from goldfish.context import ServerContext
from goldfish.errors import GoldfishError, InvalidArgumentError, ProjectNotFoundError
from goldfish.web import compare_page, pages, run_page
from goldfish.web.data import DashboardData

STATIC = Path(__file__).parent / "static"
COOKIE = "goldfish_ui_token"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
MAX_QUERY_VALUE = 2000

ContextProvider = Callable[[], ServerContext]


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (IPv4 or IPv6)."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _Data:
    """The :class:`DashboardData` of the current context (rebuilt when the project is reloaded)."""

    def __init__(self, provider: ContextProvider):
        self._provider = provider
        self._lock = threading.Lock()
        self._built: tuple[ServerContext, DashboardData] | None = None

    def get(self) -> tuple[ServerContext, DashboardData]:
        context = self._provider()
        with self._lock:
            if self._built is None or self._built[0] is not context:
                self._built = (context, DashboardData(context))
            return self._built


class DashboardTokenError(GoldfishError):
    """A request to a dashboard that has a token came without it (or with another one)."""

    code = "UNAUTHORIZED"
    default_remedy = "Send the token the dashboard was started with (--token or GOLDFISH_UI_TOKEN)."


def _status(error: GoldfishError) -> int:
    return 404 if error.code.endswith("NOT_FOUND") or isinstance(error, ProjectNotFoundError) else 400


def _query(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    if len(value) > MAX_QUERY_VALUE or "\x00" in value:
        raise InvalidArgumentError(f"{name} is too long or holds a NUL character.", details={"field": name})
    return value


def _page_number(request: Request) -> int:
    raw = _query(request, "page") or "1"
    if not raw.isdigit():
        raise InvalidArgumentError("page must be a whole number from 1.", details={"field": "page"})
    return int(raw)


def _ids(request: Request, name: str) -> list[str]:
    return [part.strip() for part in (_query(request, name) or "").split(",") if part.strip()]


def _json(model: BaseModel | dict[str, Any]) -> Response:
    body = model.model_dump_json() if isinstance(model, BaseModel) else None
    if body is None:
        return JSONResponse(model)
    return Response(body, media_type="application/json")


Render = Callable[[DashboardData, str, Request], str]
Build = Callable[[DashboardData, Request], BaseModel | dict[str, Any]]


class _Endpoints:
    """Wraps page renderers and API builders into endpoints that turn errors into answers."""

    def __init__(self, provider: ContextProvider):
        self.data = _Data(provider)

    def project_name(self) -> str:
        try:
            return self.data.get()[0].config.project_name
        except GoldfishError:
            return "no project"

    def page(self, render: Render) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            try:
                context, model = self.data.get()
                return HTMLResponse(render(model, context.config.project_name, request))
            except GoldfishError as exc:
                body = pages.error(self.project_name(), _status(exc), exc.code, exc.message, exc.remedy)
                return HTMLResponse(body, status_code=_status(exc))

        return endpoint

    def api(self, build: Build) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            try:
                return _json(build(self.data.get()[1], request))
            except GoldfishError as exc:
                return JSONResponse({"success": False, "error": exc.to_dict()}, status_code=_status(exc))

        return endpoint

    def compare_page(self, request: Request) -> Response:
        refs = _ids(request, "runs")
        if not refs:
            return HTMLResponse(compare_page.compare_empty(self.project_name()))
        try:
            context, model = self.data.get()
            return HTMLResponse(compare_page.compare(model.compare(refs), context.config.project_name))
        except GoldfishError as exc:
            body = compare_page.compare_empty(self.project_name(), ",".join(refs), exc.message)
            return HTMLResponse(body, status_code=_status(exc))


def _runs_query(request: Request) -> tuple[str | None, str | None, int]:
    return _query(request, "workspace"), _query(request, "state"), _page_number(request)


def _favicon(_request: Request) -> Response:
    return RedirectResponse("/static/favicon.svg", status_code=301)


def build_dashboard(
    provider: ContextProvider, token: str | None = None, loopback_only: bool = True
) -> Starlette:
    """The dashboard app over the project ``provider`` returns.

    Args:
        provider: Returns the project's services (called per request; may raise GoldfishError).
        token: When set, every request must carry it.
        loopback_only: Serve only requests addressed to a loopback name (ignored with a token).
    """
    ends = _Endpoints(provider)
    page, api = ends.page, ends.api
    routes = [
        Route("/", page(lambda m, p, r: pages.overview(m.overview()))),
        Route("/runs", page(lambda m, p, r: pages.runs(m.runs(*_runs_query(r)), p))),
        Route(
            "/runs/{run_id}",
            page(lambda m, p, r: run_page.run(m.run(r.path_params["run_id"], _query(r, "stage")), p)),
        ),
        Route("/compare", ends.compare_page),
        Route(
            "/workspaces/{name}", page(lambda m, p, r: pages.workspace(m.workspace(r.path_params["name"]), p))
        ),
        Route("/api/overview", api(lambda m, r: m.overview())),
        Route("/api/runs", api(lambda m, r: m.runs(*_runs_query(r)))),
        Route("/api/runs/{run_id}", api(lambda m, r: m.run(r.path_params["run_id"], _query(r, "stage")))),
        Route(
            "/api/runs/{run_id}/live",
            api(lambda m, r: m.live(r.path_params["run_id"], _query(r, "stage"), _query(r, "cursor"))),
        ),
        Route(
            "/api/runs/{run_id}/metrics",
            api(lambda m, r: {"metrics": [s.model_dump() for s in m.metrics(r.path_params["run_id"])]}),
        ),
        Route("/api/compare", api(lambda m, r: m.compare(_ids(r, "runs")))),
        Route("/api/workspaces/{name}", api(lambda m, r: m.workspace(r.path_params["name"]))),
        Route(
            "/api/states", api(lambda m, r: {k: v.model_dump() for k, v in m.states(_ids(r, "ids")).items()})
        ),
        Route("/favicon.ico", _favicon),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(Guard, token=token, loopback_only=loopback_only and not token)
    return app


class Guard:
    """Access rules and response headers around the dashboard (a plain ASGI middleware).

    Args:
        app: The dashboard's routes.
        token: When set, every request must carry it.
        loopback_only: Refuse requests whose Host is not a loopback name.
    """

    def __init__(self, app: ASGIApp, token: str | None, loopback_only: bool):
        self.app = app
        self.token = token
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse what the rules refuse; add the security and timing headers to every answer."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request = Request(scope)
        refusal = self._refusal(request)
        if refusal is not None:
            await refusal(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                took = (time.perf_counter() - started) * 1000
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cache-control", b"no-store"),
                    (b"server-timing", f"app;dur={took:.2f}".encode()),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _refusal(self, request: Request) -> Response | None:
        if self.loopback_only:
            host = request.url.hostname or ""
            if not is_loopback(host):
                return PlainTextResponse(
                    "This dashboard answers only on a loopback address.", status_code=403
                )
        if not self.token:
            return None
        if self._carries_token(request):
            return None
        supplied = request.query_params.get("token")
        if supplied is not None and hmac.compare_digest(supplied.encode(), self.token.encode()):
            # A page load with ?token=T: remember it in a cookie and drop it from the address bar.
            rest = urlencode([(k, v) for k, v in parse_qsl(request.url.query) if k != "token"])
            target = request.url.path + (f"?{rest}" if rest else "")
            response = RedirectResponse(target, status_code=303)
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict", path="/")
            return response
        error = DashboardTokenError(
            "This dashboard needs its token: Authorization: Bearer <token>, or open it with ?token=<token>."
        )
        if request.url.path.startswith("/api/"):
            return JSONResponse({"success": False, "error": error.to_dict()}, status_code=401)
        return PlainTextResponse(error.message, status_code=401)

    def _carries_token(self, request: Request) -> bool:
        assert self.token is not None
        expected = self.token.encode()
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer ") and hmac.compare_digest(
            header[7:].strip().encode(), expected
        ):
            return True
        cookie = request.cookies.get(COOKIE)
        return cookie is not None and hmac.compare_digest(cookie.encode(), expected)

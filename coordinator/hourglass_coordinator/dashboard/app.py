"""The dashboard's aiohttp application: who is asking (session middleware), the permission gate
every page passes, CSRF-checked forms, rendering and errors. The pages and their routes:
pages.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import grpc
import jinja2
from aiohttp import web

from hourglass_coordinator.cluster_api import ClusterApi
from hourglass_coordinator.dashboard import views
from hourglass_coordinator.dashboard.lateness import LatenessWindow
from hourglass_coordinator.dashboard.session import (
    CSRF_COOKIE,
    CSRF_FIELD,
    TOKEN_COOKIE,
    LoginRequired,
    Sessions,
    csrf_ok,
    new_csrf,
    refusal,
)
from hourglass_coordinator.jobs import JobsApi
from hourglass_coordinator.run_watch import RunWatch
from hourglass_core import wire
from hourglass_core.errors import HourglassError
from hourglass_core.models import DEFAULT_NAMESPACE
from hourglass_core.trigger_words import trigger_text

HERE = Path(__file__).parent
OPEN_PATHS = ("/login", "/static/")
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.UNAUTHENTICATED: 401, grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.UNAVAILABLE: 503,
}  # fmt: skip
# Scripts and styles only from the dashboard itself (htmx is vendored): a page cannot be made
# to load anything else, nor be framed by another site.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

Page = Callable[["Dashboard", web.Request], Awaitable[web.StreamResponse]]
Routes = Mapping[tuple[str, str], Page]
CALLER = "hourglass.caller"  # request keys: the Caller, the CSRF value of this browser
CSRF = "hourglass.csrf"


@dataclass(frozen=True)
class Services:
    """What the dashboard reads and changes: the API's own service objects."""

    api: JobsApi
    cluster: ClusterApi
    watch: RunWatch
    lateness: LatenessWindow
    default_namespace: str = DEFAULT_NAMESPACE


class Dashboard:
    def __init__(self, services: Services, sessions: Sessions, *, tls: bool) -> None:
        self.services = services
        self.sessions = sessions
        self.tls = tls
        self._templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined
        )
        self._templates.globals.update(
            duration=views.duration_text, duration_s=views.seconds_text, relative=views.relative, iso=views.iso,
            trigger_text=trigger_text, params_text=views.params_text, local_text=views.local_text,
            states=views.STATES, quote=quote, login_required=sessions.required,
        )  # fmt: skip

    # -- rendering --------------------------------------------------------------------------
    def render(self, request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
        caller = request.get(CALLER)
        page = self._templates.get_template(template).render(
            caller=caller, csrf=request.get(CSRF, ""), path=request.path, now=datetime.now(UTC),
            namespace=request.query.get("ns", "") or self.services.default_namespace, **context,
        )  # fmt: skip
        return web.Response(text=page, status=status, content_type="text/html")

    def fragment(self, template: str, **context: Any) -> str:
        return self._templates.get_template(template).render(**context)

    # -- the gate ---------------------------------------------------------------------------
    def allow(self, request: web.Request, rpc: str, message: Any) -> None:
        """Raises 403 (a page naming what is missing) unless the caller may make `rpc` with
        `message`, exactly as the API would judge that call."""
        refused = refusal(request[CALLER], rpc, message)
        if refused is not None:
            raise web.HTTPForbidden(
                text=self.render(request, "denied.html", 403, why=refused.why, needs=refused.needs, rpc=rpc).text,
                content_type="text/html",
            )

    async def form(self, request: web.Request) -> Mapping[str, str]:
        """The POSTed form, once its CSRF field matches this browser's cookie (else 403)."""
        data = await request.post()
        fields = {k: v for k, v in data.items() if isinstance(v, str)}
        if not csrf_ok(request.cookies.get(CSRF_COOKIE), fields.get(CSRF_FIELD)):
            raise web.HTTPForbidden(
                text=self.render(request, "error.html", 403, message="refused: the form's CSRF token is missing or "
                                 "does not match this browser's (reload the page and try again)").text,
                content_type="text/html",
            )  # fmt: skip
        return fields

    # -- middleware -------------------------------------------------------------------------
    @web.middleware
    async def middleware(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:  # fmt: skip
        csrf = request.cookies.get(CSRF_COOKIE) or ""
        fresh = not csrf
        request[CSRF] = csrf = csrf or new_csrf()
        try:
            if not request.path.startswith(OPEN_PATHS):
                request[CALLER] = self.sessions.caller(request.cookies.get(TOKEN_COOKIE))
            response = await handler(request)
        except LoginRequired as why:
            response = self._to_login(request, str(why))
        except HourglassError as error:
            status = HTTP_STATUS.get(wire.status_code(error), 500)
            response = self.render(request, "error.html", status, message=str(error))
        except web.HTTPException as http:
            response = http
        if fresh and not response.prepared:
            response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="Strict", secure=self.tls, path="/")
        if not response.prepared:
            response.headers.update(SECURITY_HEADERS)
        return response

    def _to_login(self, request: web.Request, why: str) -> web.StreamResponse:
        target = request.path_qs if request.method == "GET" else "/"
        response = web.HTTPSeeOther(f"/login?next={quote(target, safe='')}&why={quote(why, safe='')}")
        response.del_cookie(TOKEN_COOKIE, path="/")
        return response

    def remember(self, response: web.StreamResponse, token: str) -> None:
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict", secure=self.tls, path="/")

    def app(self, routes: Routes) -> web.Application:
        """The application serving `routes` ((method, path) -> page) and the static files."""
        app = web.Application(middlewares=[self.middleware])
        for (method, path), page in routes.items():
            app.router.add_route(method, path, _bound(self, page))
        app.router.add_static("/static/", HERE / "static")
        return app


def _bound(dashboard: Dashboard, page: Page) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        return await page(dashboard, request)

    return handle

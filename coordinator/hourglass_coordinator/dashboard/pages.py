"""The dashboard's pages: each checks the RPC it stands for (Dashboard.allow, the API's own
table), calls the API's service objects, renders. The gRPC request messages built here are
only what the permission table reads (which namespaces a call touches)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from hourglass_coordinator.dashboard import views
from hourglass_coordinator.dashboard.app import Dashboard, Routes
from hourglass_coordinator.dashboard.chart import lateness_svg
from hourglass_coordinator.dashboard.session import TOKEN_COOKIE, LoginRequired
from hourglass_coordinator.jobs import JobsApi
from hourglass_core.errors import HourglassError, JobNotFound
from hourglass_core.models import Run
from hourglass_pb.v1 import jobs_pb2 as pb

RECENT_RUNS = 20
EXPLAIN_WINDOW = timedelta(minutes=10)
EXPLAIN_MAX = 200
KEEPALIVE_S = 15.0
CHART_MINUTES = (5, 15, 30)


def _namespace(d: Dashboard, request: web.Request) -> str:
    return request.query.get("ns", "").strip() or d.services.default_namespace


async def home(d: Dashboard, request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/jobs")


# -- login ------------------------------------------------------------------------------------
def _safe_next(target: str) -> str:
    """Only a path of this site (never //other.host or a scheme)."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/jobs"


async def login_form(d: Dashboard, request: web.Request) -> web.StreamResponse:
    if not d.sessions.required:
        raise web.HTTPSeeOther("/jobs")
    return d.render(request, "login.html", why=request.query.get("why", ""), next=_safe_next(request.query.get("next", "")))


async def login(d: Dashboard, request: web.Request) -> web.StreamResponse:
    form = await d.form(request)
    target = _safe_next(form.get("next", ""))
    token = form.get("token", "").strip()
    try:
        d.sessions.caller(token)
    except LoginRequired as why:
        return d.render(request, "login.html", 401, why=str(why), next=target)
    response = web.HTTPSeeOther(target)
    d.remember(response, token)
    return response


async def logout(d: Dashboard, request: web.Request) -> web.StreamResponse:
    await d.form(request)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(TOKEN_COOKIE, path="/")
    return response


# -- jobs -------------------------------------------------------------------------------------
async def jobs(d: Dashboard, request: web.Request) -> web.StreamResponse:
    query = views.job_query(request.query, d.services.default_namespace)
    d.allow(request, "ListJobs", pb.ListJobsRequest(namespace=query.namespace))
    page = await d.services.api.list(query.namespace, query.filter, views.PAGE_SIZE, query.page_token, newest=True)
    return d.render(request, "jobs.html", query=query, jobs=page.items, pager=views.pager("/jobs", query, page.next_page_token),
                    filter=views.filter_params(query))  # fmt: skip


async def job(d: Dashboard, request: web.Request) -> web.StreamResponse:
    namespace, job_id = _namespace(d, request), request.match_info["id"]
    ref = pb.JobRef(namespace=namespace, id=job_id)
    for rpc, message in (("GetJob", pb.GetJobRequest(namespace=namespace, id=job_id)),
                         ("ListRuns", pb.ListRunsRequest(namespace=namespace, job_id=job_id)),
                         ("PreviewSchedule", pb.PreviewScheduleRequest(job=ref)),
                         ("ExplainJob", pb.ExplainJobRequest(namespace=namespace, id=job_id))):  # fmt: skip
        d.allow(request, rpc, message)
    api = d.services.api
    found = await api.get_reported(namespace, job_id)
    since = datetime.now(UTC) - EXPLAIN_WINDOW
    preview, runs, explained = await asyncio.gather(
        api.preview_job(namespace, job_id, 10, None), api.list_runs(namespace, job_id, RECENT_RUNS, ""),
        api.explain(namespace, job_id, since, None, EXPLAIN_MAX),
    )  # fmt: skip
    return d.render(request, "job.html", job=found, preview=preview, runs=runs.items, explained=explained,
                    explain_since=since, done=request.query.get("done", ""), actions=views.actions_for(found.state))  # fmt: skip


# What each action is: its RPC, the message the permission table reads, and the call.
Action = tuple[str, Callable[[str, str], Any], Callable[[JobsApi, str, str, str], Awaitable[Any]]]
ACTIONS: dict[str, Action] = {
    "pause": ("PauseJob", lambda ns, i: pb.PauseJobRequest(namespace=ns, id=i), lambda api, ns, i, note: api.pause(ns, i, note)),
    "resume": ("ResumeJob", lambda ns, i: pb.JobRef(namespace=ns, id=i), lambda api, ns, i, _: api.resume(ns, i)),
    "cancel": ("CancelJob", lambda ns, i: pb.JobRef(namespace=ns, id=i), lambda api, ns, i, _: api.cancel(ns, i)),
    "trigger": ("TriggerJob", lambda ns, i: pb.TriggerJobRequest(namespace=ns, id=i), lambda api, ns, i, _: api.trigger(ns, i)),
}


def _action(d: Dashboard, request: web.Request) -> tuple[str, str, str, Action]:
    name = request.match_info["action"]
    action = ACTIONS.get(name)
    if action is None:
        raise web.HTTPNotFound(text=f"no action {name!r}: one of {', '.join(ACTIONS)}")
    namespace, job_id = _namespace(d, request), request.match_info["id"]
    d.allow(request, action[0], action[1](namespace, job_id))
    return name, namespace, job_id, action


async def confirm(d: Dashboard, request: web.Request) -> web.StreamResponse:
    """The confirmation step: what is about to happen, and the form that does it."""
    name, namespace, job_id, _ = _action(d, request)
    found = await d.services.api.get(namespace, job_id)
    return d.render(request, "confirm.html", action=name, job=found)


async def act(d: Dashboard, request: web.Request) -> web.StreamResponse:
    form = await d.form(request)
    name, namespace, job_id, (_, _, call) = _action(d, request)
    await call(d.services.api, namespace, job_id, form.get("note", ""))
    raise web.HTTPSeeOther(f"/jobs/{job_id}?ns={views.quote_param(namespace)}&done={name}")


# -- runs -------------------------------------------------------------------------------------
async def runs(d: Dashboard, request: web.Request) -> web.StreamResponse:
    namespace = _namespace(d, request)
    d.allow(request, "WatchRuns", pb.WatchRunsRequest(namespace=namespace))
    return d.render(request, "runs.html")


async def _names(d: Dashboard, namespace: str, run: Run, known: dict[str, str]) -> str:
    if run.job_id not in known:
        try:
            known[run.job_id] = (await d.services.api.get(namespace, run.job_id)).name
        except JobNotFound:
            known[run.job_id] = "(deleted)"
        except HourglassError:
            return ""  # shown without its name; read again with the next run
    return known[run.job_id]


async def runs_stream(d: Dashboard, request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: one `run` event (a table row) per run of the namespace finishing,
    from whichever replica recorded it (RunWatch), and a comment every KEEPALIVE_S."""
    namespace = _namespace(d, request)
    d.allow(request, "WatchRuns", pb.WatchRunsRequest(namespace=namespace))
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    await response.prepare(request)
    queue: asyncio.Queue[tuple[Run, int]] = asyncio.Queue(100)
    pump = asyncio.create_task(_pump(d.services.watch.watch(namespace, ""), queue), name=f"dashboard-tail-{namespace}")
    known: dict[str, str] = {}
    try:
        await response.write(b": watching\n\n")
        while True:
            try:
                run, dropped = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            row = d.fragment("run_row.html", run=run, name=await _names(d, namespace, run, known), dropped=dropped,
                             namespace=namespace)
            await response.write(views.sse_event("run", row))
    except ConnectionResetError:
        pass  # the browser went away (a stopping server cancels this handler instead)
    finally:
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump
    return response


async def _pump(source: AsyncIterator[tuple[Run, int]], queue: asyncio.Queue[tuple[Run, int]]) -> None:
    """Moves watched runs into `queue` (a full queue drops: the tail shows what it can)."""
    async for item in source:
        if not queue.full():
            queue.put_nowait(item)


# -- the cluster ------------------------------------------------------------------------------
async def workers(d: Dashboard, request: web.Request) -> web.StreamResponse:
    d.allow(request, "ListWorkers", pb.ListWorkersRequest())
    found = sorted(await d.services.cluster.workers(), key=lambda w: w.id)
    return d.render(request, "workers.html", workers=found)


async def shards(d: Dashboard, request: web.Request) -> web.StreamResponse:
    d.allow(request, "GetShardMap", pb.GetShardMapRequest())
    return d.render(request, "shards.html", shard_map=await d.services.cluster.shard_map())


async def lateness(d: Dashboard, request: web.Request) -> web.StreamResponse:
    namespace = _namespace(d, request)
    d.allow(request, "ListRuns", pb.ListRunsRequest(namespace=namespace))  # a namespace's run lateness: its runs
    asked = request.query.get("minutes", "")
    minutes = int(asked) if asked.isdigit() and int(asked) in CHART_MINUTES else 15
    series = d.services.lateness.series(namespace, minutes)
    return d.render(request, "lateness.html", chart=lateness_svg(series), minutes=minutes, choices=CHART_MINUTES,
                    total=sum(p.count for p in series), worst=max((p.max for p in series), default=0.0))  # fmt: skip


ROUTES: Routes = {
    ("GET", "/"): home,
    ("GET", "/login"): login_form,
    ("POST", "/login"): login,
    ("POST", "/logout"): logout,
    ("GET", "/jobs"): jobs,
    ("GET", "/jobs/{id}"): job,
    ("GET", "/jobs/{id}/{action}"): confirm,
    ("POST", "/jobs/{id}/{action}"): act,
    ("GET", "/runs"): runs,
    ("GET", "/runs/stream"): runs_stream,
    ("GET", "/workers"): workers,
    ("GET", "/shards"): shards,
    ("GET", "/lateness"): lateness,
}

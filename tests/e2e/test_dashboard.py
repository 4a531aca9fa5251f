"""The dashboard in a real browser (headless Chromium) against a real cluster, secured as in
production (Cassandra and Redis over TLS, mutual TLS between processes, bearer tokens): log in
with a token, open every view, pause and resume a job from its page and see its state change
(in the page and through the API), see a run appear live in the runs tail; an action without
the CSRF token and a read-only token's pause are refused; and `hourglass dev --demo` shows
its demo jobs without a login."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

import hourglass
from benchmarks.chaos_judge import drop_keyspace
from benchmarks.cluster import PYTHONPATH, ROOT, Cluster, free_port, new_cluster, wait_for_grpc
from benchmarks.secured_redis import SecuredRedis
from tests.e2e.browser import chromium, csrf_of, heading
from tests.e2e.waiting import until
from tests.e2e.workload import wait_for_executor

pytestmark = [pytest.mark.e2e, pytest.mark.cassandra]
TIMEOUT_MS = 20_000


class Dash:
    def __init__(self, cluster: Cluster, url: str) -> None:
        self.cluster = cluster
        self.url = url
        self.client = hourglass.Client(cluster.address, credentials=cluster.credentials(),
                                       token=cluster.token("*:admin", subject="tests"))  # fmt: skip


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory, cassandra_tls: str, secured_redis: SecuredRedis) -> Iterator[Dash]:
    """One secured cluster (a coordinator serving the dashboard over HTTPS, a worker) for the
    module: starting one is most of these tests' time."""
    tmp = tmp_path_factory.mktemp("dashboard")
    cluster = new_cluster(tmp, "dashboard", secure=True, redis=secured_redis.url, store_options=cassandra_tls)
    cluster.migrate()
    http = f"127.0.0.1:{free_port()}"
    try:
        cluster.start_coordinator(HOURGLASS_HTTP_LISTEN=http)
        cluster.start_worker("w1")
        dash = Dash(cluster, f"https://{http}")
        wait_for_executor(dash.client, "echo")
        yield dash
        dash.client.close()
    finally:
        cluster.stop()
        drop_keyspace(cluster.cassandra, cluster.keyspace)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh context per test (its own cookies); the cluster's certificate is from its own CA."""
    ctx = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(TIMEOUT_MS)
    try:
        yield ctx
    finally:
        ctx.close()


def _login(context: BrowserContext, dash: Dash, token: str, target: str = "/jobs") -> Page:
    page = context.new_page()
    page.goto(dash.url + target)
    assert page.url.startswith(dash.url + "/login"), "no token: the login form"
    page.fill("#token", token)
    page.click("#login")
    return page


def _submit(dash: Dash, name: str, every: timedelta = timedelta(seconds=30),
            options: hourglass.JobOptions | None = None) -> hourglass.Job:
    spec = hourglass.JobSpec(name=name, executor="echo", labels={"suite": "dashboard"},
                             trigger=hourglass.IntervalTrigger(every=every, start=datetime.now(UTC) + every),
                             options=options or hourglass.JobOptions())  # fmt: skip
    return dash.client.submit(spec, idempotent=False)


def test_an_admin_logs_in_and_opens_every_view(dash: Dash, context: BrowserContext) -> None:
    older = _submit(dash, "dash-views-older")
    job = _submit(dash, "dash-views", options=hourglass.JobOptions(lateness_slo=timedelta(milliseconds=250)))
    page = _login(context, dash, dash.cluster.token("*:admin", subject="alice"), "/jobs?ns=default&prefix=dash-views")
    assert page.url.startswith(dash.url + "/jobs"), "back where login was asked for"
    expect(page.locator("#who")).to_have_text("alice")
    cookies = {c["name"]: c for c in context.cookies()}
    for name in ("hg_token", "hg_csrf"):  # out of scripts' reach, never sent by another site, HTTPS only
        assert (cookies[name]["httpOnly"], cookies[name]["sameSite"], cookies[name]["secure"]) == (True, "Strict", True)
    expect(page.locator(f"tr[data-job='{job.id}']")).to_contain_text("dash-views")
    rows = page.locator("tr[data-job]")
    assert [rows.nth(i).get_attribute("data-job") for i in range(rows.count())] == [job.id, older.id], "newest first"
    page.select_option("#state", "paused")  # htmx: the table is fetched again, filtered
    expect(page.locator(f"tr[data-job='{job.id}']")).to_have_count(0)
    page.click("nav a[href='/jobs?ns=default']")
    page.click(f"tr[data-job='{job.id}'] a")
    assert heading(page).startswith("dash-views")
    expect(page.locator("#next-fires tbody tr")).to_have_count(10)
    expect(page.locator("dl.spec")).to_contain_text("lateness SLO")
    expect(page.locator("dl.spec")).to_contain_text("250.0 ms: no run judged yet")
    expect(page.locator("#explain")).to_be_visible()
    for path, shown in (("/runs", "Runs"), ("/lateness", "Lateness"), ("/shards", "Shard map")):
        page.goto(dash.url + path)
        assert heading(page).startswith(shown)
    expect(page.locator("tr[data-shard]")).to_have_count(dash.cluster.num_shards)
    page.goto(dash.url + "/lateness")
    expect(page.locator("svg.chart")).to_be_visible()
    page.goto(dash.url + "/workers")

    def listed() -> bool:
        page.reload()
        return page.locator("tr[data-worker='w1']").count() == 1

    until("the worker is listed", listed)
    expect(page.locator("tr[data-worker='w1']")).to_contain_text("alive")


def test_pause_and_resume_from_the_job_page_change_the_jobs_state(dash: Dash, context: BrowserContext) -> None:
    job = _submit(dash, "dash-pause")
    page = _login(context, dash, dash.cluster.token("default:write", subject="bob"), f"/jobs/{job.id}?ns=default")
    expect(page.locator("#job-state")).to_have_text("active")
    page.click("#action-pause")
    assert heading(page).startswith("Pause dash-pause?"), "a confirmation step first"
    assert dash.client.get(job.id).state is hourglass.JobState.ACTIVE, "nothing done before confirming"
    page.fill("input[name=note]", "from the dashboard")
    page.click("#confirm")
    expect(page.locator("#job-state")).to_have_text("paused")
    assert dash.client.get(job.id).state is hourglass.JobState.PAUSED
    page.click("#action-resume")
    page.click("#confirm")
    expect(page.locator("#job-state")).to_have_text("active")
    assert dash.client.get(job.id).state is hourglass.JobState.ACTIVE


def test_a_new_run_appears_live_in_the_runs_tail(dash: Dash, context: BrowserContext) -> None:
    job = _submit(dash, "dash-tail", every=timedelta(hours=1))
    page = _login(context, dash, dash.cluster.token("default:write", subject="carol"), "/runs?ns=default")
    expect(page.locator("#tail-status")).to_have_text("live")
    expect(page.locator("#runs-tail tr")).to_have_count(0)
    run_id, _ = dash.client.trigger(job.id)
    row = page.locator(f"#runs-tail tr[data-run='{run_id}']")
    expect(row).to_contain_text("dash-tail")
    expect(row).to_contain_text("succeeded")


def test_an_action_without_the_csrf_token_is_refused(dash: Dash, context: BrowserContext) -> None:
    job = _submit(dash, "dash-csrf")
    page = _login(context, dash, dash.cluster.token("*:admin", subject="dave"), f"/jobs/{job.id}?ns=default")
    forms: list[dict[str, str | float | bool]] = [{}, {"csrf": "not-the-one"}]
    for form in forms:
        answer = page.request.post(f"{dash.url}/jobs/{job.id}/pause?ns=default", form=form, max_redirects=0)
        assert answer.status == 403
        assert "CSRF" in answer.text()
    assert dash.client.get(job.id).state is hourglass.JobState.ACTIVE


def test_a_read_only_token_cannot_pause(dash: Dash, context: BrowserContext) -> None:
    job = _submit(dash, "dash-reader")
    page = _login(context, dash, dash.cluster.token("default:read", subject="erin"), f"/jobs/{job.id}?ns=default")
    expect(page.locator("#job-state")).to_have_text("active")
    page.click("#action-pause")
    expect(page.locator("#needs")).to_have_text("default:write")
    expect(page.locator("#denied")).to_contain_text("erin has no write permission in namespace 'default'")
    answer = page.request.post(f"{dash.url}/jobs/{job.id}/pause?ns=default", form={"csrf": csrf_of(page)}, max_redirects=0)
    assert answer.status == 403 and "default:write" in answer.text()
    page.goto(f"{dash.url}/workers")
    expect(page.locator("#needs")).to_have_text("*:read")  # the cluster's view: read in every namespace
    assert dash.client.get(job.id).state is hourglass.JobState.ACTIVE


def test_an_expired_token_is_sent_to_the_login_form(dash: Dash, context: BrowserContext) -> None:
    expired = dash.cluster.token("*:admin", subject="frank", ttl=timedelta(minutes=-5))
    page = _login(context, dash, expired)
    expect(page.locator("#login-problem")).to_have_text("the token has expired")
    context.add_cookies([{"name": "hg_token", "value": expired, "url": dash.url}])
    page.goto(dash.url + "/shards")
    where = urlsplit(page.url)
    assert where.path == "/login" and parse_qs(where.query)["next"] == ["/shards"]
    expect(page.locator("#login-problem")).to_have_text("the token has expired")


def test_hourglass_dev_shows_its_demo_jobs_without_a_login(tmp_path: Path, browser: Browser) -> None:
    grpc_port, http_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hourglass", "dev", "--demo", "--db", str(tmp_path / "dev.db"), "--listen",
         f"127.0.0.1:{grpc_port}", "--http", f"127.0.0.1:{http_port}", "--metrics-listen", ""],
        cwd=ROOT, env={"PYTHONPATH": PYTHONPATH, "PATH": "/usr/bin:/bin"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for_grpc(f"127.0.0.1:{grpc_port}")
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        until("the demo jobs are submitted", lambda: page.goto(f"http://127.0.0.1:{http_port}/jobs") is not None
              and page.locator("tr[data-job]").count() >= 4)  # fmt: skip
        assert "/login" not in page.url
        expect(page.locator("#who")).to_contain_text("anonymous")
        expect(page.locator("table.list")).to_contain_text("demo: every 3 s")
        page.goto(f"http://127.0.0.1:{http_port}/runs")
        expect(page.locator("#runs-tail tr").first).to_contain_text(re.compile("demo: "))
        page.close()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert f"dashboard: http://127.0.0.1:{http_port}/" in out.decode(), "hourglass dev prints the dashboard's address"

"""The dashboard's pure parts: reading the jobs filter and paging links, CSRF, the permission
gate (the API's table), Server-Sent Events framing, lateness counting and its chart."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from hourglass_coordinator.dashboard import views
from hourglass_coordinator.dashboard.chart import lateness_svg, y_of
from hourglass_coordinator.dashboard.lateness import SLOT_S, LatenessWindow, quantile
from hourglass_coordinator.dashboard.server import check_exposure
from hourglass_coordinator.dashboard.session import ANONYMOUS, csrf_ok, new_csrf, refusal
from hourglass_core.auth import Caller
from hourglass_core.config import Settings
from hourglass_core.models import CronTrigger, IntervalTrigger, JobState, Run, RunStatus
from hourglass_core.trigger_words import trigger_text
from hourglass_pb.v1 import jobs_pb2 as pb

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def test_job_query_reads_state_prefix_labels_and_page() -> None:
    query = views.job_query({"ns": "finance", "state": "paused", "prefix": "etl-", "label": "team=a, tier = gold",
                             "page": "tok"}, "default")  # fmt: skip
    assert query.namespace == "finance"
    assert query.filter.state is JobState.PAUSED
    assert query.filter.name_prefix == "etl-"
    assert query.filter.labels == {"team": "a", "tier": "gold"}
    assert query.page_token == "tok"
    assert query.problems == ()


def test_job_query_names_the_field_it_did_not_understand_and_lists_without_it() -> None:
    query = views.job_query({"state": "sleeping", "label": "team"}, "default")
    assert query.namespace == "default"
    assert query.filter.state is None and query.filter.labels == {}
    assert [p.split(":")[0] for p in query.problems] == ["state", "label"]


def test_pager_keeps_the_filter_goes_forward_with_the_store_token_and_back_to_the_start() -> None:
    first_page = views.job_query({"state": "active", "prefix": "a b"}, "default")
    links = views.pager("/jobs", first_page, "next-tok")
    assert links.first is None, "already on the first page"
    assert links.next == "/jobs?ns=default&state=active&prefix=a+b&page=next-tok"
    later = views.job_query({"state": "active", "prefix": "a b", "page": "next-tok"}, "default")
    last = views.pager("/jobs", later, "")
    assert last.first == "/jobs?ns=default&state=active&prefix=a+b"
    assert last.next is None


def test_csrf_needs_the_cookie_and_the_same_value_in_the_form() -> None:
    value = new_csrf()
    assert len(value) >= 32 and value != new_csrf()
    assert csrf_ok(value, value)
    assert not csrf_ok(value, value + "x")
    assert not csrf_ok(value, None)
    assert not csrf_ok(None, value)
    assert not csrf_ok("", "")


def test_the_gate_is_the_apis_table_and_names_the_missing_grant() -> None:
    reader = Caller("erin", frozenset({"default:read"}))
    assert refusal(reader, "GetJob", pb.GetJobRequest(namespace="default", id="j")) is None
    pause = refusal(reader, "PauseJob", pb.PauseJobRequest(namespace="default", id="j"))
    assert pause is not None and pause.needs == "default:write"
    assert pause.why == "erin has no write permission in namespace 'default'"
    other = refusal(reader, "GetJob", pb.GetJobRequest(namespace="finance", id="j"))
    assert other is not None and other.needs == "finance:read"
    cluster = refusal(reader, "ListWorkers", pb.ListWorkersRequest())
    assert cluster is not None and cluster.needs == "*:read"
    empty_namespace = refusal(Caller("w", frozenset({"default:write"})), "TriggerJob", pb.TriggerJobRequest(id="j"))
    assert empty_namespace is None, "an empty namespace is the default one, as on the API"
    assert refusal(ANONYMOUS, "CancelJob", pb.JobRef(namespace="x", id="j")) is None
    assert refusal(ANONYMOUS, "DropEverything", pb.JobRef()) is not None, "an RPC not in the table is refused"


def test_an_sse_event_puts_each_line_on_a_data_line() -> None:
    assert views.sse_event("run", "<tr>\n<td>x</td></tr>") == b"event: run\ndata: <tr>\ndata: <td>x</td></tr>\n\n"
    assert views.sse_event("run", "") == b"event: run\ndata: \n\n"


def test_durations_and_triggers_read_as_words() -> None:
    assert views.duration_text(None) == "-"
    assert views.duration_text(timedelta(milliseconds=3.25)) == "3.2 ms"
    assert views.duration_text(timedelta(seconds=2.5)) == "2.50 s"
    assert views.duration_text(timedelta(seconds=125)) == "2m 05s"
    assert views.duration_text(timedelta(hours=3, minutes=4)) == "3h 04m"
    assert views.relative(T0 + timedelta(seconds=3), T0) == "in 3.00 s"
    assert views.relative(T0 - timedelta(seconds=90), T0) == "1m 30s ago"
    assert trigger_text(CronTrigger("0 9 * * 1-5", "Europe/Paris")) == "cron '0 9 * * 1-5' Europe/Paris"
    assert trigger_text(IntervalTrigger(timedelta(seconds=30), T0)) == "every 30s from 2026-12-06T12:00:00Z"


def _run(late_ms: float, at: datetime, status: RunStatus = RunStatus.SUCCEEDED, namespace: str = "default") -> Run:
    due = at - timedelta(milliseconds=late_ms)
    return Run(namespace, "job", f"r{at.timestamp()}{late_ms}", due, 1, status, started_at=at)


def test_lateness_quantiles_are_bucket_upper_bounds() -> None:
    counts = [0] * 16
    counts[0] = 98  # <= 1 ms
    counts[5] = 2  # <= 50 ms
    assert quantile(counts, 0.5) == 0.001
    assert quantile(counts, 0.99) == 0.05
    assert quantile([0] * 16, 0.5) == 0.0


def test_the_lateness_window_counts_finished_runs_per_slot_and_namespace() -> None:
    now = T0.timestamp()
    window = LatenessWindow(clock=lambda: now)
    window.add([
        _run(0.5, T0 - timedelta(seconds=25)), _run(40, T0 - timedelta(seconds=24)),
        _run(2000, T0 - timedelta(seconds=1)),
        _run(5000, T0 - timedelta(seconds=1), RunStatus.RUNNING),  # its finished event counts, not this one
        _run(9000, T0 - timedelta(seconds=1), namespace="other"),
    ])  # fmt: skip
    series = window.series("default", 1)
    assert len(series) == 60 // SLOT_S
    assert [p.count for p in series] == [0, 0, 2, 0, 1, 0], "oldest first, up to the slot of now"
    assert series[2].p50 == 0.001 and series[2].p99 == 0.05 and series[2].max == 0.04
    assert series[4].max == 2.0
    assert window.series("other", 1)[4].count == 1


def test_the_lateness_window_forgets_what_is_older_than_it_keeps() -> None:
    now = [T0.timestamp()]
    window = LatenessWindow(clock=lambda: now[0])
    window.add([_run(1, T0)])
    now[0] += 3600
    window.add([_run(1, T0 + timedelta(hours=1))])
    assert sum(p.count for p in window.series("default", 30)) == 1


def test_the_chart_draws_each_series_on_a_log_scale_with_gaps_where_nothing_ran() -> None:
    now = T0.timestamp()
    window = LatenessWindow(clock=lambda: now)
    window.add([_run(2, T0 - timedelta(seconds=50)), _run(3, T0 - timedelta(seconds=40)), _run(500, T0)])
    svg = lateness_svg(window.series("default", 1))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    lines = re.findall(r'points="([^"]+)" data-series="(\w+)"', svg)
    assert {series for _, series in lines} == {"p50", "p99", "max"}
    assert len([points for points, series in lines if series == "max"]) == 2, "broken where slots had no runs"
    assert y_of(0.001, 240) > y_of(1.0, 240) > y_of(60, 240) == y_of(3600, 240), "higher is later; clamped at 60 s"


def test_a_job_offers_only_the_actions_that_change_something_in_its_state() -> None:
    assert views.actions_for(JobState.ACTIVE) == ("pause", "cancel", "trigger")
    assert views.actions_for(JobState.PAUSED) == ("resume", "cancel", "trigger")
    assert views.actions_for(JobState.COMPLETED) == ("trigger",)
    assert views.actions_for(JobState.CANCELLED) == ()


def test_local_times_lose_their_fraction_of_a_second_not_their_offset() -> None:
    assert views.local_text("2026-03-29T02:30:00.586851+02:00") == "2026-03-29T02:30:00+02:00"
    assert views.local_text("2026-03-29T02:30:00-05:00") == "2026-03-29T02:30:00-05:00"


def test_the_dashboard_refuses_an_open_address_without_tls_and_tokens_as_the_api_does() -> None:
    open_address = Settings(http_listen="0.0.0.0:7080")
    refused = re.escape("dashboard: refusing to listen on 0.0.0.0:7080 without TLS and bearer tokens")
    with pytest.raises(ValueError, match=refused):
        check_exposure(open_address, tokens=False)
    with pytest.raises(ValueError, match="without TLS"):
        check_exposure(open_address, tokens=True)
    check_exposure(replace(open_address, tls_cert_file="c.pem", tls_key_file="c.key"), tokens=True)
    check_exposure(replace(open_address, insecure=True), tokens=False)
    check_exposure(Settings(http_listen="127.0.0.1:7080"), tokens=False)
    check_exposure(Settings(http_listen=""), tokens=False)
    with pytest.raises(ValueError, match="http_listen '7080': expected host:port"):
        check_exposure(Settings(http_listen="7080"), tokens=False)

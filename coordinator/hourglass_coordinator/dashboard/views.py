"""What the pages show, as pure functions: filters read from a query string, paging links,
durations and times in words, a trigger in one line. No I/O here."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote, urlencode

from hourglass_core.models import JobFilter, JobState

PAGE_SIZE = 50
STATES = tuple(state.value for state in JobState)


@dataclass(frozen=True, slots=True)
class JobQuery:
    """The jobs page's query: what to list and from where. `problems`: what in the query string
    was not understood, each naming its field (the page says so and lists without it)."""

    namespace: str
    filter: JobFilter
    page_token: str
    problems: tuple[str, ...] = ()


def job_query(params: Mapping[str, str], default_namespace: str) -> JobQuery:
    """`ns`, `state` (one of STATES or empty), `prefix`, `label` ("k=v", comma-separated
    pairs) and `page` (a token the store handed out) from a query string."""
    problems: list[str] = []
    state_text = params.get("state", "").strip()
    state = None
    if state_text:
        if state_text in STATES:
            state = JobState(state_text)
        else:
            problems.append(f"state: {state_text!r} is not one of {', '.join(STATES)}")
    labels: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in params.get("label", "").split(","))):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            problems.append(f"label: {pair!r} is not key=value")
            continue
        labels[key.strip()] = value.strip()
    flt = JobFilter(state=state, name_prefix=params.get("prefix", "").strip(), labels=labels)
    namespace = params.get("ns", "").strip() or default_namespace
    return JobQuery(namespace, flt, params.get("page", ""), tuple(problems))


def filter_params(query: JobQuery) -> dict[str, str]:
    """The query string of `query`'s namespace and filter (no page), empty values left out."""
    flt = query.filter
    params = {
        "ns": query.namespace,
        "state": flt.state.value if flt.state else "",
        "prefix": flt.name_prefix,
        "label": ",".join(f"{k}={v}" for k, v in flt.labels.items()),
    }
    return {k: v for k, v in params.items() if v}


@dataclass(frozen=True, slots=True)
class Pager:
    first: str | None  # the first page's link, when not on it
    next: str | None  # the next page's link, when there is one


def pager(path: str, query: JobQuery, next_token: str) -> Pager:
    """Links that keep the filter: forward with the store's token, back to the start (store
    tokens only go forward)."""
    base = filter_params(query)
    first = f"{path}?{urlencode(base)}" if query.page_token else None
    nxt = f"{path}?{urlencode({**base, 'page': next_token})}" if next_token else None
    return Pager(first, nxt)


def duration_text(value: timedelta | None) -> str:
    """'-' for none; ms under a second, seconds under a minute, then minutes and hours."""
    if value is None:
        return "-"
    seconds = value.total_seconds()
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 1:
        return f"{sign}{seconds * 1000:.1f} ms"
    if seconds < 60:
        return f"{sign}{seconds:.2f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{sign}{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{sign}{hours}h {minutes:02d}m"


def seconds_text(seconds: float) -> str:
    return duration_text(timedelta(seconds=seconds))


def relative(at: datetime | None, now: datetime) -> str:
    """'in 3.00 s', '2m 05s ago'; '-' for none."""
    if at is None:
        return "-"
    delta = at - now
    if delta >= timedelta(0):
        return f"in {duration_text(delta)}"
    return f"{duration_text(-delta)} ago"


def iso(at: datetime | None) -> str:
    return "-" if at is None else at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def local_text(local_time: str) -> str:
    """A preview's local time (ISO 8601 with offset) without its fraction of a second."""
    return re.sub(r"\.\d+(?=[+-]\d\d:\d\d$|Z$)", "", local_time)


def actions_for(state: JobState) -> tuple[str, ...]:
    """The actions that change something for a job in `state` (trigger: also while paused or
    completed; nothing for a cancelled job)."""
    return {
        JobState.ACTIVE: ("pause", "cancel", "trigger"),
        JobState.PAUSED: ("resume", "cancel", "trigger"),
        JobState.COMPLETED: ("trigger",),
        JobState.CANCELLED: (),
    }[state]


def params_text(data: bytes, limit: int = 2000) -> str:
    """A payload shown as text (cut at `limit` characters)."""
    text = data.decode(errors="replace")
    return text if len(text) <= limit else text[:limit] + "…"


def quote_param(value: str) -> str:
    """A value for a query string."""
    return quote(value, safe="")


def sse_event(event: str, data: str) -> bytes:
    """One Server-Sent Event: each line of `data` on a `data:` line (a line break inside a
    line would end the event early), then the blank line that ends it."""
    lines = data.splitlines() or [""]
    return (f"event: {event}\n" + "".join(f"data: {line}\n" for line in lines) + "\n").encode()

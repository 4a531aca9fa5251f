"""How the CLI shows the cluster itself (`hourglass workers`, `worker ID`, `shards`,
`coordinators`): aligned text with ages for people, JSON (as `cli_format` writes it) for
scripts. Ages are taken against `now`, the caller's clock (the shard map's against the time
the coordinator read it)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from hourglass.cli_format import fields_text, seconds, table
from hourglass_core.cluster import CoordinatorStatus, ShardMapStatus, WorkerStatus
from hourglass_core.trigger_words import iso


def age(span: timedelta) -> str:
    """A span as people read it: 0.3s, 12s, 4m12s, 2h5m (a negative one, from skewed clocks, as 0s)."""
    total = max(span.total_seconds(), 0.0)
    if total < 10:
        return f"{total:.1f}s"
    whole = round(total)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def _shards(worker: WorkerStatus) -> str:
    return ", ".join(f"{shard} (token {token})" for shard, token in sorted(worker.shards.items()))


def worker_json(worker: WorkerStatus) -> dict[str, Any]:
    return {
        "id": worker.id,
        "state": worker.state.value,
        "since": iso(worker.since),
        "last_heartbeat": iso(worker.last_heartbeat),
        "host": worker.host,
        "started_at": iso(worker.started_at),
        "executors": sorted(worker.executors),
        "capacity": worker.capacity,
        "runs_in_progress": worker.runs_in_progress,
        "shards": [{"shard": shard, "token": token} for shard, token in sorted(worker.shards.items())],
        "ran_last_minute": worker.ran_last_minute,
        "lost_last_minute": worker.lost_last_minute,
        "coordinator": worker.coordinator,
    }


def workers_table(workers: Sequence[WorkerStatus], now: datetime) -> str:
    if not workers:
        return "no workers"
    rows = [[w.id, w.state.value, age(now - w.since), w.host, age(now - w.last_heartbeat), len(w.shards),
             f"{w.runs_in_progress}/{w.capacity}", w.ran_last_minute, w.lost_last_minute] for w in workers]  # fmt: skip
    return table(["ID", "STATE", "FOR", "HOST", "LAST BEAT", "SHARDS", "RUNNING", "RAN/MIN", "LOST/MIN"], rows)


def worker_text(worker: WorkerStatus, now: datetime) -> str:
    return fields_text([
        ("id", worker.id),
        ("state", f"{worker.state.value} for {age(now - worker.since)} (since {iso(worker.since)})"),
        ("host", worker.host),
        ("started", iso(worker.started_at)),
        ("last heartbeat", f"{iso(worker.last_heartbeat)} ({age(now - worker.last_heartbeat)} ago)"),
        ("coordinator", worker.coordinator),
        ("executors", ", ".join(sorted(worker.executors))),
        ("running", f"{worker.runs_in_progress} of {worker.capacity}"),
        ("last minute", f"{worker.ran_last_minute} ran, {worker.lost_last_minute} lost"),
        ("shards", _shards(worker)),
    ])  # fmt: skip


def shard_map_json(status: ShardMapStatus) -> dict[str, Any]:
    return {
        "version": status.version,
        "leader": status.leader or None,
        "leader_token": status.leader_token,
        "leader_since": iso(status.leader_since),
        "read_at": iso(status.read_at),
        "shards": [
            {"shard": s.shard, "owner": s.owner or None, "lease_holder": s.lease_holder or None, "token": s.token,
             "lease_expires_at": iso(s.lease_expires_at), "checkpoint": iso(s.checkpoint),
             "checkpoint_lag_s": seconds(s.checkpoint_lag)}
            for s in status.shards
        ],
    }  # fmt: skip


def shard_map_text(status: ShardMapStatus) -> str:
    """A line on the map and its leader, then a row per shard (lease time left and checkpoint
    lag as of the coordinator's read)."""
    leader = "no leader" if not status.leader else f"leader {status.leader} (token {status.leader_token})"
    if status.leader_since is not None:
        leader += f" since {iso(status.leader_since)}"
    at = status.read_at
    rows = [[s.shard, s.owner, s.lease_holder, s.token or None,
             None if s.lease_expires_at is None else age(s.lease_expires_at - at),
             None if s.checkpoint_lag is None else age(s.checkpoint_lag)] for s in status.shards]  # fmt: skip
    head = f"shard map v{status.version}, {leader}"
    return head + "\n" + table(["SHARD", "OWNER", "LEASE HOLDER", "TOKEN", "LEASE LEFT", "CHECKPOINT LAG"], rows)


def coordinators_json(coordinators: Sequence[CoordinatorStatus]) -> list[dict[str, Any]]:
    return [{"id": c.id, "address": c.address, "leader": c.leader, "leader_since": iso(c.leader_since),
             "started_at": iso(c.started_at), "last_heartbeat": iso(c.last_heartbeat)} for c in coordinators]  # fmt: skip


def coordinators_table(coordinators: Sequence[CoordinatorStatus], now: datetime) -> str:
    if not coordinators:
        return "no coordinators"
    rows = [[c.id, c.address, f"since {iso(c.leader_since)}" if c.leader and c.leader_since else "yes" if c.leader else "",
             iso(c.started_at), age(now - c.last_heartbeat)] for c in coordinators]  # fmt: skip
    return table(["ID", "ADDRESS", "LEADER", "STARTED", "LAST BEAT"], rows)

"""Chaos scenarios 11 and 12 (issue 20): Redis Sentinel failover, and many processes with
rolling restarts. Registered in `benchmarks.chaos` beside the others; run with
`python -m benchmarks.chaos --scenarios 11,12` (`--short` for the CI-sized load).

11. The Redis primary SIGKILLed under load, coordination through a Sentinel set of its own
    (benchmarks/sentinel_set.py): a replica is promoted, leases are re-taken or renewed on it,
    new fencing tokens are above every token seen before (the promoted replica may lack the
    last increments: workers and the leader seed the counter from Cassandra after a failure).
12. 3 coordinators and 6 workers; one worker after the other SIGTERMed and started again
    every few seconds for a minute: shard moves against the minimum the membership changes
    force, and how long the leases and the shard map take to settle after the last change.
    It runs on the single-node Cassandra; on a ring it would only need the cluster's store URL
    to name the ring's contact points (nothing in it depends on the node count).

The measuring is pure (`shard_moves`, `minimum_moves`, `firing_pause`), tested in
tests/unit/test_chaos_sentinel.py.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Any

from benchmarks import chaos_judge
from benchmarks.chaos_faults import Snapshot, wall_us
from benchmarks.chaos_load import FULL, SHORT
from benchmarks.chaos_scenarios import NUM_SHARDS, Outcome, Run, Spec, _s, _start_probe_worker, _token_baseline
from hourglass_core.leases.redis_connect import sync_client

US = 1_000_000
# 100-200 fires/s, mixed once and recurring (the full harness's profile is over 300).
SENTINEL_FULL = replace(FULL, interval_jobs=90, cron_jobs=30, long_jobs=6, once_rate=40)
SENTINEL_SHORT = SHORT
ROLLING_FULL = replace(SENTINEL_FULL, workers=6, coordinators=3)
ROLLING_SHORT = replace(SHORT, workers=6, coordinators=3)
PROMOTION_LIMIT_S = 10.0  # sentinels: 1 s to judge the primary down, then agree and promote
ROLLING_SPAN_S = (60.0, 30.0)  # full, short: how long workers keep restarting
ROLLING_PERIOD_S = 5.0  # one worker restarted every this many seconds
AWAY_S = 1.0  # how long a restarted worker stays away
QUIET_S = 15.0  # watched after the last change, for the settling


# -- pure measurements ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Change:
    """A worker leaving (holding `held` shards then) or joining, `live` workers after it."""

    at_us: int
    worker: str
    joined: bool
    held: int
    live: int


def minimum_moves(num_shards: int, changes: Iterable[Change]) -> int:
    """The fewest shard moves the changes force: a leaver's shards must move, and a joiner
    must get at least its floor share to be balanced."""
    return sum(num_shards // c.live if c.joined else c.held for c in changes)


def shard_moves(history: Sequence[Snapshot], since_us: int, until_us: int) -> int:
    """How often a shard's lease went to a worker other than its last owner between the two
    times (a shard free for a while and taken again by the same worker did not move)."""
    last: dict[int, str] = {}
    moves = 0
    for snapshot in history:
        if snapshot.at_us > until_us:
            break
        for shard, (owner, _) in snapshot.shards.items():
            if snapshot.at_us >= since_us and last.get(shard, owner) != owner:
                moves += 1
            last[shard] = owner
    return moves


def firing_pause(started_us: Sequence[int], fault_us: int) -> tuple[float, float]:
    """The longest gap between executor calls (µs) that ends after the fault, and when it
    ended: (its length, its end after the fault), in seconds; (0, 0) without calls."""
    calls = sorted(t for t in started_us if t >= fault_us - US)
    gaps = [(b - a, b) for a, b in pairwise(calls) if b > fault_us]
    if not gaps:
        return 0.0, 0.0
    gap, end = max(gaps)
    return round(gap / US, 3), round((end - fault_us) / US, 3)


# -- 11. the Redis primary killed -----------------------------------------------------------
def kill_primary(run: Run) -> Outcome:
    sentinels = run.sentinels
    assert sentinels is not None
    run.sleep_until(run.start_us + int(run.profile.before_s * US))
    baseline = _token_baseline(run)
    old = sentinels.primary()
    fault = wall_us()
    sentinels.kill(old)
    new = sentinels.wait_promoted(old)
    promoted = wall_us()
    sentinels.start_server(old, replica_of=new)  # as a supervisor would: back as a replica
    time.sleep(8)
    return fault, 20, {"killed_primary_port": old, "promoted_port": new, "promotion_s": _s(promoted, fault),
                       **baseline}, {}  # fmt: skip


def kill_primary_checks(run: Run, fault: int, facts: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, bool]:
    before, seen = facts.pop("_tokens_before"), facts.pop("_seen")
    history = run.watch.history
    held_before = {(sh, lease) for snap in history if snap.at_us < fault for sh, lease in snap.shards.items()}
    granted = sorted({t for snap in history if snap.at_us >= fault
                      for sh, (o, t) in snap.shards.items() if (sh, (o, t)) not in held_before})  # fmt: skip
    after = chaos_judge.checkpoint_tokens(run.cluster.cassandra, run.cluster.keyspace)
    facts["max_token_before"] = max(seen, *before.values(), 0)
    facts["leases_granted_after_the_kill"] = len(granted)
    facts["min_token_granted_after"] = granted[0] if granted else None
    facts["checkpoint_tokens_went_back"] = back = sum(1 for s, t in before.items() if after.get(s, 0) < t)
    # From the watch's first answer after the kill, not from `promoted`: the watch may see the
    # promoted replica (which kept every lease: no change to record) before wait_promoted does.
    facts["all_shards_leased_after_s"] = _s(run.watch.first_after_a_failure(fault, lambda s: len(s.shards) == NUM_SHARDS), fault)
    facts["leader_after_s"] = _s(run.watch.first_after_a_failure(fault, lambda s: s.leader is not None), fault)
    starts = [c.at_us for c in run.calls() if c.kind == "S"]
    facts["longest_pause_in_firing_s"], facts["firing_again_s"] = firing_pause(starts, fault)
    promotion = facts["promotion_s"]
    return {
        f"a replica promoted within {PROMOTION_LIMIT_S:g} s": promotion is not None and promotion <= PROMOTION_LIMIT_S,
        "fencing tokens never went backwards (leases granted after the kill above every token seen before; "
        "no checkpoint token went back)": all(t > facts["max_token_before"] for t in granted) and back == 0,
        "every shard leased on the promoted primary": facts["all_shards_leased_after_s"] is not None,
        "no submit given up (every batch accepted after retries)": run.workload.stats.gave_up == 0,
    }


# -- 12. rolling restarts of the workers ----------------------------------------------------
def rolling_restart(run: Run) -> Outcome:
    run.sleep_until(run.start_us + int(run.profile.before_s * US))
    span_s = ROLLING_SPAN_S[1 if run.short else 0]
    workers = sorted(run.cluster.workers)
    first = wall_us()
    changes: list[Change] = []
    i = 0
    while (began := wall_us()) < first + span_s * US - ROLLING_PERIOD_S * US / 2:  # a slow restart means fewer
        worker = workers[i % len(workers)]
        i += 1
        held = len(run.watch.owned_by(worker, began))
        run.cluster.workers[worker].send_signal(signal.SIGTERM)
        run.cluster.workers[worker].wait(timeout=60)
        changes.append(Change(wall_us(), worker, False, held, len(workers) - 1))
        time.sleep(AWAY_S)
        _start_probe_worker(run.cluster, run.exec_dir, worker)
        changes.append(Change(wall_us(), worker, True, 0, len(workers)))
        run.sleep_until(began + int(ROLLING_PERIOD_S * US))
    last = changes[-1].at_us
    time.sleep(QUIET_S)
    facts: dict[str, Any] = {"restarts": len(changes) // 2, "restart_every_s": ROLLING_PERIOD_S,
                             "shard_map_matches_leases": _shard_map_matches_leases(run),
                             "_changes": changes, "_last": last, "_end": wall_us()}  # fmt: skip
    return first, (last - first) / US + QUIET_S, facts, {}


def _shard_map_matches_leases(run: Run) -> bool:
    """Whether the leader's published shard map names, for every shard, its lease holder now."""
    client = sync_client(run.cluster.redis, socket_timeout=2, decode_responses=True)
    try:
        text = client.get(f"hg-{run.cluster.name}:shard_map")
    finally:
        client.close()
    snapshot = run.watch.at(wall_us())
    if not text or snapshot is None:
        return False
    owners = {int(s): o for s, o in json.loads(str(text))["owners"].items()}
    return owners == {s: o for s, (o, _) in snapshot.shards.items()}


def rolling_checks(run: Run, fault: int, facts: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, bool]:
    changes, last, end = facts.pop("_changes"), facts.pop("_last"), facts.pop("_end")
    history = run.watch.history
    facts["shard_moves"] = moves = shard_moves(history, fault, last + int(QUIET_S * US))
    facts["minimum_moves"] = least = minimum_moves(NUM_SHARDS, changes)
    facts["moves_per_minimum"] = round(moves / least, 2) if least else None
    after = [s for s in history if last < s.at_us <= end]  # not the cluster's own shutdown
    settled_at = after[-1].at_us if after else last
    facts["settled_after_last_change_s"] = _s(settled_at, last)
    final = run.watch.at(end)
    cut_off = sum(1 for r in records if r["status"] == "lost")
    facts["runs_recorded_lost"] = cut_off
    calls = run.calls()
    facts["workers_that_ran_fires_after_the_last_change"] = firing = len(
        {c.worker for c in calls if c.kind == "S" and last < c.at_us <= end})
    return {
        "shard moves at most 1.5 x the minimum the membership changes force": least > 0 and moves <= 1.5 * least,
        "leases settled (unchanged for the last 5 s watched), every shard leased": (
            end - settled_at >= 5 * US and final is not None and len(final.shards) == NUM_SHARDS),
        "the shard map names every lease holder": facts["shard_map_matches_leases"],
        "every worker ran fires after the last change": firing == run.profile.workers,
        "no run cut off (recorded LOST): every worker left gracefully": cut_off == 0,
        "no submit given up (every batch accepted after retries)": run.workload.stats.gave_up == 0,
    }  # fmt: skip


SENTINEL_SCENARIOS = [
    Spec(11, "sentinel", "The Redis primary is killed (SIGKILL); Sentinel promotes the replica", 12, 12, kill_primary,
         profiles=(SENTINEL_FULL, SENTINEL_SHORT), sentinel=True, checks=kill_primary_checks),
    Spec(12, "rolling", "3 coordinators, 6 workers: one worker after another restarted (SIGTERM, start) for a minute",
         ROLLING_SPAN_S[0] + QUIET_S, ROLLING_SPAN_S[1] + QUIET_S, rolling_restart,
         profiles=(ROLLING_FULL, ROLLING_SHORT), checks=rolling_checks),
]  # fmt: skip

"""The six fault scenarios of the chaos harness, each run on a fresh cluster under steady load.

`run_scenario` sets a cluster up (its own keyspace and Redis prefix; its own Redis or Cassandra
when that is what the scenario breaks), starts the load, injects the fault at `before_s`, keeps
the load going, waits for every expected fire, then judges. Each scenario function injects its
fault, measures what is specific to it, and returns (fault start, seconds to watch lateness
for, facts, target checks).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from benchmarks import chaos_judge, chaos_probe
from benchmarks.chaos_faults import LeaseWatch, OwnCassandra, OwnRedis, wall_us
from benchmarks.chaos_load import Profile, Workload, now
from benchmarks.cluster import Cluster

US = 1_000_000
NUM_SHARDS = 16
# The cluster's settings (the defaults): targets are derived from them.
LEADER_TTL_S = 3.0
WORKER_TIMEOUT_S = 3.0
OWN_REDIS_PORT = 6390
# The short (CI) Cassandra outage freezes the node rather than restarting it (a restart takes
# half a minute here), for longer than the driver's 10 s request timeout, so that requests fail
# with UNAVAILABLE rather than only wait.
FREEZE_S = 14.0


@dataclass
class Run:
    """One scenario's cluster, load and observers."""

    name: str
    profile: Profile
    cluster: Cluster
    watch: LeaseWatch
    workload: Workload
    exec_dir: Path
    start_us: int = 0
    facts: dict[str, Any] = field(default_factory=dict)

    def worker_pid(self, worker: str) -> int:
        return self.cluster.workers[worker].pid

    def calls(self) -> list[chaos_probe.Call]:
        return list(chaos_probe.read_calls(self.exec_dir))

    def sleep_until(self, t_us: int) -> None:
        time.sleep(max(0.0, (t_us - wall_us()) / US))


Outcome = tuple[int, float, dict[str, Any], dict[str, bool]]  # fault µs, watch s, facts, checks
Scenario = Callable[[Run], Outcome]


@dataclass(frozen=True)
class Spec:
    number: int
    name: str
    title: str
    fault_s: float  # how long the fault and its recovery take (the load runs on meanwhile)
    short_fault_s: float  # the same for the short (CI) version
    run: Scenario
    own_redis: bool = False
    own_cassandra: bool = False


def _moved_after(run: Run, victim: str, shards: set[int], after_us: int) -> int | None:
    """When every one of `shards` was first held by a worker other than `victim`."""
    return run.watch.first(
        after_us, lambda s: all(sh in s.shards and s.shards[sh][0] != victim for sh in shards)
    )


def _first_runs_elsewhere(run: Run, victim: str, shards: set[int], after_us: int) -> float | None:
    """Seconds after `after_us` by which a fire of every one of `shards` had been called on
    another worker (the slowest shard)."""
    first: dict[int, int] = {}
    for call in run.calls():
        shard = run.workload.shard.get(call.job_id)
        if call.kind == "S" and shard in shards and call.worker != victim and call.at_us >= after_us:
            first[shard] = min(first.get(shard, call.at_us), call.at_us)  # type: ignore[index]
    if set(first) != shards:
        return None
    return round((max(first.values()) - after_us) / US, 3)


def _in_flight(run: Run, worker: str, at_us: int) -> list[chaos_probe.Call]:
    """Long runs `worker` had started and not ended at `at_us`."""
    calls = run.calls()
    ended = {c.run_id for c in calls if c.kind == "E" and c.worker == worker and c.at_us <= at_us}
    return [c for c in calls if c.kind == "S" and c.worker == worker and c.at_us <= at_us
            and c.job_id in run.workload.long and c.run_id not in ended]  # fmt: skip


def _slack(run: Run) -> str:
    slack = run.profile.timing_slack_s
    return f" + {slack:g} s CI slack" if slack else ""


def _s(t_us: int | None, since_us: int) -> float | None:
    return None if t_us is None else round((t_us - since_us) / US, 3)


def _signal_worker_on_time(run: Run, victim: str, sig: signal.Signals) -> tuple[set[int], int]:
    """At the scenario's fault time, sends `sig` to `victim`; returns the shards it held then
    and the time of the fault (µs)."""
    run.sleep_until(run.start_us + int(run.profile.before_s * US))
    shards = run.watch.owned_by(victim, wall_us())
    fault = wall_us()
    run.cluster.workers[victim].send_signal(sig)
    return shards, fault


# -- 1. SIGKILL a worker ------------------------------------------------------------------
def sigkill_worker(run: Run) -> Outcome:
    victim = "w1"
    shards, fault = _signal_worker_on_time(run, victim, signal.SIGKILL)
    time.sleep(WORKER_TIMEOUT_S + 3)
    mid_run = _in_flight(run, victim, fault)
    return fault, 20, {
        "victim_shards": len(shards),
        "runs_cut_off_mid_execution": len(mid_run),
        "_mid_run": [c.run_id for c in mid_run],
        "_victim": victim, "_shards": shards,
    }, {}  # fmt: skip


def sigkill_checks(run: Run, fault: int, facts: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, bool]:
    victim, shards = facts.pop("_victim"), facts.pop("_shards")
    facts["shards_moved_s"] = _s(_moved_after(run, victim, shards, fault), fault)
    facts["shards_running_elsewhere_s"] = _first_runs_elsewhere(run, victim, shards, fault)
    cut = set(facts.pop("_mid_run"))
    lost_ids = {r["job_id"]: r for r in records if r["status"] == "lost"}
    retried = {c.job_id for c in run.calls() if c.kind == "S" and c.attempt == 2}
    cut_jobs = {c.job_id for c in run.calls() if c.run_id in cut}
    facts["mid_run_retried_as_attempt_2"] = len(cut_jobs & retried & set(lost_ids))
    limit = WORKER_TIMEOUT_S + 1 + run.profile.timing_slack_s
    moved = facts["shards_running_elsewhere_s"]
    return {
        f"dead worker's shards running elsewhere <= heartbeat timeout + 1 s{_slack(run)} ({limit:g} s)": moved is not None and moved <= limit,
        "every run cut off mid-execution recorded LOST and retried as attempt 2": facts["mid_run_retried_as_attempt_2"] == len(cut_jobs),
    }


# -- 2. SIGSTOP a worker past its lease, then SIGCONT --------------------------------------
def sigstop_worker(run: Run) -> Outcome:
    victim = "w1"
    shards, fault = _signal_worker_on_time(run, victim, signal.SIGSTOP)
    pid = run.worker_pid(victim)
    deadline = time.monotonic() + 30
    while _moved_after(run, victim, shards, fault) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2.0)  # frozen well past its leases (and its heartbeat timeout)
    resumed = wall_us()
    os.kill(pid, signal.SIGCONT)
    time.sleep(6)
    return fault, 20, {"_victim": victim, "_shards": shards, "_resumed": resumed, "frozen_s": _s(resumed, fault),
                       "victim_shards": len(shards)}, {}  # fmt: skip


def sigstop_checks(run: Run, fault: int, facts: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, bool]:
    victim, shards, resumed = facts.pop("_victim"), facts.pop("_shards"), facts.pop("_resumed")
    facts["shards_moved_s"] = _s(_moved_after(run, victim, shards, fault), fault)
    facts["shards_running_elsewhere_s"] = _first_runs_elsewhere(run, victim, shards, fault)
    # Whatever it called after waking up must be on a shard it held again by then, or on one it
    # took again after waking up and then handed over gracefully (a rebalance): fires it had
    # claimed while holding such a shard still run there (their claims are its own; the next
    # owner watches them), and are counted apart.
    violations = handed_over = 0
    mine_after = [c for c in run.calls() if c.kind == "S" and c.worker == victim and c.at_us > resumed]
    for call in mine_after:
        snapshot = run.watch.at(call.at_us)
        shard = run.workload.shard.get(call.job_id)
        if snapshot is not None and shard is not None and snapshot.shards.get(shard, ("", 0))[0] == victim:
            continue
        held_since_waking = shard is not None and any(
            resumed <= snap.at_us <= call.at_us and snap.shards.get(shard, ("", 0))[0] == victim
            for snap in run.watch.history
        )
        if held_since_waking:
            handed_over += 1
        else:
            violations += 1
    facts["calls_on_shards_it_no_longer_owned"] = violations
    facts["calls_of_fires_claimed_before_a_graceful_hand_over"] = handed_over
    regained = run.watch.first(resumed, lambda s: any(o == victim for o, _ in s.shards.values()))
    facts["rejoined_with_shards_s"] = _s(regained, resumed)
    facts["runs_after_resume"] = len(mine_after)
    limit = WORKER_TIMEOUT_S + 1 + run.profile.timing_slack_s
    moved = facts["shards_running_elsewhere_s"]
    return {
        "the resumed worker ran nothing it no longer owned": violations == 0,
        "it rejoined (took shards and ran fires again)": regained is not None and len(mine_after) > 0,
        f"frozen worker's shards running elsewhere <= {limit:g} s": moved is not None and moved <= limit,
    }


# -- 3. kill the leader coordinator -------------------------------------------------------
def kill_leader(run: Run) -> Outcome:
    run.sleep_until(run.start_us + int(run.profile.before_s * US))
    snapshot = run.watch.at(wall_us())
    assert snapshot is not None and snapshot.leader is not None, "no leader"
    leader = snapshot.leader[0]
    pid = int(re.search(r"-(\d+)-[0-9a-f]+$", leader).group(1))  # type: ignore[union-attr]
    index = next(i for i, (_, proc) in enumerate(run.cluster.coordinators) if proc.pid == pid)
    fault = wall_us()
    run.cluster.coordinators[index][1].send_signal(signal.SIGKILL)
    time.sleep(LEADER_TTL_S + 4)
    new = run.watch.first(fault, lambda s: s.leader is not None and s.leader[0] != leader)
    return fault, 15, {"failover_s": _s(new, fault), "killed_replica": f"coordinator-{index}"}, {}


def leader_checks(run: Run, fault: int, facts: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, bool]:
    limit = LEADER_TTL_S + 1 + run.profile.timing_slack_s
    return {
        f"new leader within lease TTL + 1 s{_slack(run)} ({limit:g} s)": facts["failover_s"] is not None and facts["failover_s"] <= limit,
        "no lost submit (every batch accepted after retries)": run.workload.stats.gave_up == 0,
    }


# -- 4. Redis restarted with its data gone -------------------------------------------------
def wipe_redis(run: Run) -> Outcome:
    run.sleep_until(run.start_us + int(run.profile.before_s * US))
    own: OwnRedis = run.facts.pop("_redis")
    before = chaos_judge.checkpoint_tokens(run.cluster.cassandra, run.cluster.keyspace)
    seen = max((t for snap in run.watch.history for _, t in snap.shards.values()), default=0)
    fault = wall_us()
    own.kill()
    time.sleep(1.0)
    own.start()
    back = wall_us()
    time.sleep(8)
    owned = run.watch.first(back, lambda s: len(s.shards) == NUM_SHARDS)
    return fault, 20, {
        "redis_down_s": _s(back, fault), "all_shards_owned_again_s": _s(owned, back),
        "_tokens_before": before, "_seen": seen, "_back": back,
    }, {}  # fmt: skip


def redis_checks(run: Run, fault: int, facts: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, bool]:
    before, seen, back = facts.pop("_tokens_before"), facts.pop("_seen"), facts.pop("_back")
    after = chaos_judge.checkpoint_tokens(run.cluster.cassandra, run.cluster.keyspace)
    new_tokens = [t for snap in run.watch.history if snap.at_us >= back for _, t in snap.shards.values()]
    facts["max_token_before"] = seen
    facts["min_token_after"] = min(new_tokens, default=None)
    facts["checkpoint_tokens_went_back"] = sum(1 for s, t in before.items() if after.get(s, 0) < t)
    return {
        "fencing tokens never went backwards (leases and checkpoints)": bool(new_tokens) and min(new_tokens) > seen
        and facts["checkpoint_tokens_went_back"] == 0,
        "every shard owned again": facts["all_shards_owned_again_s"] is not None,
    }


# -- 5. Cassandra stopped for 20 s ----------------------------------------------------------
def stop_cassandra(run: Run) -> Outcome:
    run.sleep_until(run.start_us + int(run.profile.before_s * US))
    own: OwnCassandra = run.facts.pop("_cassandra")
    freeze = run.facts.pop("_freeze_s", None)
    fault = wall_us()
    if freeze is not None:  # the CI variant: a frozen node (requests time out), no restart wait
        own.freeze()
        time.sleep(freeze)
        own.thaw()
        how = f"SIGSTOP for {freeze:g} s"
    else:
        own.stop()
        time.sleep(20)
        own.start()
        how = "stopped (SIGTERM) for 20 s, then started"
    back = wall_us()
    return fault, int((back - fault) / US) + 30, {"how": how, "cassandra_unavailable_s": _s(back, fault), "_back": back}, {}


def cassandra_checks(run: Run, fault: int, facts: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, bool]:
    facts.pop("_back")
    stats = run.workload.stats
    during = [t for t in stats.unavailable_at if fault / US <= t]
    facts["submits_answered_unavailable"] = len(during)
    return {
        "submits failed with UNAVAILABLE meanwhile, and were retried": len(during) > 0,
        "nothing accepted was lost (no submit given up)": stats.gave_up == 0,
    }


# -- 6. SIGTERM a worker -------------------------------------------------------------------
def sigterm_worker(run: Run) -> Outcome:
    victim = "w1"
    shards, fault = _signal_worker_on_time(run, victim, signal.SIGTERM)
    run.cluster.workers[victim].wait(timeout=60)
    exited = wall_us()
    time.sleep(2)
    in_flight = _in_flight(run, victim, fault)
    return fault, 15, {"victim_shards": len(shards), "exited_after_s": _s(exited, fault),
                       "runs_in_progress_at_sigterm": len(in_flight),
                       "_victim": victim, "_shards": shards, "_in_flight": [c.run_id for c in in_flight]}, {}  # fmt: skip


def sigterm_checks(run: Run, fault: int, facts: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, bool]:
    victim, shards, in_flight = facts.pop("_victim"), facts.pop("_shards"), set(facts.pop("_in_flight"))
    facts["shards_owned_elsewhere_s"] = _s(_moved_after(run, victim, shards, fault), fault)
    ended = {c.run_id for c in run.calls() if c.kind == "E" and c.worker == victim}
    facts["runs_finished_before_exit"] = len(in_flight & ended)
    moved = facts["shards_owned_elsewhere_s"]
    # A leaving worker finishes and reports what it claimed, and no other worker fails here:
    # no run may be taken for cut off (recorded LOST and run again as the next attempt).
    cut_off = sum(1 for r in records if r["status"] == "lost")
    facts["runs_recorded_lost"] = cut_off
    return {
        "its running jobs finished": in_flight <= ended,
        "no run cut off (recorded LOST)": cut_off == 0,
        f"its shards owned elsewhere within 1 s{_slack(run)}": moved is not None and moved <= 1.0 + run.profile.timing_slack_s,
    }


CHECKS = {
    "sigkill": sigkill_checks, "sigstop": sigstop_checks, "leader": leader_checks,
    "redis": redis_checks, "cassandra": cassandra_checks, "sigterm": sigterm_checks,
}  # fmt: skip

SCENARIOS = [
    Spec(1, "sigkill", "A worker is killed (SIGKILL)", 10, 8, sigkill_worker),
    Spec(2, "sigstop", "A worker is frozen (SIGSTOP) past its lease, then resumed", 16, 14, sigstop_worker),
    Spec(3, "leader", "The leader coordinator is killed (SIGKILL)", 10, 8, kill_leader),
    Spec(4, "redis", "Redis restarted with its data gone", 12, 10, wipe_redis, own_redis=True),
    Spec(5, "cassandra", "Cassandra stopped for 20 s and started again", 75, FREEZE_S + 8, stop_cassandra,
         own_cassandra=True),
    Spec(6, "sigterm", "A worker is shut down gracefully (SIGTERM)", 8, 8, sigterm_worker),
]


def run_scenario(spec: Spec, profile: Profile, *, short: bool, own_cassandra: OwnCassandra | None = None,
                 workdir: Path | None = None) -> dict[str, Any]:  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix=f"chaos-{spec.name}-", dir=workdir))
    own_redis = OwnRedis(OWN_REDIS_PORT, tmp) if spec.own_redis else None
    cassandra = own_cassandra.address if spec.own_cassandra and own_cassandra else None
    cluster = Cluster(name=f"chaos_{spec.name}_{uuid.uuid4().hex[:6]}", tmp=tmp, num_shards=NUM_SHARDS)
    if cassandra:
        cluster.cassandra = cassandra
    if own_redis:
        own_redis.start()
        cluster.redis = own_redis.url
    exec_dir = tmp / "exec"
    fault_s = spec.short_fault_s if short else spec.fault_s
    watch = LeaseWatch(cluster.redis, f"hg-{cluster.name}:", NUM_SHARDS)
    workload: Workload | None = None
    try:
        _migrate(cluster)
        for _ in range(profile.coordinators):
            cluster.start_coordinator()
        for i in range(profile.workers):
            cluster.start_worker(f"w{i + 1}", HOURGLASS_EXECUTORS=chaos_probe.SPEC, HOURGLASS_CHAOS_DIR=str(exec_dir))
        watch.start()
        # Time to submit the recurring jobs (about 100 a second here) before they start.
        start = now() + timedelta(seconds=5 + (profile.interval_jobs + profile.cron_jobs) / 100)
        end = start + timedelta(seconds=profile.before_s + fault_s + profile.after_s)
        workload = Workload([a for a, _ in cluster.coordinators], profile, start, end)
        workload.wait_until_ready()
        workload.submit_recurring()
        workload.start_feed()
        run = Run(spec.name, profile, cluster, watch, workload, exec_dir, start_us=round(start.timestamp() * US))
        if own_redis:
            run.facts["_redis"] = own_redis
        if spec.own_cassandra:
            run.facts["_cassandra"] = own_cassandra
            if short:
                run.facts["_freeze_s"] = FREEZE_S
        fault, watch_s, facts, _ = spec.run(run)
        run.sleep_until(round(end.timestamp() * US))
        workload.stop_feed()
        drained = _drain(run, profile.drain_s)
        cluster.stop()
        records = chaos_judge.recorded_runs(cluster.cassandra, cluster.keyspace)
        result = chaos_judge.judge(workload.expected, run.calls(), records, fault)
        recovered_s, lateness = chaos_judge.recovery(result, fault, watch_s)
        checks = CHECKS[spec.name](run, fault, facts, records)
        checks = {
            "0 lost": result["lost"] == 0,
            "0 duplicated (beyond the documented retry of a cut-off run)": result["duplicated"] == 0,
            **checks,
        }
        load_s = (end - start).total_seconds()
        return {
            "scenario": spec.number, "name": spec.name, "title": spec.title, "short": short,
            "fires_per_s": round(result["expected"] / load_s, 1), "load_s": load_s, "drained": drained,
            **result, "time_to_recover_s": recovered_s, **lateness, "facts": facts,
            "submits": {k: v for k, v in vars(workload.stats).items() if k != "unavailable_at"},
            "checks": checks, "passed": all(checks.values()), "logs": str(tmp),
        }  # fmt: skip
    finally:
        watch.stop()
        if workload is not None:
            workload.close()
        cluster.stop()
        if own_redis:
            own_redis.stop()
        if not os.environ.get("HOURGLASS_CHAOS_KEEP"):
            chaos_judge.drop_keyspace(cluster.cassandra, cluster.keyspace)


def _migrate(cluster: Cluster, attempts: int = 3) -> None:
    """Schema changes time out now and then on a busy single node: try again."""
    for attempt in range(attempts):
        try:
            cluster.migrate()
            return
        except subprocess.CalledProcessError:
            if attempt == attempts - 1:
                raise
            time.sleep(5)


def _drain(run: Run, stall_s: float, cap_s: float = 900.0) -> bool:
    """Waits until every expected fire has been called, for as long as fires keep being called
    (a saturated cluster catches up slowly, but it catches up), giving up after `stall_s`
    without any new call or `cap_s` in all; then 2 s more, so a late duplicate is seen too."""
    expected = {(job, due) for job, dues in run.workload.expected.items() for due in dues}
    began = last_progress = time.monotonic()
    called = 0
    done = False
    while time.monotonic() - last_progress < stall_s and time.monotonic() - began < cap_s:
        calls = {(c.job_id, c.due_us) for c in run.calls() if c.kind == "S"}
        if expected <= calls:
            done = True
            break
        if len(calls) > called:
            called, last_progress = len(calls), time.monotonic()
        time.sleep(1.0)
    time.sleep(2.0)
    return done

"""Chaos scenarios 8-10 (issue 20): Cassandra nodes lost under load, on the three-node ring of
`scripts/services.sh ring` (127.0.0.2-4, keyspaces with NetworkTopologyStrategy datacenter1=3;
reads and writes at LOCAL_QUORUM, LWTs at LOCAL_SERIAL).

8  one node SIGKILLed, started again 15 s later: nothing lost or duplicated, lateness back to
   normal within seconds of the kill, and within seconds of its first late fire once the node
   is started again (its return is a disturbance; the minute it takes to start is judged too);
9  two nodes SIGKILLed: submits answered UNAVAILABLE (and retried), nothing accepted lost;
   one node started again (a quorum), firing resumes; then the other;
10 one node SIGKILLed, its disk wiped, and a new node with an empty disk replacing it at the
   same address (replace_address_first_boot, streaming from the other two): nothing lost, the
   rebuilt node alone holds every run record, lateness judged from the replacement's start as in 8.

The harness starts the ring before each of these scenarios and stops it after (`Ring`); the
seed (node 1) is never the one killed, so nodetool always has a live node to ask.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from benchmarks import chaos_judge
from benchmarks.cassandra_login import cql_cluster, services_dir
from benchmarks.chaos_faults import OwnCassandra, _wait_gone, wall_us
from benchmarks.chaos_load import Profile
from benchmarks.chaos_scenarios import Outcome, Run, Spec, _s, _slack, _unavailable_since
from benchmarks.cluster import ROOT

US = 1_000_000
# How long a killed node stays down (full, short) before it is started again.
DOWN_S = (15.0, 10.0)
# "Lateness recovers within seconds": no second's fires (by due time) later than the judge's
# threshold (>= 1 s) from this long after a node went; once it is started again, no late
# seconds further apart than this (the node is seen up before nodetool says UN, and fires ran
# late then too, unjudged while the window began at UN).
RECOVER_S = 10.0
# Firing resumes this soon after a quorum is back (the driver reconnects within 2 s).
RESUME_S = 10.0

# 100 fires/s of mixed recurring (interval, cron, long) and once jobs: every write goes to three
# nodes on two cores shared with the rest. A ring started for the scenario runs the first minute
# of load up to 20 s late (cold JVMs, start-up compactions; at e55ce9d it caught up after ~70 s
# and then ran 100-160 fires/s at 3-10 ms), so the load warms it up for a minute and the steady
# lateness is the last 15 s before the fault.
RING_FULL = Profile(interval_jobs=55, cron_jobs=20, long_jobs=6, once_rate=22, before_s=90, after_s=20, drain_s=60,
                    steady_s=15)
RING_SHORT = replace(RING_FULL, interval_jobs=35, cron_jobs=15, once_rate=17, before_s=60, steady_s=8, after_s=10,
                     drain_s=30, timing_slack_s=2.0)  # fmt: skip


class Ring(OwnCassandra):
    """The ring of `scripts/services.sh ring`: started for a scenario, stopped after it (it
    replays commit logs and compacts for a while, on the cores the next scenario needs)."""

    store_options = "replication=NetworkTopologyStrategy:datacenter1=3"

    def __init__(self) -> None:
        self.hosts = os.environ.get("HOURGLASS_RING_ADDRESSES", "127.0.0.2,127.0.0.3,127.0.0.4").split(",")
        self.port = int(os.environ.get("HOURGLASS_RING_PORT", "9042"))
        self.state = services_dir() / "ring"
        self.env = dict(os.environ)

    @property
    def address(self) -> str:
        return f"{','.join(self.hosts)}:{self.port}"

    def _script(self, *args: str) -> None:
        subprocess.run(["bash", str(ROOT / "scripts" / "services.sh"), "ring", *args], env=self.env, check=True,
                       cwd=ROOT, timeout=600)  # fmt: skip

    def node_pid(self, node: int) -> int | None:
        try:
            pid = int((self.state / f"node{node}" / "cassandra.pid").read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def start(self, *nodes: int) -> float:
        """Starts the nodes (default all) and waits until they are UN; returns the seconds taken."""
        began = time.monotonic()
        self._script("start", *map(str, nodes))
        return time.monotonic() - began

    def start_in_background(self, *nodes: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(["bash", str(ROOT / "scripts" / "services.sh"), "ring", "start", *map(str, nodes)],
                                env=self.env, cwd=ROOT)  # fmt: skip

    def kill(self, node: int) -> None:
        pid = self.node_pid(node)
        assert pid is not None, f"ring node {node} is not running"
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 10)

    def replace(self, node: int) -> None:
        """Wipes the (killed) node's disk and starts a new node in its place, until it is UN."""
        self._script("replace", str(node))

    def stop(self) -> None:
        self._script("stop")


def _ring(run: Run) -> Ring:
    assert isinstance(run.own_cassandra, Ring), "a ring scenario runs on the ring"
    return run.own_cassandra


def _at_fault_time(run: Run) -> int:
    run.sleep_until(run.start_us + int(run.profile.before_s * US))
    return wall_us()


def _down_s(run: Run) -> float:
    return DOWN_S[1 if run.short else 0]


def late_seconds(calls: Sequence[tuple[int, int]], since: int, until: int | None, threshold_us: float) -> dict[int, float]:
    """Of the (due, called) pairs due in [since, until): each second after `since` (by due
    time) in which a fire was called more than `threshold_us` late, with its worst lateness (ms)."""
    late: dict[int, float] = {}
    for due, at in calls:
        if since <= due < (until or 2**62) and at - due > threshold_us:
            second = (due - since) // US
            late[second] = max(late.get(second, 0.0), (at - due) / 1000)
    return late


def late_span(late: dict[int, float]) -> float:
    """Seconds from the start of the first late second to the end of the last (0 if none)."""
    return float(max(late) - min(late) + 1) if late else 0.0


def _late_after(run: Run, since: int, until: int | None) -> tuple[int, dict[int, float]]:
    """How many fires were due in [since, until), and the seconds after `since` (by due time)
    in which a fire was called later than the judge's threshold (3 x the steady p99 before the
    fault, 1-10 s), each with its worst lateness (ms)."""
    fault = run.start_us + int(run.profile.before_s * US)
    calls = [c for c in run.calls() if c.kind == "S"]
    steady_since = run.profile.steady_since_us(run.start_us)
    steady = [(c.at_us - c.due_us) / 1000 for c in calls
              if steady_since <= c.due_us < fault - chaos_judge.STEADY_MARGIN_US]  # fmt: skip
    threshold_us = chaos_judge.late_threshold_ms(chaos_judge.pct(steady, 0.99)) * 1000
    window = [(c.due_us, c.at_us) for c in calls if since <= c.due_us < (until or 2**62)]
    return len(window), late_seconds(window, since, until, threshold_us)


def _recovered(run: Run, facts: dict[str, Any], name: str, since: int, until: int | None = None, *,
               from_first_late: bool = False) -> tuple[str, bool]:
    """Records and judges how soon lateness was back to normal after `since` (or, with
    `from_first_late`, after the first late second since then): no fires due in the window is
    not judged as recovered. Records which seconds after `since` were late, by how much."""
    due, seconds = _late_after(run, since, until)
    late = late_span(seconds) if from_first_late else (float(max(seconds) + 1) if seconds else 0.0)
    key = name.split(" (")[0].replace(" ", "_")
    span = "late_seconds_span" if from_first_late else "late_fires_until_s"
    facts[f"{span}_after_the_node_{key}"] = late
    facts[f"fires_due_after_the_node_{key}"] = due
    if seconds:  # e.g. "26 s: 1.1 s late", to tell a stall from blips
        facts[f"late_seconds_after_the_node_{key}"] = ", ".join(
            f"{s} s: {ms / 1000:.1f} s late" for s, ms in sorted(seconds.items())[:20])
    limit = RECOVER_S + run.profile.timing_slack_s
    after = f"its first late fire after the node {name}" if from_first_late else f"the node {name}"
    return f"lateness back to normal within {limit:g} s of {after}{_slack(run)}", due > 0 and late <= limit


# -- 8. one node SIGKILLed, started again later ----------------------------------------------------
def kill_one_node(run: Run) -> Outcome:
    ring, node = _ring(run), 2
    fault = _at_fault_time(run)
    ring.kill(node)
    time.sleep(_down_s(run))
    restarted = wall_us()
    ring.start(node)
    back = wall_us()
    time.sleep(5)
    return fault, (wall_us() - fault) / US + 10, {
        "node": ring.hosts[node - 1], "down_s": _s(restarted, fault), "restart_to_un_s": _s(back, restarted),
        "_restarted": restarted}, {}  # fmt: skip


def one_node_checks(run: Run, fault: int, facts: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, bool]:
    restarted = facts.pop("_restarted")
    killed_label, killed_ok = _recovered(run, facts, "was killed", fault, restarted)
    back_label, back_ok = _recovered(run, facts, "was started again", restarted, from_first_late=True)
    facts["submits_answered_unavailable"] = _unavailable_since(run, fault)
    return {killed_label: killed_ok, back_label: back_ok,
            "no submit given up (every batch accepted after retries)": run.workload.stats.gave_up == 0}  # fmt: skip


# -- 9. two nodes down: no quorum ------------------------------------------------------------------
def kill_two_nodes(run: Run) -> Outcome:
    """Nodes 2 and 3 killed; node 2 started again (a quorum), then node 3 in the background,
    waited for until the load ends (a start takes 1-2 minutes on a busy box)."""
    ring = _ring(run)
    fault = _at_fault_time(run)
    ring.kill(2)
    ring.kill(3)
    time.sleep(_down_s(run))
    restarted = wall_us()
    ring.start(2)
    quorum = wall_us()
    third = ring.start_in_background(3)
    try:
        third.wait(timeout=max(1.0, run.workload.end.timestamp() - time.time()))
        back: int | None = wall_us()
    except subprocess.TimeoutExpired:
        back = None  # still starting as the load ends: Ring.stop stops it
    return fault, (wall_us() - fault) / US, {
        "nodes": ring.hosts[1:], "no_quorum_s": _s(quorum, fault), "restart_to_un_s": _s(quorum, restarted),
        "third_node_back_s": _s(back, fault), "_quorum": quorum}, {}  # fmt: skip


def no_quorum_checks(run: Run, fault: int, facts: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, bool]:
    quorum = facts.pop("_quorum")
    facts["submits_answered_unavailable"] = during = _unavailable_since(run, fault)
    starts = sorted(c.at_us for c in run.calls() if c.kind == "S" and c.at_us >= quorum)
    facts["firing_resumed_after_quorum_s"] = resumed = _s(starts[0], quorum) if starts else None
    facts["fires_called_without_quorum"] = sum(1 for c in run.calls() if c.kind == "S" and fault + 5 * US <= c.at_us < quorum)
    limit = RESUME_S + run.profile.timing_slack_s
    # How long the backlog of the time without a quorum took to drain is recorded, not judged:
    # it depends on the spare capacity of the box, not on the scheduler.
    _recovered(run, facts, "was back (a quorum again)", quorum)
    return {
        "submits answered UNAVAILABLE without a quorum, and retried": during > 0,
        "no submit given up (every batch accepted after retries)": run.workload.stats.gave_up == 0,
        f"firing resumed within {limit:g} s of a quorum being back": resumed is not None and resumed <= limit,
    }


# -- 10. a node's disk lost and the node replaced ---------------------------------------------------
def replace_node(run: Run) -> Outcome:
    ring, node = _ring(run), 3
    fault = _at_fault_time(run)
    ring.kill(node)
    time.sleep(_down_s(run) / 2)
    replacing = wall_us()
    ring.replace(node)
    back = wall_us()
    time.sleep(5)
    return fault, (wall_us() - fault) / US + 10, {
        "node": ring.hosts[node - 1], "replace_to_un_s": _s(back, replacing), "_node": node, "_replacing": replacing}, {}  # fmt: skip


def _run_rows(address: str, keyspace: str, *, only: str | None) -> int:
    """Rows of `keyspace.runs_by_job`: at QUORUM through the ring, or at ONE from `only` alone."""
    from cassandra import ConsistencyLevel
    from cassandra.cluster import ExecutionProfile
    from cassandra.policies import WhiteListRoundRobinPolicy

    profile = None
    if only is not None:
        profile = ExecutionProfile(load_balancing_policy=WhiteListRoundRobinPolicy([only]),
                                   consistency_level=ConsistencyLevel.ONE)  # fmt: skip
    cluster = cql_cluster(address, profile=profile)
    try:
        statement = f"SELECT job_id FROM {keyspace}.runs_by_job"
        return sum(1 for _ in cluster.connect().execute(statement, timeout=120))
    finally:
        cluster.shutdown()


def replaced_checks(run: Run, fault: int, facts: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, bool]:
    node, replacing = facts.pop("_node"), facts.pop("_replacing")
    ring = _ring(run)
    facts["run_records_at_quorum"] = everywhere = _run_rows(ring.address, run.cluster.keyspace, only=None)
    facts["run_records_on_the_new_node_alone"] = alone = _run_rows(ring.address, run.cluster.keyspace,
                                                                   only=ring.hosts[node - 1])  # fmt: skip
    label, ok = _recovered(run, facts, "was replaced", replacing, from_first_late=True)
    return {
        "the new node, alone, holds every run record": alone == everywhere > 0,
        "no submit given up (every batch accepted after retries)": run.workload.stats.gave_up == 0,
        label: ok,
    }


SCENARIOS = [
    Spec(8, "ring_one_node", "Ring: one Cassandra node of three killed (SIGKILL), started again later", 150, 130,
         kill_one_node, own_cassandra=True, cassandra=Ring, checks=one_node_checks,
         profiles=(RING_FULL, RING_SHORT)),
    Spec(9, "ring_no_quorum", "Ring: two Cassandra nodes of three killed, then started again one by one", 150, 130,
         kill_two_nodes, own_cassandra=True, cassandra=Ring, checks=no_quorum_checks,
         profiles=(RING_FULL, RING_SHORT)),
    Spec(10, "ring_replace", "Ring: a Cassandra node's disk lost, a new node with an empty disk replacing it", 200, 170,
         replace_node, own_cassandra=True, cassandra=Ring, checks=replaced_checks,
         profiles=(RING_FULL, RING_SHORT)),
]  # fmt: skip

"""`python -m benchmarks.chaos`: the fault scenarios of issue 5, under steady load, with a report.

    python -m benchmarks.chaos                    # all twelve, full length (>= 250 fires/s; the ring's 100)
    python -m benchmarks.chaos --scenarios 1,3    # some of them
    python -m benchmarks.chaos --scenarios 7      # the four faults in one run
    python -m benchmarks.chaos --short            # the CI-sized versions (~80 fires/s)

1 SIGKILL a worker, 2 SIGSTOP a worker past its lease then SIGCONT, 3 kill the leader
coordinator, 4 restart Redis with its data gone, 5 stop Cassandra for 20 s, 6 SIGTERM a worker,
7 all in one run at 250 once-jobs/s with default options: Redis FLUSHALL, Cassandra SIGSTOPped
for 15 s (14 s short), the leader SIGKILLed and restarted, a worker SIGKILLed and replaced;
judged from the probe's calls alone (never run; duplicated within one attempt).
8-10 (benchmarks/chaos_ring.py) run on a three-node Cassandra ring (127.0.0.2-4, started for
each and stopped after): one node SIGKILLed and restarted, two nodes down (no quorum), a
node's disk lost and the node replaced. 11 the Redis primary SIGKILLed under a Sentinel set of
its own, 12 rolling restarts of 6 workers under 3 coordinators (benchmarks/chaos_sentinel.py).
Scenarios 4, 5 and 7 break a Redis (port 6390) and a Cassandra (port 9142, state in
.services/chaos) of their own; the shared ones are only used, never stopped.

Writes benchmarks/results/chaos-<stamp>.json and .md, and chaos-latest.md. Exit status 1 if a
target was missed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from benchmarks import chaos_load, chaos_ring, history
from benchmarks.chaos_scenarios import SCENARIOS, run_scenario
from benchmarks.chaos_sentinel import SENTINEL_SCENARIOS
from benchmarks.cluster import ROOT

RESULTS = Path(__file__).resolve().parent / "results"
ALL_SCENARIOS = [*SCENARIOS, *chaos_ring.SCENARIOS, *SENTINEL_SCENARIOS]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="CI-sized load and faults")
    parser.add_argument("--scenarios", default=",".join(str(s.number) for s in ALL_SCENARIOS),
                        help="comma-separated numbers (default: all)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply the load (jobs and submit rate) by this, e.g. 0.5 for a small machine")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def _v(value: Any, unit: str = "") -> str:
    return "–" if value is None else f"{value:g}{unit}" if isinstance(value, float) else f"{value}{unit}"


def _key_timing(r: dict[str, Any]) -> str:
    f = r.get("facts", {})
    return "; ".join(f"{label} {_v(f[key], ' s')}" for key, label in (
        ("all_shards_owned_again_s", "shards owned again after Redis was back"),
        ("cassandra_unavailable_s", "Cassandra unavailable for"),
        ("failover_s", "new leader after"),
        ("shards_running_elsewhere_s", "shards running elsewhere after"),
        ("shards_owned_elsewhere_s", "shards owned elsewhere after"),
        ("promotion_s", "replica promoted after"), ("firing_again_s", "firing again after"),
        ("settled_after_last_change_s", "settled after the last restart"),
    ) if key in f)  # fmt: skip


def _offered(results: list[dict[str, Any]], rate: float) -> str:
    rates = {r["scenario"]: r.get("offered_fires_per_s", rate) for r in results}
    if len(set(rates.values())) <= 1:
        return f"{next(iter(rates.values()), rate):g} fires/s per scenario"
    return "fires/s by scenario: " + ", ".join(f"{n}: {v:g}" for n, v in rates.items())


def markdown(results: list[dict[str, Any]], short: bool, stamp: str, rate: float = 0.0) -> str:
    lines = [
        f"# Chaos run {stamp}{' (short)' if short else ''}",
        "",
        f"Offered load: {_offered(results, rate)}. Machine: {os.cpu_count()} CPUs; load average "
        "at the start of each scenario in its details (other work on the machine shows there).",
        "",
        "Each scenario runs on a fresh cluster (2 coordinators, 3 workers, 16 shards) under a steady "
        "load of interval and cron jobs every second, long-running jobs and once-jobs submitted "
        "throughout by a client that retries with idempotency keys (scenario 7: once-jobs only, with "
        "the default options, one in ten running 2 s). *Lost*: an expected fire whose "
        "executor was never called. *Duplicated*: an attempt called twice. *Retried*: attempts >= 2 "
        "after a run was cut off (recorded LOST): the documented retry. From the probe's calls alone "
        "(no run records): *never run*: an accepted fire none of whose attempts called the executor; "
        "*dup. in an attempt*: a (job, due, attempt) called more than once; *later attempt*: fires that "
        "ran as attempt >= 2 (a run cut off mid-run and retried is not a duplicate within an attempt). "
        "Lateness is measured where "
        "the job's code is called; *recovery* covers fires due from the fault until lateness was back "
        "to normal (*time to recover*, by due time).",
        "",
        "| # | scenario | fires/s | expected | ran | lost | duplicated | retried (cut off) | "
        "never run / dup. in an attempt / later attempt | lateness p50 / p99 before | "
        "lateness p50 / p99 during recovery | time to recover | key timing | targets |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['scenario']} | {r['title']} | | | | | | | | | | | error: {r['error']} | ✗ |")
            continue
        st, rec, cl = r["steady_lateness"], r["recovery_lateness"], r["call_log"]
        lines.append(
            f"| {r['scenario']} | {r['title']} | {r['fires_per_s']:g} | {r['expected']} | {r['ran']} | {r['lost']} | "
            f"{r['duplicated']} | {r['retried_attempts']} ({r['cut_off_recorded_lost']}) | "
            f"{cl['never_run']} / {cl['duplicated_within_attempt']} / {cl['ran_as_later_attempt']} | "
            f"{_v(st['p50_ms'], ' ms')} / {_v(st['p99_ms'], ' ms')} | {_v(rec['p50_ms'], ' ms')} / {_v(rec['p99_ms'], ' ms')} | "
            f"{_v(r['time_to_recover_s'], ' s')} | {_key_timing(r)} | {'✓' if r['passed'] else '✗'} |"
        )
    for r in results:
        lines += ["", f"## {r['scenario']}. {r['title']}", ""]
        if "error" in r:
            lines += ["```", r["error"], "```"]
            continue
        for check, ok in r["checks"].items():
            lines.append(f"- {'✓' if ok else '✗'} {check}")
        cl = r["call_log"]
        lines += [
            "",
            f"- load: {r.get('load', '')} ({r.get('offered_fires_per_s', 0):g} fires/s offered, "
            f"{r['fires_per_s']:g} accepted over {r['load_s']:g} s)",
            f"- from the call log: {cl['never_run']} never run, {cl['duplicated_within_attempt']} duplicated "
            f"within one attempt, {cl['ran_as_later_attempt']} fires ran as a later attempt "
            f"({cl['later_attempt_after_attempt_1_ran']} after attempt 1 had been called, i.e. cut off and "
            f"retried; {cl['later_attempt_without_attempt_1']} without attempt 1 ever being called)",
        ]
        if cl["never_run_sample"]:
            lines.append(f"- never run (sample): {', '.join(cl['never_run_sample'])}")
        if cl["duplicated_within_attempt_sample"]:
            lines.append(f"- duplicated within an attempt (sample, job@due#attempt): "
                         f"{', '.join(cl['duplicated_within_attempt_sample'])}")  # fmt: skip
        facts = {**r["facts"], "stuck RUNNING records": r["stuck_running"], "unexpected calls": r["unexpected"],
                 "recorded statuses": r["statuses"], "submits": r["submits"],
                 "load average at start": r.get("load_average"), "waited for a quiet machine (s)": r.get("settled_s"), "logs": r["logs"]}  # fmt: skip
        lines += [f"- {k.replace('_', ' ')}: {v}" for k, v in facts.items()]
        if r["lost_sample"]:
            lines.append(f"- lost (sample): {', '.join(r['lost_sample'])}")
    return "\n".join(lines) + "\n"


def settle(idle_share: float = 0.5, max_s: float = 90.0) -> float:
    """Waits (at most `max_s`) until the CPUs were busy less than `idle_share` of two seconds
    running, so a scenario does not start inside the last one's aftermath (processes exiting,
    Cassandra flushing); returns the seconds waited."""
    began = time.monotonic()
    quiet = 0
    while quiet < 2 and time.monotonic() - began < max_s:
        quiet = quiet + 1 if psutil.cpu_percent(interval=1.0) < idle_share * 100 else 0
    return round(time.monotonic() - began, 1)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    chosen = {int(n) for n in args.scenarios.split(",") if n.strip()}
    default_profile = (chaos_load.SHORT if args.short else chaos_load.FULL).scaled(args.scale)
    subprocess.run(["bash", str(ROOT / "scripts" / "services.sh"), "start"], check=True, cwd=ROOT)
    results: list[dict[str, Any]] = []
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    for spec in ALL_SCENARIOS:
        if spec.number not in chosen:
            continue
        # The second Cassandra lives only through the scenario that breaks it: after its
        # restart it replays and compacts for minutes, on the cores the next scenario needs.
        own_cassandra = spec.cassandra() if spec.own_cassandra else None
        try:
            if own_cassandra is not None:
                print(f"starting a Cassandra of our own on {own_cassandra.address} ...", file=sys.stderr)
                own_cassandra.start()
            settled_s = settle()
            profile = spec.profile(args.short).scaled(args.scale)
            print(f"== {spec.number}. {spec.title} ({profile.fire_rate:g} fires/s)", file=sys.stderr)
            load_average = [round(x, 2) for x in os.getloadavg()]
            try:
                result = run_scenario(spec, profile, short=args.short, own_cassandra=own_cassandra)
                result["load_average"] = load_average
                result["settled_s"] = settled_s
            except Exception:  # noqa: BLE001 - report it and go on with the next scenario
                result = {"scenario": spec.number, "name": spec.name, "title": spec.title, "error": traceback.format_exc()}
        finally:
            if own_cassandra is not None:
                own_cassandra.stop()
        results.append(result)
        print(json.dumps({k: v for k, v in result.items() if k != "timeline"}, indent=1, default=str), file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"chaos-{stamp}.json").write_text(json.dumps(
        {"stamp": stamp, "short": args.short, "profile": vars(default_profile), "results": results}, indent=1, default=str))  # fmt: skip
    text = markdown(results, args.short, stamp, default_profile.fire_rate)
    (args.out / f"chaos-{stamp}.md").write_text(text)
    (args.out / "chaos-latest.md").write_text(text)
    history.append(args.out, history.chaos_line(stamp, args.short, results))
    print(text)
    return 0 if results and all(r.get("passed") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

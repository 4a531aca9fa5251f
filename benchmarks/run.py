"""`python -m benchmarks.run`: start what is needed, run the scenarios, write the results.

    python -m benchmarks.run                         # all eight at full length (~45 min)
    python -m benchmarks.run --scenarios 1,2 --duration 20
    python -m benchmarks.run --scenarios 1,2,3,4,5   # without 6 (1M jobs stored, then 1-5 again)
    python -m benchmarks.run --quick                 # every scenario for ~2-3 s at low rates (CI smoke)

Starts Redis and Cassandra if they do not answer (scripts/services.sh), a fresh cluster on
its own keyspace (1 `db migrate`, N coordinators, M workers running the probe executor) for
scenarios 1-5, 7 and 8 and another for scenario 6, and writes benchmarks/results/<stamp>-<scenario>.json, PNG plots and latest.md.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

from benchmarks import celery_peer, environment, ghz, history, monitor, probe, report, scenarios
from benchmarks.cassandra_login import cassandra_ca
from benchmarks.cluster import ROOT, Cluster, client_credentials_from_env
from benchmarks.loadgen import run_load
from benchmarks.secured_redis import start_secured_redis
from benchmarks.workload import spec_template
from hourglass_pb.v1 import jobs_pb2 as pb
from hourglass_pb.v1 import jobs_pb2_grpc

RESULTS = Path(__file__).resolve().parent / "results"


def _reachable(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def ensure_services(cluster: Cluster) -> None:
    redis = cluster.redis.split("//", 1)[-1].split("/", 1)[0].rpartition("@")[2]
    if _reachable(cluster.cassandra) and _reachable(redis):
        return
    print("starting Redis and Cassandra (scripts/services.sh start) ...", file=sys.stderr)
    subprocess.run(["bash", str(ROOT / "scripts" / "services.sh"), "start"], check=True, cwd=ROOT)


def wait_for_executor(address: str, timeout: float = 90.0) -> None:
    """Until a worker has registered the probe executor, a submit naming it is INVALID_ARGUMENT."""
    deadline = time.monotonic() + timeout
    credentials = client_credentials_from_env()
    with grpc.secure_channel(address, credentials) if credentials else grpc.insecure_channel(address) as channel:
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        while True:
            try:
                stub.SubmitJob(pb.SubmitJobRequest(job=spec_template({})), timeout=10)
                return
            except grpc.RpcError as error:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the probe executor never became known: {error}") from error
                time.sleep(0.5)


def start_cluster(args: argparse.Namespace, tmp: Path) -> Cluster:
    cluster = Cluster(name=f"bench_{uuid.uuid4().hex[:8]}", tmp=tmp, num_shards=args.shards, secure=args.secure)
    os.environ.update(cluster.client_env())  # the generators (child processes) inherit it
    ensure_services(cluster)
    if args.secure:  # the backends too: Redis over TLS as an ACL user, Cassandra over TLS
        redis = start_secured_redis(tmp / "redis")
        atexit.register(redis.stop)
        cluster.redis = redis.url
        cluster.store_options = f"tls_ca_file={cassandra_ca()}"
    cluster.migrate()
    for _ in range(args.coordinators):
        cluster.start_coordinator()
    for i in range(args.workers):
        cluster.start_worker(f"bench-w{i + 1}", HOURGLASS_EXECUTORS=probe.SPEC,
                             HOURGLASS_BENCH_PROBE_DIR=str(tmp / "probe"))
    wait_for_executor(cluster.address)
    return cluster


def _compare(base: dict[str, Any], scaled: dict[str, Any]) -> tuple[list[dict[str, Any]], bool | None]:
    """Every figure present in both, with its change; within 10 % in the figure's bad direction."""
    lower_is_better = ("_ms", "errors", "lost", "duplicates", "missing")
    rows, verdicts = [], []
    for key, figures in scaled.items():
        for name, value in (figures.get("figures") or {}).items():
            old = (base.get(key, {}).get("figures") or {}).get(name)
            if not isinstance(value, (int, float)) or not isinstance(old, (int, float)) or isinstance(value, bool):
                continue
            worse = value > old if any(s in name for s in lower_is_better) else value < old
            change = (value - old) / old if old else (0.0 if value == old else float("inf"))
            ok = not worse or abs(change) <= 0.10
            if name in ("generator_cpu_percent", "max_ms", "feed_p99_ms", "achieved_rate"):
                ok = True  # context, not a target figure
            verdicts.append(ok)
            rows.append({"scenario": key, "figure": name, "base": old, "scaled": value,
                         "change_percent": round(100 * change, 1), "within_10_percent": ok})
    return rows, (all(verdicts) if verdicts else None)


def run_scale(bench: scenarios.Bench, results: dict[str, Any], chosen: list[int], jobs: int,
              overrides: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """Scenario 6: store `jobs` far-future jobs, then run the chosen scenarios again with the
    same overrides as the first time."""
    out: dict[str, Any] = {"params": {"jobs": jobs, "scenarios": chosen}}
    with bench.watch(out):
        seed = scenarios.seed_jobs(bench, jobs)
    sample = seed.pop("sample_ids")
    # Cassandra compacts the freshly written million for minutes: the figures with 1M jobs
    # stored are the steady state after that, not the bulk load's aftermath.
    seed["cassandra_settled_s"] = settle(bench.pids, limit_s=900.0, names=("coordinator", "worker", "cassandra"))
    out["seed"] = seed
    # Memory that stays with the stored jobs: RSS before and after seeding, per process.
    out["rss_while_seeding_mib"] = {
        name: {"start": p["samples"][0][2] if p["samples"] else None, "end": p["samples"][-1][2] if p["samples"] else None,
               "peak": p["peak_rss_mib"]}
        for name, p in out["monitor"]["processes"].items()
    }
    out["scaled"] = {}
    # Ingestion has no target to hold at scale; the recurring firing repeats the once-jobs' at
    # another 7 minutes.
    for number in pass_order([n for n in chosen if n not in (7, 8)]):
        key, fn = scenarios.SCENARIOS[number]
        settle(bench.pids)
        print(f"[scale] scenario {number} ({key}) with {jobs:,} jobs stored", file=sys.stderr)
        kwargs = {**overrides(key), **({"job_ids": sample} if key == "reads" else {})}
        out["scaled"][key] = _guarded(fn, bench, **kwargs)
    rows, ok = _compare(results, out["scaled"])
    out["comparison"] = rows
    worst = [r for r in rows if not r["within_10_percent"]]
    out["figures"] = {"within_10_percent": ok, "jobs_stored": jobs, "seed_jobs_per_s": seed["jobs_per_s"],
                      "rss_growth_mib": {n: round((v["end"] or 0) - (v["start"] or 0), 1)
                                         for n, v in out["rss_while_seeding_mib"].items()}}
    out["summary"] = (f"{jobs:,} jobs stored: " + ("all compared figures within 10 %" if ok else
                      "; ".join(f"{r['scenario']} {r['figure']} {r['base']} → {r['scaled']}" for r in worst[:4])))
    return out


def _overrides(args: argparse.Namespace, key: str) -> dict[str, Any]:
    if args.rate and key in ("submit", "firing", "firing-recurring"):
        return {"rate": args.rate}
    if args.rates and key in ("max-submit", "reads"):
        return {"rates": [float(x) for x in args.rates.split(",")]}
    return {}


def _guarded(fn: Any, bench: scenarios.Bench, **kwargs: Any) -> dict[str, Any]:
    try:
        result: dict[str, Any] = fn(bench, **kwargs)
        return result
    except Exception as error:  # noqa: BLE001 - one failed scenario must not lose the others
        traceback.print_exc()
        return {"error": f"{type(error).__name__}: {error}", "figures": {}}


def settle(pids: dict[str, int], limit_s: float = 90.0, names: tuple[str, ...] = ("coordinator", "worker")) -> float:
    """Waits until the coordinators and workers (`names`) are nearly idle again (a scenario
    that overloaded them leaves a backlog behind), at most `limit_s`. Returns the seconds waited."""
    import psutil  # type: ignore[import-untyped]

    procs = [psutil.Process(pid) for name, pid in pids.items() if name.startswith(names)]
    t0 = time.monotonic()
    calm = 0
    while time.monotonic() - t0 < limit_s and calm < 2:
        before = [sum(p.cpu_times()[:2]) for p in procs]
        time.sleep(1.0)
        busiest = max((sum(p.cpu_times()[:2]) - b for p, b in zip(procs, before, strict=True)), default=0.0)
        calm = calm + 1 if busiest < 0.35 else 0
    return round(time.monotonic() - t0, 1)


def warm_up(bench: scenarios.Bench, seconds: float = 20.0) -> None:
    """Submits for a while, unrecorded: connection pools, caches and Cassandra's JIT warm up
    before the first measured scenario (5 s at 100/s left a fresh Cassandra's first pass
    measurably slower than the second, with a million jobs more stored)."""
    run_load(bench.load("submit_one", 200, seconds))


def run_ghz(bench: scenarios.Bench, results: dict[str, Any], chosen: list[int]) -> dict[str, Any]:
    """Scenarios 1 and 2 again, with ghz, using the same parameters as the Python runs."""
    binary = ghz.ensure()
    if binary is None:
        return {"error": f"ghz not found and not installed: go install {ghz.GHZ_MODULE}", "figures": {}}
    out: dict[str, Any] = {"binary": binary}
    if 1 in chosen and "params" in results.get("submit", {}):
        settle(bench.pids)
        p = results["submit"]["params"]
        section: dict[str, Any] = {}
        with bench.watch(section):
            section["result"] = ghz.fixed(binary, bench.targets, p["rate"], p["duration_s"])
        out["submit"] = section
    if 2 in chosen and "params" in results.get("max-submit", {}):
        settle(bench.pids)
        p = results["max-submit"]["params"]
        section = {}
        with bench.watch(section):
            section["result"] = ghz.step_up(binary, bench.targets, p["rates"], p["step_s"])
        out["max-submit"] = section
    out["figures"] = {
        "submit_p99_ms": out.get("submit", {}).get("result", {}).get("latency_ms", {}).get("p99"),
        "max_sustained_rate": out.get("max-submit", {}).get("result", {}).get("best"),
    }
    return out


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenarios", default="1,2,3,4,5,6,7,8",
                    help="comma-separated numbers (6 = --scale; 7 = Kafka ingestion, starts the broker)")
    ap.add_argument("--duration", type=float, help="seconds per scenario (or per step), overriding defaults")
    ap.add_argument("--rate", type=float, help="rate of scenarios 1 and 4 instead of 1000/s")
    ap.add_argument("--rates", help="comma-separated step rates for scenarios 2 and 5 (calls/s)")
    ap.add_argument("--quick", action="store_true", help="~2-3 s per scenario at low rates (smoke)")
    ap.add_argument("--scale", action="store_true", help="then store --scale-jobs jobs and run them again")
    ap.add_argument("--scale-jobs", type=int, default=1_000_000)
    ap.add_argument("--coordinators", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shards", type=int, default=64, help="the server's default is 64")
    ap.add_argument("--per-process-rate", type=float, default=1500.0,
                    help="calls/s one generator process is given before another is added")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--keep-logs", action="store_true", help="keep the cluster's logs and probe records")
    ap.add_argument("--keep-data", action="store_true", help="keep the run's keyspace (dropped by default)")
    ap.add_argument("--no-ghz", action="store_true", help="skip the ghz cross-check of scenarios 1 and 2")
    ap.add_argument("--secure", action="store_true",
                    help="mutual TLS between every process, bearer tokens on every call, Redis (its own, an ACL "
                         "user with a password) and Cassandra over TLS (implies --no-ghz)")
    ap.add_argument("--no-peer", action="store_true", help="skip the Celery peer of the firing (scenario 4)")
    ap.add_argument("--profile", action="store_true",
                    help="py-spy profiles of coordinators and a worker during scenarios 1, 4 and 5")
    args = ap.parse_args(argv)
    args.chosen = sorted({int(x) for x in args.scenarios.split(",") if x.strip()})
    if 6 in args.chosen:
        args.scale = True
        args.chosen.remove(6)
    if any(n not in scenarios.SCENARIOS for n in args.chosen):
        ap.error(f"scenarios are 1-7, not {args.scenarios}")
    if args.quick:
        args.scale_jobs = min(args.scale_jobs, 2000)
    return args


FIRING = (4, 8)  # once-jobs, recurring jobs


def pass_order(chosen: list[int]) -> list[int]:
    """The firings (4, then 8) last: at 1000 fires/s the box is nearly full, and a backlog
    left behind would be measured by any later scenario instead of its own load (`settle`
    waits for the cluster to be idle again before each)."""
    return [n for n in chosen if n not in FIRING] + [n for n in FIRING if n in chosen]


def open_bench(args: argparse.Namespace, tmp: Path, stamp: str) -> tuple[Cluster, scenarios.Bench]:
    """A fresh cluster on its own keyspace, warmed up, with its idle CPU measured."""
    tmp.mkdir(parents=True, exist_ok=True)
    cluster = start_cluster(args, tmp)
    print(f"cluster {cluster.name}: coordinators {[a for a, _ in cluster.coordinators]}, logs in {tmp}",
          file=sys.stderr)
    redis_port = int(cluster.redis.split("//", 1)[-1].split("/", 1)[0].split("?")[0].rpartition(":")[2] or 6379)
    pids = {**cluster.pids(), **monitor.find_service_pids(int(cluster.cassandra.rpartition(":")[2]), redis_port)}
    bench = scenarios.Bench(
        targets=tuple(a for a, _ in cluster.coordinators), cassandra=cluster.cassandra, keyspace=cluster.keyspace,
        probe_dir=tmp / "probe", pids=pids, quick=args.quick, duration=args.duration,
        progress=not args.no_progress and sys.stderr.isatty(), per_process_rate=args.per_process_rate,
        profile_dir=(args.out / f"{stamp}-profiles") if args.profile else None, env=cluster.env(),
    )
    if not args.quick:
        warm_up(bench)
    # A Cassandra just started compacts its system tables for a minute or two (at 40 % of a
    # core here, against about 10 % for an idle cluster's polling): wait for that too.
    settle(pids, limit_s=300.0, names=("coordinator", "worker", "cassandra"))
    idle = monitor.Monitor(pids)
    with idle:
        time.sleep(2.0 if args.quick else 10.0)
    bench.idle = monitor.idle_rates(idle.report())
    return cluster, bench


def close_bench(args: argparse.Namespace, cluster: Cluster) -> None:
    cluster.stop()
    if not args.keep_data:
        environment.drop_keyspace(cluster.cassandra, cluster.keyspace)


def run_pass(args: argparse.Namespace, bench: scenarios.Bench, results: dict[str, Any]) -> None:
    """The chosen scenarios (firing last), with the ghz cross-check before the firing."""
    steps: list[int | str] = list(pass_order(args.chosen))
    if not args.no_ghz and not args.secure and {1, 2} & set(args.chosen):
        steps.insert(len(steps) - sum(n in steps for n in FIRING), "ghz")
    for step in steps:
        if step == "ghz":
            print("ghz cross-check of scenarios 1 and 2 ...", file=sys.stderr)
            results["ghz"] = run_ghz(bench, results, args.chosen)
            continue
        number = int(step)
        key, fn = scenarios.SCENARIOS[number]
        waited = settle(bench.pids)
        print(f"scenario {number} ({key}) ... (waited {waited} s for the cluster to settle)", file=sys.stderr)
        results[key] = {"number": number, "settled_s": waited, **_guarded(fn, bench, **_overrides(args, key))}
        print(f"scenario {number} ({key}): {results[key].get('figures') or results[key].get('error')}",
              file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    tmp = Path(tempfile.mkdtemp(prefix="hourglass-bench-"))
    busy = monitor.others_load(exclude={os.getpid()})
    if busy:
        print(f"note: other processes are busy on this machine: {busy[:5]}", file=sys.stderr)
    results: dict[str, Any] = {}
    env: dict[str, Any] = {}
    cluster: Cluster | None = None
    try:
        cluster, bench = open_bench(args, tmp / "base", stamp)
        env = environment.describe(cluster.cassandra, cluster.redis)
        env["machine"]["busy_processes_at_start"] = busy
        env["cluster"] = {"coordinators": args.coordinators, "workers": args.workers, "shards": args.shards,
                          "keyspace": cluster.keyspace}
        env["idle_cpu_percent"] = dict(bench.idle)
        run_pass(args, bench, results)
        firing = results.get("firing", {}).get("params")
        if firing and not args.quick and not args.no_peer:
            # The same firing load on Celery ETA tasks, on this machine, with the cluster gone
            # (Cassandra stays up, idle once it has flushed): each scheduler gets the machine.
            waited = settle(bench.pids, limit_s=300.0, names=("cassandra",))
            close_bench(args, cluster)
            cluster = None
            print(f"Celery peer of the firing at {firing['rate']:g}/s ...", file=sys.stderr)
            results["celery-peer"] = {"settled_s": waited,
                                      **_guarded(lambda _: celery_peer.run(firing["rate"], firing["duration_s"]), bench)}
            print(f"Celery peer: {results['celery-peer'].get('figures') or results['celery-peer'].get('error')}",
                  file=sys.stderr)
        if args.scale:
            # A cluster of its own: the base pass's firing backlog would otherwise be measured.
            if cluster is not None:
                close_bench(args, cluster)
                cluster = None
            cluster, bench = open_bench(args, tmp / "scale", stamp)
            results["scale"] = {"number": 6, **run_scale(bench, results, args.chosen, args.scale_jobs,
                                                         lambda key: _overrides(args, key))}
    finally:
        if env:
            env["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
            written = report.write(args.out, stamp, env, results, args.quick)
            history.append(args.out, history.bench_line(stamp, args.quick, results))
            print("\n".join(str(p) for p in written))
        if cluster is not None:
            close_bench(args, cluster)
        if not args.keep_logs:
            shutil.rmtree(tmp, ignore_errors=True)
    print((args.out / "latest.md").read_text())
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())

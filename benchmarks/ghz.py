"""Cross-check of scenarios 1 and 2 with ghz, the standard gRPC load tool, on the same API.

ghz is a Go binary, installed on first use with ``go install`` (`GHZ_MODULE`). It is run with
``--async --rps R``: requests leave on ghz's rate limiter without waiting for earlier answers
(close to open loop), but ghz measures latency from the *actual* send, not the intended one,
so a stall in ghz itself would not show; its own CPU use is reported beside its figures.

One ghz process per coordinator, each with its share of the rate (the replicas listen on
different ports); every request's latency comes back in ghz's JSON ``details`` and is merged
here into one HDR histogram, so the percentiles are exact over both.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks import probe
from benchmarks.loadgen import new_histogram, percentiles_ms, record
from benchmarks.workload import PARAMS

ROOT = Path(__file__).resolve().parents[1]
PROTO = ROOT / "proto" / "hourglass" / "v1" / "jobs.proto"
SUBMIT = "hourglass.v1.JobService.SubmitJob"


GHZ_MODULE = "github.com/bojand/ghz/cmd/ghz@v0.93.0"  # the newest tag on the Go module proxy


def find() -> str | None:
    """The ghz binary on PATH or in Go's default install directory."""
    found = shutil.which("ghz")
    if found:
        return found
    gopath = os.environ.get("GOPATH") or str(Path.home() / "go")
    candidate = Path(gopath) / "bin" / "ghz"
    return str(candidate) if candidate.exists() else None


def ensure() -> str | None:
    """`find()`, after installing ghz with `go install` if it is missing and Go is here (a
    fresh machine: make bench installs what it needs). None if neither worked."""
    found = find()
    if found or shutil.which("go") is None:
        return found
    print(f"installing ghz: go install {GHZ_MODULE} ...", flush=True)
    try:
        subprocess.run(["go", "install", GHZ_MODULE], check=True, timeout=600)
    except (subprocess.SubprocessError, OSError) as error:
        print(f"could not install ghz: {error}", flush=True)
    return find()


def submit_data() -> dict[str, Any]:
    """A SubmitJobRequest in protobuf JSON, like the Python generator's: far-future once-job,
    small JSON params, a fresh idempotency key per request (ghz template functions)."""
    at = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "job": {
            "namespace": "bench",
            "name": "ghz-{{.RequestNumber}}",
            "executor": probe.NAME,
            "trigger": {"once": {"at": at}},
            "params": {"data": base64.b64encode(PARAMS).decode(), "contentType": "application/json"},
            "labels": {"suite": "bench"},
            "idempotencyKey": "{{newUUID}}",
        }
    }


def run(ghz: str, targets: tuple[str, ...], rate: float, duration: float, concurrency: int = 100,
        call: str = SUBMIT, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Offers `rate` calls/s for `duration` s, split over `targets`; merged figures."""
    data = data or submit_data()
    share = rate / len(targets)
    with tempfile.TemporaryDirectory(prefix="ghz-") as tmp:
        procs = []
        t = os.times()
        cpu0 = t.children_user + t.children_system
        start = time.monotonic()
        for i, target in enumerate(targets):
            out = Path(tmp) / f"ghz-{i}.json"
            cmd = [
                ghz, "--insecure", "--proto", str(PROTO), "-i", str(ROOT / "proto"), "--call", call,
                "-d", json.dumps(data), "--async", "--rps", str(max(1, round(share))),
                "-z", f"{duration}s", "--duration-stop", "wait", "-c", str(concurrency), "--connections", "1", "-t", "10s",
                "--cpus", "2", "-O", "json", "-o", str(out), target,
            ]
            procs.append((subprocess.Popen(cmd, stderr=subprocess.PIPE), out))
        reports = []
        for proc, out in procs:
            _, err = proc.communicate(timeout=duration + 120)
            if proc.returncode != 0 and not out.exists():
                raise RuntimeError(f"ghz failed: {err.decode(errors='replace')[-500:]}")
            reports.append(json.loads(out.read_text()))
        wall = time.monotonic() - start
        t = os.times()
        cpu = t.children_user + t.children_system - cpu0
    hist = new_histogram()
    codes: Counter[str] = Counter()
    ok = 0
    for report in reports:
        for d in report.get("details") or []:
            record(hist, d["latency"] / 1e9)
            codes[d.get("status") or "OK"] += 1
            ok += d.get("status", "OK") == "OK"
    errors = sum(n for code, n in codes.items() if code != "OK")
    return {
        "tool": "ghz",
        "offered_rate": rate,
        "duration_s": duration,
        "requests": sum(codes.values()),
        "ok": ok,
        "errors": errors,
        "errors_by_code": {c: n for c, n in codes.items() if c != "OK"},
        "achieved_rate": round(sum(r.get("rps", 0.0) for r in reports), 1),
        "latency_ms": percentiles_ms(hist),
        "ghz_cpu_percent": round(100 * cpu / wall, 1),
    }


def fixed(ghz: str, targets: tuple[str, ...], rate: float, duration: float) -> dict[str, Any]:
    """Scenario 1 with ghz."""
    return run(ghz, targets, rate, duration)


def step_up(ghz: str, targets: tuple[str, ...], rates: list[float], step_s: float,
            p99_limit_ms: float = 50.0) -> dict[str, Any]:
    """Scenario 2 with ghz: the same steps and the same rule for "sustained"."""
    steps, best = [], 0.0
    for rate in rates:
        r = run(ghz, targets, rate, step_s)
        p99 = r["latency_ms"].get("p99", float("inf"))
        sustained = r["errors"] == 0 and p99 <= p99_limit_ms and r["achieved_rate"] >= 0.95 * rate
        steps.append({**r, "sustained": sustained})
        if not sustained:
            break
        best = rate
        time.sleep(2)
    return {"steps": steps, "best": best}

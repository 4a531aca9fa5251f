"""A short smoke of the load-test harness (benchmarks/), so it keeps working.

Runs `python -m benchmarks.run --quick` for scenarios 1 (submit at 50/s for 2 s), 4 (firing
at 50/s for 3 s) and 8 (50 interval jobs every second for 3 s) against a real cluster on the
real Cassandra and Redis, and checks that the results are written and complete. Not a timed
test: it asserts no latency figure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.cluster import PYTHONPATH, ROOT

pytestmark = [pytest.mark.cassandra, pytest.mark.redis, pytest.mark.e2e, pytest.mark.timeout(150)]

HARNESS_PACKAGES = {"hdrh": "hdrhistogram", "matplotlib": "matplotlib", "tqdm": "tqdm", "psutil": "psutil"}


def _one(out: Path, pattern: str) -> Path:
    found = sorted(out.glob(pattern))
    assert len(found) == 1, (pattern, sorted(p.name for p in out.iterdir()))
    return found[0]


def test_quick_harness_run_writes_results_and_submits_without_errors(
    tmp_path: Path, cassandra_up: None, redis_up: None
) -> None:
    missing = [pkg for mod, pkg in HARNESS_PACKAGES.items() if importlib.util.find_spec(mod) is None]
    assert not missing, f"the benchmark harness needs {missing} (the dev extra)"
    out = tmp_path / "results"
    env = {**os.environ, "PYTHONPATH": PYTHONPATH}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--scenarios", "1,4,8", "--no-ghz",
         "--coordinators", "1", "--shards", "16", "--no-progress", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=140,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]

    submit = json.loads(_one(out, "*-submit.json").read_text())
    assert submit["params"] == {"rate": 50, "duration_s": 2, "idempotency_keys": True}
    assert submit["load"]["requests"] == 100
    assert submit["figures"]["errors"] == 0, submit["load"]["errors_by_code"]
    assert submit["load"]["ok"] == 100
    assert submit["machine"]["cores"] and submit["versions"]["cassandra"], submit["versions"]
    assert {"coordinator-0", "worker-bench-w1", "worker-bench-w2"} <= set(submit["monitor"]["processes"])

    firing = json.loads(_one(out, "*-firing.json").read_text())
    figures = firing["figures"]
    assert figures["planned"] == 150
    assert figures["expected"] + figures["not_submitted"] == 150
    assert isinstance(figures["lost"], int) and isinstance(figures["duplicates"], int)
    assert firing["lateness_histogram"]["counts"]

    recurring = json.loads(_one(out, "*-firing-recurring.json").read_text())
    assert recurring["params"]["jobs"] == 50
    # Anchored 20 ms apart over the first second, three fires each before the end.
    assert recurring["figures"]["planned"] == 150
    assert recurring["figures"]["expected"] + recurring["figures"]["not_submitted"] == 150
    assert recurring["result"]["ran"] > 0

    for pattern in ("*-submit-latency.png", "*-submit-cpu.png", "*-firing-lateness.png"):
        assert _one(out, pattern).stat().st_size > 0
    latest = (out / "latest.md").read_text()
    assert "| 1. submit at 1000 rps |" in latest and "| 4. firing" in latest

"""The compact history of benchmark and chaos runs: one JSON line per run in
`benchmarks/results/history.jsonl` (kept in git; the raw result files beside it are not)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

NAME = "history.jsonl"


def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def bench_line(stamp: str, quick: bool, results: dict[str, Any]) -> dict[str, Any]:
    """A `make bench` run: each scenario's headline figures and CPU cost per call."""
    scenarios = {
        key: {"figures": r.get("figures"), "cpu_ms_per_call": r.get("cpu_ms_per_call"), "error": r.get("error")}
        for key, r in results.items()
    }
    return {"kind": "bench", "stamp": stamp, "commit": commit(), "quick": quick, "scenarios": scenarios}


def chaos_line(stamp: str, short: bool, results: list[dict[str, Any]]) -> dict[str, Any]:
    """A `make chaos` run: each scenario's counts and whether it met its targets."""
    keep = ("expected", "ran", "lost", "duplicated", "retried_attempts", "time_to_recover_s", "passed")
    scenarios = {
        str(r["scenario"]): {**{k: r.get(k) for k in keep},
                             "call_log": r.get("call_log"), "error": bool(r.get("error")),
                             "failed_checks": [c for c, ok in r.get("checks", {}).items() if not ok]}
        for r in results
    }
    return {"kind": "chaos", "stamp": stamp, "commit": commit(), "short": short, "scenarios": scenarios}


def append(results_dir: Path, line: dict[str, Any]) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    with (results_dir / NAME).open("a") as out:
        out.write(json.dumps(line, default=str, separators=(",", ":")) + "\n")

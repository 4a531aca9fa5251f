"""Structured logs on real, secured processes: with --log-format json (here its variable) a
coordinator and a worker write one JSON object per line, and the lines about a fire name its
job, run, shard, worker and fencing token."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import hourglass
from benchmarks.cluster import Cluster
from tests.e2e.workload import now, wait_for_executor


def _json_lines(cluster: Cluster, log: str) -> list[dict[str, Any]]:
    """Every line of a process's log, each of which must be a JSON object."""
    lines = (cluster.tmp / log).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_json_logs_name_the_job_run_shard_worker_and_token_of_each_fire(cluster: Cluster) -> None:
    json_logs = {"HOURGLASS_LOG_FORMAT": "json", "HOURGLASS_TRACE": "1"}
    cluster.start_coordinator(**json_logs)
    cluster.start_worker("w-json", **json_logs)
    with hourglass.Client(cluster.address, timeout=30) as client:
        wait_for_executor(client, "echo")
        job = client.submit(hourglass.JobSpec("logged", "echo", hourglass.once(now() + timedelta(seconds=1)),
                                              namespace="logs"))  # fmt: skip
        deadline = time.monotonic() + 60
        while not (runs := [r for r in client.runs(job.id, "logs").items if r.status.finished]):
            assert time.monotonic() < deadline, "the fire did not run"
            time.sleep(0.3)
    [run] = runs
    time.sleep(0.5)  # the coordinator logs the record once it is durable

    worker = _json_lines(cluster, "w-json.log")
    about = [line for line in worker if line.get("job") == job.id]
    start = [line for line in about if line["event"].startswith("start ")]
    assert len(start) == 1, about
    assert start[0]["run"] == run.run_id
    assert start[0]["shard"] == job.shard
    assert start[0]["worker"] == "w-json"
    assert isinstance(start[0]["token"], int) and start[0]["token"] > 0
    assert start[0]["level"] == "debug" and start[0]["logger"] == "hourglass_worker.trace" and start[0]["timestamp"]
    # Every line of the worker about this fire carries the same five fields.
    assert {(line["run"], line["shard"], line["worker"], line["token"]) for line in about} == {
        (run.run_id, job.shard, "w-json", start[0]["token"])
    }
    owned = [line for line in worker if line["event"].startswith("worker w-json owns shard") and line["shard"] == job.shard]
    assert owned and owned[-1]["token"] == start[0]["token"]

    coordinator = _json_lines(cluster, "coordinator-0.log")
    [recorded] = [line for line in coordinator if line.get("run") == run.run_id]
    assert (recorded["job"], recorded["shard"], recorded["worker"], recorded["token"]) == (
        job.id, job.shard, "w-json", start[0]["token"])
    assert any(line["event"].startswith("coordinator ") and "listening on" in line["event"] for line in coordinator)

"""What a result must say about where it was measured: machine, versions, date, load.

Also the two read-only views of the store the harness needs: Cassandra's release version, and
the recorded runs of a set of jobs (read straight from `runs_by_job`, so checking 300,000
fires costs one table scan rather than 300,000 ListRuns calls).
"""

from __future__ import annotations

import hashlib
import os
import platform
import socket
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from benchmarks.cassandra_login import cql_cluster

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("grpcio", "protobuf", "cassandra-driver", "redis", "hdrhistogram", "psutil", "matplotlib")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def cassandra_version(host: str, port: int) -> str | None:
    try:
        cluster = cql_cluster(f"{host}:{port}", connect_timeout=5)
        try:
            row = cluster.connect().execute("SELECT release_version FROM system.local").one()
            return str(row[0])
        finally:
            cluster.shutdown()
    except Exception:  # noqa: BLE001 - a missing figure, not a failed benchmark
        return None


def redis_version(url: str) -> str | None:
    try:
        from hourglass_core.leases.redis_connect import sync_client

        client = sync_client(url, socket_timeout=5)  # the URL may name a password file or sentinels
        try:
            return str(client.info("server")["redis_version"])
        finally:
            client.close()
    except Exception:  # noqa: BLE001
        return None


def describe(cassandra: str, redis_url: str) -> dict[str, Any]:
    """Machine, versions and date of a run. `cassandra` is "host:port"."""
    host, _, port = cassandra.rpartition(":")
    mem = psutil.virtual_memory()
    # Results written by earlier runs (benchmarks/results) are not changes to the code.
    status = _git("status", "--porcelain", "--", ".", ":(exclude)benchmarks/results")
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "hostname": socket.gethostname(),
            "cores": os.cpu_count(),
            "cpu_model": cpu_model(),
            "memory_gib": round(mem.total / 2**30, 1),
            "kernel": platform.release(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
        "versions": {
            "python": sys.version.split()[0],
            **{p: _version(p) for p in PACKAGES},
            "cassandra": cassandra_version(host, int(port)),
            "redis_server": redis_version(redis_url),
            "hourglass_commit": _git("rev-parse", "--short", "HEAD"),
            "hourglass_worktree_dirty": bool(status),
            # Tells apart runs of one commit with different uncommitted changes.
            "hourglass_worktree_diff_sha1": hashlib.sha1(_git("diff", "HEAD", "--", ".", ":(exclude)benchmarks/results").encode()).hexdigest()[:12],
        },
    }


def recorded_runs(cassandra: str, keyspace: str, job_ids: set[str] | None = None) -> list[dict[str, Any]]:
    """Every run row of `keyspace.runs_by_job` (of the jobs in `job_ids`, if given): job_id,
    due (µs), attempt, status, worker_id, started_at (µs). Reads the whole table in pages."""
    from cassandra.query import SimpleStatement

    cluster = cql_cluster(cassandra)
    try:
        session = cluster.connect()
        statement = SimpleStatement(
            f"SELECT job_id, due, attempt, status, worker_id, started_at FROM {keyspace}.runs_by_job",
            fetch_size=5000,
        )
        rows = session.execute(statement, timeout=120)
        return [row._asdict() for row in rows if job_ids is None or row.job_id in job_ids]
    finally:
        cluster.shutdown()


def drop_keyspace(cassandra: str, keyspace: str) -> None:
    """Drops a benchmark run's keyspace (best effort: a leftover keyspace costs only disk)."""
    try:
        cluster = cql_cluster(cassandra, connect_timeout=10)
        try:
            cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)
        finally:
            cluster.shutdown()
    except Exception as error:  # noqa: BLE001
        print(f"could not drop keyspace {keyspace}: {error}")

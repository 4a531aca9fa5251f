"""The TypeScript client (client/typescript) against a real secured cluster: a coordinator and a
worker on Cassandra and Redis, mutual TLS and bearer tokens. Node's own test runner runs the
package's tests with the cluster's address, token and TLS files; this asserts its verdict, then
runs README's example."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import hourglass
from benchmarks.cluster import Cluster
from tests.e2e.workload import wait_for_executor

PACKAGE = Path(__file__).resolve().parents[2] / "client" / "typescript"


def run(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=PACKAGE, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def installed(env: dict[str, str]) -> None:
    """`npm ci` from the committed package-lock.json, unless node_modules is already its install
    (npm writes node_modules/.package-lock.json after the lock file it installed)."""
    lock, done = PACKAGE / "package-lock.json", PACKAGE / "node_modules" / ".package-lock.json"
    if done.exists() and done.stat().st_mtime >= lock.stat().st_mtime:
        return
    out = run(["npm", "ci", "--no-audit", "--no-fund"], env, timeout=300)
    assert out.returncode == 0, f"npm ci failed:\n{out.stdout}\n{out.stderr}"


def test_typescript_client_against_a_real_coordinator(cluster: Cluster) -> None:
    assert shutil.which("node") and shutil.which("npm"), "Node.js and npm are needed (Debian: nodejs, npm)"
    cluster.start_coordinator()
    cluster.start_worker("w1")
    with hourglass.Client(cluster.address, timeout=30) as client:
        wait_for_executor(client, "echo")
    env = {**os.environ, **cluster.client_env(), "HOURGLASS_COORDINATOR": cluster.address}
    installed(env)
    # Strict: a type error fails here. Incremental (dist/.tsbuildinfo): a rebuild with nothing
    # changed costs about nothing, a first one ~10 s of CPU (a busy 2-core box: a minute or more).
    build = run(["node_modules/.bin/tsc", "-p", "."], env, timeout=300)
    assert build.returncode == 0, f"tsc failed:\n{build.stdout}\n{build.stderr}"

    # The compiled form of each test source, so none compiled from a since-removed file runs.
    compiled = [f"dist/test/{source.stem}.js" for source in sorted((PACKAGE / "test").glob("*.test.ts"))]
    tests = run(["node", "--test", *compiled], env, timeout=180)
    output = f"{tests.stdout}\n{tests.stderr}"
    assert tests.returncode == 0, output
    summary = dict(re.findall(r"^# (tests|pass) (\d+)$", tests.stdout, re.MULTILINE))
    assert int(summary.get("tests", 0)) >= 15 and summary["pass"] == summary["tests"], output  # none cancelled

    # README's example, as written, through the same TLS and token: a job made, then found again.
    example = [run(["node", "dist/examples/submit.mjs"], env, timeout=60) for _ in range(2)]
    assert [e.returncode for e in example] == [0, 0], [e.stderr for e in example]
    assert [e.stdout.split()[1] for e in example] == ["created", "existed"], [e.stdout for e in example]
    assert example[0].stdout.split()[0] == example[1].stdout.split()[0]

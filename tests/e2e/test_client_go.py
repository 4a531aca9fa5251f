"""The Go client (client/go) against a real secured cluster (mutual TLS, bearer tokens,
Cassandra and Redis, a coordinator and a worker process): its own `go test` suite and its
example, run with the variables a Go program of a user would get."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import hourglass
from benchmarks.cluster import Cluster
from tests.e2e.workload import wait_for_executor

GO_CLIENT = Path(__file__).resolve().parents[2] / "client" / "go"
# The tests of client/go/hourglass/cluster_test.go, each of which must run, not skip.
CLUSTER_TESTS = 6


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        pytest.fail("the go command is not on PATH: the Go client cannot be built", pytrace=False)
    return go


def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Runs go in client/go (modules come from the Go proxy the first time, then its cache)."""
    return subprocess.run([_go(), *args], cwd=GO_CLIENT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def go_env(cluster: Cluster) -> dict[str, str]:
    """A coordinator and a worker offering `echo`; the environment that points Go at them."""
    cluster.start_coordinator()
    cluster.start_worker("w1")
    with hourglass.Client(cluster.address, timeout=30) as client:
        wait_for_executor(client, "echo")
    return {**os.environ, **cluster.client_env(), "HOURGLASS_COORDINATOR": cluster.address}


def test_go_client_suite_and_example_pass_against_a_secured_cluster(go_env: dict[str, str]) -> None:
    """One cluster for both: starting one (schema included) costs more than either run."""
    result = _run("test", "-count=1", "-v", "./...", env=go_env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "--- SKIP" not in output, output
    passed = re.findall(r"^\s*--- PASS: (TestCluster\w+)", output, re.MULTILINE)
    assert len(passed) == CLUSTER_TESTS, output

    result = _run("run", "./example", env=go_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^submitted [0-9a-f-]{36}$", result.stdout, re.MULTILINE), result.stdout
    assert "run RUN_STATUS_SUCCEEDED" in result.stdout, result.stdout


def test_go_client_is_vet_clean() -> None:
    result = _run("vet", "./...")
    assert result.returncode == 0, result.stdout + result.stderr

"""The Java client (client/java) against a real secured cluster: its JUnit tests, run by Maven's
Surefire, get the coordinator's address, a token and the TLS files from the environment."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import hourglass
from benchmarks.cluster import ROOT, Cluster
from tests.e2e.workload import wait_for_executor

JAVA_CLIENT = ROOT / "client" / "java"
REPORTS = JAVA_CLIENT / "target" / "surefire-reports"


def surefire_counts() -> dict[str, tuple[int, int]]:
    """Per test class that ran: (tests run, tests that failed, erred or were skipped)."""
    counts = {}
    for report in REPORTS.glob("*.txt"):
        found = re.search(r"Tests run: (\d+), Failures: (\d+), Errors: (\d+), Skipped: (\d+)", report.read_text())
        if found:
            run, *bad = (int(n) for n in found.groups())
            counts[report.stem.rsplit(".", 1)[-1]] = (run, sum(bad))
    return counts


def test_java_client_tests_pass_against_a_secured_cluster(cluster: Cluster) -> None:
    mvn = shutil.which("mvn")
    assert mvn, "maven (mvn) is needed to build and test the Java client"
    cluster.start_coordinator()
    cluster.start_worker("w1")
    with hourglass.Client(cluster.address, timeout=30) as client:
        wait_for_executor(client, "echo")
    env = {**os.environ, **cluster.client_env(), "HOURGLASS_COORDINATOR": cluster.address}
    shutil.rmtree(REPORTS, ignore_errors=True)  # so the counts below are this run's
    # The first run on a machine downloads the plugins, protoc and the libraries into ~/.m2.
    done = subprocess.run([mvn, "-q", "-B", "test"], cwd=JAVA_CLIENT, env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, f"mvn test failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    counts = surefire_counts()
    assert counts.get("ClusterTest", (0, 0))[0] >= 7 and not any(bad for _, bad in counts.values()), counts

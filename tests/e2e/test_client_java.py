"""The Java client (client/java) against a real secured cluster: its JUnit tests, run by Maven's
Surefire, get the coordinator's address, a token and the TLS files from the environment."""

from __future__ import annotations

import os
import shutil
import subprocess

import hourglass
from benchmarks.cluster import ROOT, Cluster
from tests.e2e.workload import wait_for_executor

JAVA_CLIENT = ROOT / "client" / "java"


def test_java_client_tests_pass_against_a_secured_cluster(cluster: Cluster) -> None:
    mvn = shutil.which("mvn")
    assert mvn, "maven (mvn) is needed to build and test the Java client"
    cluster.start_coordinator()
    cluster.start_worker("w1")
    with hourglass.Client(cluster.address, timeout=30) as client:
        wait_for_executor(client, "echo")
    env = {**os.environ, **cluster.client_env(), "HOURGLASS_COORDINATOR": cluster.address}
    # The first run on a machine downloads the plugins, protoc and the libraries into ~/.m2.
    done = subprocess.run([mvn, "-q", "-B", "test"], cwd=JAVA_CLIENT, env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, f"mvn test failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"

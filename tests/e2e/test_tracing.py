"""Tracing on real, secured processes, turned on by the standard OTEL_* variables: one trace
from the SDK's submit (client span) through the coordinator (server span) to the run the
worker executes for it (a span with the job and run ids), received by a real OTLP/HTTP
receiver."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

import hourglass
from benchmarks.cluster import PYTHONPATH, ROOT, Cluster
from tests.e2e.otlp_receiver import ReceivedSpan, Receiver, otlp_receiver
from tests.e2e.workload import now, wait_for_executor

SUBMIT = "/hourglass.v1.JobService/SubmitJob"
CLIENT, SERVER, CONSUMER = 3, 2, 5  # opentelemetry.proto.trace.v1.Span.SpanKind
# What an application does: the SDK, submitting one job (the id printed).
SUBMIT_SCRIPT = """
import sys
from datetime import datetime
import hourglass
with hourglass.Client(sys.argv[1], timeout=30) as client:
    spec = hourglass.JobSpec("traced", "echo", hourglass.once(datetime.fromisoformat(sys.argv[2])), namespace="traces")
    print(client.submit(spec).id)
"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """Set up before the cluster, so it is still there while the processes flush at their stop."""
    with otlp_receiver() as receiver:
        yield receiver


def test_one_trace_spans_the_sdk_submit_the_coordinator_and_the_run_it_causes(receiver: Receiver, cluster: Cluster) -> None:
    otel = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "200"}  # fmt: skip
    cluster.start_coordinator(**otel)
    cluster.start_worker("w-traced", **otel)
    with hourglass.Client(cluster.address, timeout=30) as client:  # this process traces nothing
        wait_for_executor(client, "echo")
        at = (now() + timedelta(seconds=2)).isoformat()
        env = {**os.environ, "PYTHONPATH": PYTHONPATH, "OTEL_SERVICE_NAME": "submitter", **otel}
        submitted = subprocess.run([sys.executable, "-c", SUBMIT_SCRIPT, cluster.address, at], env=env, cwd=ROOT,
                                   capture_output=True, text=True, timeout=60)  # fmt: skip
        assert submitted.returncode == 0, submitted.stderr
        job_id = submitted.stdout.strip()
        deadline = time.monotonic() + 60
        while not (runs := [r for r in client.runs(job_id, "traces").items if r.status.finished]):
            assert time.monotonic() < deadline, "the fire did not run"
            time.sleep(0.3)
    [run] = runs

    def run_span(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
        return [s for s in spans if s.attributes.get("hourglass.job.id") == job_id]

    spans = receiver.wait_for(lambda spans: bool(run_span(spans)), timeout=30)
    [client_span] = [s for s in spans if s.name == SUBMIT and s.kind == CLIENT]
    [server_span] = [s for s in spans if s.name == SUBMIT and s.kind == SERVER and s.trace_id == client_span.trace_id]
    [ran] = run_span(spans)
    assert client_span.service == "submitter"
    assert server_span.service == "hourglass-coordinator" and server_span.parent_span_id == client_span.span_id
    assert ran.service == "hourglass-worker" and ran.kind == CONSUMER
    assert ran.trace_id == client_span.trace_id and ran.parent_span_id == server_span.span_id
    assert ran.attributes["hourglass.run.id"] == run.run_id
    assert ran.attributes["hourglass.worker.id"] == "w-traced"
    assert ran.attributes["hourglass.run.status"] == "succeeded"
    # Nothing but this one trace and the worker's stream: health probes are not traced.
    assert not [s for s in spans if "grpc.health" in s.name]


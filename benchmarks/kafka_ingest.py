"""Scenario 7: Kafka ingestion, messages/s to durable jobs (issue 19), beside batch submit.

`messages` specs (the batch scenario's far-future probe jobs, no idempotency key of their own:
each gets its message's position) are produced to a topic of 4 partitions beforehand; then
one `hourglass ingest` process turns them into jobs. The figure is the rate of committed
offsets (a message's offset is committed only once its job is durable) from the first commit
to the last, so the process's start and its group join are not counted; `end_to_end_s` says
what they add."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from typing import Any

from benchmarks.cluster import ROOT
from hourglass_pb.v1 import jobs_pb2 as pb

PARTITIONS = 4
BOOTSTRAP = f"127.0.0.1:{os.environ.get('HOURGLASS_KAFKA_PORT', '9092')}"


def ensure_kafka() -> str:
    """The bootstrap address of the local broker; scripts/services.sh starts it unless one
    answers (RuntimeError with its output if it cannot)."""
    started = subprocess.run(["bash", "scripts/services.sh", "kafka"], cwd=ROOT, capture_output=True, text=True,
                             env={**os.environ, "PYTHON": sys.executable}, timeout=900)  # fmt: skip
    if started.returncode != 0:
        raise RuntimeError(f"no Kafka broker on {BOOTSTRAP} and scripts/services.sh could not start one:\n{started.stderr}")
    return BOOTSTRAP


def create_topics(bootstrap: str, *names: str) -> None:
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names]).values():
        future.result(timeout=30)


def delete_topics(bootstrap: str, *names: str) -> None:
    """Best effort: a topic left behind only takes disk until the broker's retention."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept: a client collected drops its requests
    for future in admin.delete_topics(list(names)).values():
        try:
            future.result(timeout=30)
        except Exception:  # noqa: BLE001 - see above
            pass


def produce(bootstrap: str, topic: str, specs: list[bytes]) -> float:
    """Sends every spec (round-robin over partitions); returns the seconds it took."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all"})
    t0 = time.monotonic()
    for i, value in enumerate(specs):
        while True:
            try:
                producer.produce(topic, value, partition=i % PARTITIONS)
                break
            except BufferError:
                producer.poll(0.1)
    if producer.flush(120):
        raise RuntimeError("messages not acknowledged by the broker")
    return time.monotonic() - t0


class Committed:
    """Reads a group's committed offsets of a topic (a consumer that never joins the group)."""

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
        self._partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]

    def __call__(self) -> int:
        """Summed over the partitions."""
        return sum(max(tp.offset, 0) for tp in self._consumer.committed(self._partitions, timeout=10))

    def close(self) -> None:
        self._consumer.close()


def committed(bootstrap: str, topic: str, group: str) -> int:
    """The group's committed offsets of `topic`, summed over its partitions."""
    reader = Committed(bootstrap, topic, group)
    try:
        return reader()
    finally:
        reader.close()


def ingest(b: Any, messages: int | None = None, batch: int = 1000, timeout_s: float = 900.0) -> dict[str, Any]:
    """Scenario 7 (see the module). `b`: a scenarios.Bench with the cluster's environment."""
    from benchmarks.workload import spec_template

    messages = messages or (5000 if b.quick else 50_000)
    bootstrap = ensure_kafka()
    topic = f"{b.keyspace}.ingest.{uuid.uuid4().hex[:6]}"
    group = f"{topic}.group"
    create_topics(bootstrap, topic, f"{topic}.dead")
    template = spec_template({})
    specs = []
    for i in range(messages):
        spec = pb.JobSpec()
        spec.CopyFrom(template)
        spec.name = f"ingest-{i}"
        specs.append(spec.SerializeToString())
    produced_s = produce(bootstrap, topic, specs)
    out: dict[str, Any] = {"params": {"messages": messages, "batch": batch, "partitions": PARTITIONS, "processes": 1}}
    log = open(b.probe_dir.parent / "ingest.log", "ab")  # noqa: SIM115 - lives as long as the process
    args = ["--brokers", bootstrap, "--topic", topic, "--group", group, "--dead-letter-topic", f"{topic}.dead",
            "--batch", str(batch)]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "hourglass", "ingest", *args], env=b.env, cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    first: tuple[float, int] | None = None
    done = 0
    reader = Committed(bootstrap, topic, group)
    try:
        with replace(b, pids={**b.pids, "ingest": proc.pid}).watch(out, "ingest"):
            while done < messages:
                if time.monotonic() - started > timeout_s or proc.poll() is not None:
                    raise RuntimeError(f"{done} of {messages} committed when the ingest process "
                                       f"{'exited' if proc.poll() is not None else 'timed out'}")  # fmt: skip
                time.sleep(0.05)
                done = reader()
                if first is None and done:
                    first = (time.monotonic(), done)
            finished = time.monotonic()
    finally:
        reader.close()
        delete_topics(bootstrap, topic, f"{topic}.dead")
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out["stop"] = "the ingest process did not stop within 30 s of SIGTERM: killed"
        log.close()
    assert first is not None
    steady_s = finished - first[0]
    out["figures"] = {
        "messages_per_s": round((messages - first[1]) / steady_s, 1) if steady_s > 0 else None,
        "end_to_end_s": round(finished - started, 1),
        "produce_messages_per_s": round(messages / produced_s, 1),
    }
    b.cost(out, messages, "message ingested")
    return out

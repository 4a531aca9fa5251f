"""Kafka ingestion end to end: a real broker (Kafka 4, KRaft), `hourglass ingest` processes,
a coordinator and a worker on the real Cassandra and Redis of the secured e2e cluster."""

from __future__ import annotations

import json
import re
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Consumer, Message, Producer

import hourglass
from benchmarks.cluster import Cluster, free_port
from benchmarks.kafka_ingest import committed, create_topics, delete_topics
from hourglass_coordinator.ingest.decode import ERROR, ERROR_FIELD, RUN_ID, SOURCE, header
from hourglass_core import wire
from hourglass_core.firing import job_id_for_key
from hourglass_pb.v1 import jobs_pb2 as pb
from tests.e2e.workload import wait_for_executor

Topics = tuple[str, str, str]  # jobs, dead letters, results


@pytest.fixture
def topics(cluster: Cluster, kafka: str) -> Iterator[Topics]:
    """This test's own jobs, dead-letter and results topics (4 partitions each), deleted after."""
    names: Topics = (f"{cluster.name}.jobs", f"{cluster.name}.dead", f"{cluster.name}.results")
    create_topics(kafka, *names)
    yield names
    delete_topics(kafka, *names)


def _ingest_args(kafka: str, topics: Topics, group: str, *extra: str) -> list[str]:
    jobs, dead, _ = topics
    return ["--brokers", kafka, "--topic", jobs, "--group", group, "--dead-letter-topic", dead, *extra]


def _spec(name: str, at: datetime, executor: str = "echo", key: str = "", labels: dict[str, str] | None = None,
          params: bytes = b"") -> bytes:  # fmt: skip
    spec = pb.JobSpec(name=name, executor=executor, idempotency_key=key, labels=labels or {},
                      params=pb.Payload(data=params, content_type="application/json" if params else ""))  # fmt: skip
    spec.trigger.once.at.CopyFrom(wire.ts(at))
    return spec.SerializeToString()


Outgoing = tuple[bytes, bytes, list[tuple[str, str | bytes | None]]]  # key, value, headers


def _produce(kafka: str, topic: str, messages: Sequence[Outgoing]) -> None:
    producer = Producer({"bootstrap.servers": kafka, "linger.ms": 20})
    for key, value, headers in messages:
        while True:
            try:
                producer.produce(topic, value, key, headers=headers)
                break
            except BufferError:  # the local queue is full: let it drain
                producer.poll(0.1)
    assert producer.flush(60) == 0


def _read(kafka: str, topic: str, until: Callable[[list[Message]], bool], timeout: float = 60.0) -> list[Message]:
    """Every message of `topic` from its start, until `until(all read)` or the timeout."""
    consumer = Consumer({"bootstrap.servers": kafka, "group.id": f"{topic}-reader", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})  # fmt: skip
    consumer.subscribe([topic])
    read: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while not until(read) and time.monotonic() < deadline:
            read += [m for m in consumer.consume(500, 0.5) if m.error() is None]
    finally:
        consumer.close()
    return read


def _metric(port: int, name: str) -> float:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return 0.0
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _wait(what: str, done: Callable[[], bool], timeout: float, cluster: Cluster) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{cluster.logs()}"
        time.sleep(0.25)


def _all_jobs(client: hourglass.Client) -> list[hourglass.Job]:
    """The namespace's jobs, but wait_for_executor's probe."""
    jobs: list[hourglass.Job] = []
    token = ""
    while True:
        page = client.list(page_size=1000, page_token=token)
        jobs += [job for job in page.items if job.name != "readiness-probe"]
        token = page.next_page_token
        if not token:
            return jobs


def test_ten_thousand_specs_are_ten_thousand_jobs_with_the_ingest_process_killed_midway(
    cluster: Cluster, kafka: str, topics: Topics
) -> None:
    group = f"{cluster.name}-ingest"
    cluster.start_coordinator()
    cluster.start_worker("w1")
    later = datetime.now(UTC) + timedelta(days=1)  # nothing fires: this test is about intake
    count = 10_000
    _produce(kafka, topics[0], [(f"k{i}".encode(), _spec(f"k{i}", later), []) for i in range(count)])
    with hourglass.Client(cluster.address, timeout=60) as client:
        wait_for_executor(client, "echo")
        port = free_port()
        first = cluster.start_ingest("ingest", *_ingest_args(kafka, topics, group, "--batch", "500"),
                                     HOURGLASS_METRICS_LISTEN=f"127.0.0.1:{port}")  # fmt: skip
        created, existing = (f'hourglass_ingest_messages_total{{outcome="{o}"}}' for o in ("created", "existing"))
        _wait("a first share of jobs", lambda: _metric(port, created) >= 2_000, 180, cluster)
        written = _metric(port, created)
        time.sleep(0.5)  # into the next batch (about a second's work here): some of it written, none committed
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        killed_at = committed(kafka, topics[0], group)
        assert killed_at < count
        started = time.monotonic()
        cluster.start_ingest("ingest", *_ingest_args(kafka, topics, group, "--batch", "500"),
                             HOURGLASS_METRICS_LISTEN=f"127.0.0.1:{port}")  # fmt: skip
        _wait("every offset committed", lambda: committed(kafka, topics[0], group) == count, 300, cluster)
        rate = (count - killed_at) / (time.monotonic() - started)
        # Jobs written but not committed when it died were read again and found existing.
        again = _metric(port, existing)
        assert again >= written - killed_at
        jobs = _all_jobs(client)
    names = sorted(job.name for job in jobs)
    assert len(jobs) == count and names == sorted(f"k{i}" for i in range(count)), (len(jobs), len(set(names)))
    keys = {job.idempotency_key for job in jobs}
    assert len(keys) == count and all(re.fullmatch(rf"{re.escape(topics[0])}/[0-3]/\d+", k) for k in keys)
    print(f"kafka ingest: {count} messages -> {len(jobs)} jobs; killed with {written:.0f} written, "
          f"{killed_at} committed; {again:.0f} read again and found existing; "
          f"after the restart {rate:.0f} messages/s to durable jobs (SLOW BOX: shared with other work)")


def test_bad_messages_go_to_the_dead_letter_topic_with_their_error_and_do_not_block_the_rest(
    cluster: Cluster, kafka: str, topics: Topics
) -> None:
    cluster.start_coordinator()
    cluster.start_worker("w1")
    json_header: list[tuple[str, str | bytes | None]] = [("content-type", b"application/json")]
    later = datetime.now(UTC) + timedelta(days=1)
    at = wire.ts(later).ToJsonString()
    messages: list[Outgoing] = [
        (b"garbage", b"\xff\x01not a spec", []),
        (b"bad-cron", json.dumps({"name": "x", "executor": "echo", "trigger": {"cron": {"expression": "99 * * * *"}}}).encode(),
         json_header),
        (b"typo", json.dumps({"name": "x", "executor": "echo", "trigger": {"once": {"at": at}}, "nmae": "y"}).encode(),
         json_header),
        (b"no-executor", _spec("x", later, executor="nope"), [("trace", b"t-1")]),
        (b"good-json", json.dumps({"name": "good-json", "executor": "echo", "trigger": {"once": {"at": at}}}).encode(),
         json_header),
        (b"good-binary", _spec("good-binary", later), []),
    ]
    with hourglass.Client(cluster.address, timeout=60) as client:
        wait_for_executor(client, "echo")
        _produce(kafka, topics[0], messages)
        cluster.start_ingest("ingest", *_ingest_args(kafka, topics, f"{cluster.name}-ingest"))
        dead = {m.key() or b"": m for m in _read(kafka, topics[1], lambda read: len(read) >= 4, timeout=120)}
        _wait("the good ones' offsets committed", lambda: committed(kafka, topics[0], f"{cluster.name}-ingest") == 6,
              60, cluster)  # fmt: skip
        assert sorted(j.name for j in _all_jobs(client)) == ["good-binary", "good-json"]
    assert sorted(dead) == [b"bad-cron", b"garbage", b"no-executor", b"typo"]
    fields = {key: header(m.headers(), ERROR_FIELD) for key, m in dead.items()}
    assert fields == {b"garbage": "value", b"bad-cron": "job.trigger.cron.expression", b"typo": "value",
                      b"no-executor": "job.executor"}  # fmt: skip
    assert "nmae" in header(dead[b"typo"].headers(), ERROR)
    assert "out of range" in header(dead[b"bad-cron"].headers(), ERROR)
    # The message as it came (value, key, its own headers), and where it came from.
    assert dead[b"garbage"].value() == b"\xff\x01not a spec"
    assert header(dead[b"no-executor"].headers(), "trace") == "t-1"
    assert re.fullmatch(rf"{re.escape(topics[0])}/[0-3]/\d+", header(dead[b"bad-cron"].headers(), SOURCE))


def test_finished_runs_of_labelled_jobs_are_published_to_the_results_topic_keyed_by_job_id(
    cluster: Cluster, kafka: str, topics: Topics
) -> None:
    cluster.start_coordinator()
    cluster.start_worker("w1")
    with hourglass.Client(cluster.address, timeout=60) as client:
        wait_for_executor(client, "echo")
        cluster.start_ingest("ingest", *_ingest_args(kafka, topics, f"{cluster.name}-ingest", "--results-topic", topics[2]))
        time.sleep(6)  # the ingest process has announced its interest in runs (run_watch)
        soon = datetime.now(UTC) + timedelta(seconds=2)
        _produce(kafka, topics[0], [
            (b"a", _spec("wanted", soon, key="wanted", labels={"hourglass.results": "kafka"}, params=b'{"n": 1}'), []),
            (b"b", _spec("unlabelled", soon, key="unlabelled"), []),
        ])  # fmt: skip
        wanted, unlabelled = job_id_for_key("default", "wanted"), job_id_for_key("default", "unlabelled")
        results = _read(kafka, topics[2], lambda read: any(m.key() == wanted.encode() for m in read), timeout=90)
        # The unlabelled job ran too (same time, same worker), and published nothing.
        _wait("the unlabelled job's run", lambda: any(r.status.finished for r in client.runs(unlabelled).items), 30,
              cluster)  # fmt: skip
        time.sleep(2)
        results += _read(kafka, topics[2], lambda read: False, timeout=3)
    keys = [m.key() for m in results]
    assert wanted.encode() in keys and unlabelled.encode() not in keys, (keys, cluster.logs())
    message = next(m for m in results if m.key() == wanted.encode())
    run = pb.Run.FromString(message.value() or b"")
    assert run.job_id == wanted and run.status == pb.RUN_STATUS_SUCCEEDED and json.loads(run.result.data) == {"n": 1}
    assert header(message.headers(), RUN_ID) == run.run_id

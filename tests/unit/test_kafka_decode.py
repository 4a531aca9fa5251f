"""Kafka ingest, without a broker: a message's value and headers to a JobSpec (or the error
that sends it to the dead-letter topic), and the offsets a batch commits."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Message

from hourglass_coordinator.ingest.decode import (
    ERROR,
    ERROR_FIELD,
    SOURCE,
    Position,
    check_namespace,
    dead_letter_headers,
    decode_spec,
    header,
)
from hourglass_coordinator.ingest.kafka import parse_options, retriable
from hourglass_coordinator.ingest.loop import next_offsets
from hourglass_core import wire
from hourglass_core.errors import InvalidArgument
from hourglass_core.models import IntervalTrigger, JobSpec, OnceTrigger
from hourglass_pb.v1 import jobs_pb2 as pb

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
AT = Position("jobs", 3, 42)


def _binary(key: str = "") -> bytes:
    spec = pb.JobSpec(name="report", executor="echo", idempotency_key=key)
    spec.trigger.once.at.CopyFrom(wire.ts(NOW + timedelta(minutes=5)))
    return spec.SerializeToString()


def test_a_binary_spec_without_a_key_gets_its_position_as_its_idempotency_key() -> None:
    spec = decode_spec(_binary(), None, AT, NOW)
    assert spec == JobSpec(name="report", executor="echo", trigger=OnceTrigger(at=NOW + timedelta(minutes=5)),
                           idempotency_key="jobs/3/42")  # fmt: skip


def test_a_key_the_message_carries_is_kept() -> None:
    assert decode_spec(_binary("order-17"), [("content-type", b"application/x-protobuf")], AT, NOW).idempotency_key == "order-17"


def test_json_is_read_by_its_content_type_header_whatever_its_case_and_parameters() -> None:
    value = json.dumps({"name": "tick", "executor": "echo", "trigger": {"interval": {"every": "30s"}},
                        "labels": {"team": "a"}}).encode()  # fmt: skip
    spec = decode_spec(value, [("Content-Type", b"application/json; charset=utf-8")], AT, NOW)
    assert isinstance(spec.trigger, IntervalTrigger) and spec.trigger.every == timedelta(seconds=30)
    assert spec.labels == {"team": "a"}
    assert spec.idempotency_key == "jobs/3/42"


@pytest.mark.parametrize(("value", "headers", "field", "says"), [
    (None, None, "value", "is empty"),
    (b"\xff\x01garbage", None, "value", "protobuf binary"),
    (b"{not json", [("content-type", b"application/json")], "value", "in JSON"),
    (b'{"nmae": "x"}', [("content-type", b"application/json")], "value", "nmae"),
    (b"\xff", [("content-type", b"application/json")], "value", "in JSON"),
    (_binary(), [("content-type", b"text/csv")], "headers.content-type", "text/csv"),
    (pb.JobSpec(name="x", executor="echo").SerializeToString(), None, "job.trigger", "is required"),
])  # fmt: skip
def test_what_does_not_decode_is_refused_naming_the_field(
    value: bytes | None, headers: list[tuple[str, bytes]] | None, field: str, says: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        decode_spec(value, headers, AT, NOW)
    assert refused.value.field == field and says in str(refused.value)


def test_a_dead_letter_keeps_the_messages_headers_and_adds_the_error_its_field_and_source() -> None:
    headers = dead_letter_headers([("trace", b"abc"), ("empty", None)], AT, InvalidArgument("job.name", "must not be empty"))
    assert headers == [("trace", b"abc"), (ERROR, b"job.name: must not be empty"), (ERROR_FIELD, b"job.name"),
                       (SOURCE, b"jobs/3/42")]  # fmt: skip
    assert header(headers, ERROR_FIELD) == "job.name" and header({"A": "b"}, "a") == "b" and header(None, "a") == ""


def test_a_batch_commits_the_offset_after_its_last_message_of_each_partition() -> None:
    messages = [Message(topic="jobs", partition=p, offset=o) for p, o in [(1, 7), (0, 3), (1, 9), (1, 8), (0, 2)]]
    assert [(tp.topic, tp.partition, tp.offset) for tp in next_offsets(messages)] == [("jobs", 0, 4), ("jobs", 1, 10)]


def test_kafka_options_are_key_value_pairs() -> None:
    assert parse_options(" security.protocol=SSL, ssl.ca.location=/ca.pem,") == {
        "security.protocol": "SSL", "ssl.ca.location": "/ca.pem"}
    with pytest.raises(ValueError, match="'acks'"):
        parse_options("acks")


def test_an_error_that_is_not_kafkas_is_worth_retrying() -> None:
    assert retriable(OSError("store away"))


def test_a_namespace_outside_the_allowed_ones_is_refused_naming_it() -> None:
    spec = decode_spec(_binary(), None, AT, NOW)
    assert check_namespace(spec, frozenset()) is spec and check_namespace(spec, frozenset({"default"})) is spec
    with pytest.raises(InvalidArgument) as refused:
        check_namespace(spec, frozenset({"billing", "ops"}))
    assert refused.value.field == "job.namespace" and "allowed: billing, ops" in str(refused.value)

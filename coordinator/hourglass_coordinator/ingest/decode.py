"""A Kafka message to a JobSpec, and what a refused message carries to the dead-letter topic.
Pure: no Kafka client, no clock."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from google.protobuf import json_format
from google.protobuf.message import DecodeError

from hourglass_core import wire
from hourglass_core.errors import HourglassError, InvalidArgument
from hourglass_core.models import JobSpec
from hourglass_pb.v1 import jobs_pb2 as pb

CONTENT_TYPE = "content-type"
JSON = "application/json"
PROTOBUF = ("application/x-protobuf", "application/protobuf", "application/vnd.google.protobuf")
# Headers of a dead-lettered message, beside the ones it came with.
ERROR = "hourglass-error"
ERROR_FIELD = "hourglass-error-field"
SOURCE = "hourglass-source"  # topic/partition/offset it was read from
# Headers of a result: the run, and how its value is encoded (a hourglass.v1.Run).
RUN_ID = "hourglass-run-id"
RUN_STATUS = "hourglass-run-status"

# As confluent-kafka gives and takes them.
Headers = Sequence[tuple[str, str | bytes | None]] | Mapping[str, str | bytes | None]


@dataclass(frozen=True, slots=True)
class Position:
    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


def pairs(headers: Headers | None) -> Iterator[tuple[str, bytes]]:
    """Each header with a value, its value as bytes."""
    for key, value in headers.items() if isinstance(headers, Mapping) else headers or ():
        if value is not None:
            yield key, value.encode() if isinstance(value, str) else value


def header(headers: Headers | None, name: str) -> str:
    """The last value of header `name` (case-insensitive) as text; "" if absent."""
    found = ""
    for key, value in pairs(headers):
        if key.lower() == name:
            found = value.decode("utf-8", "replace")
    return found


def decode_spec(value: bytes | None, headers: Headers | None, at: Position, now: datetime) -> JobSpec:
    """The job spec a message asks for: its value a hourglass.v1.JobSpec in protobuf binary,
    or in its JSON mapping when the content-type header says application/json. Without an
    idempotency key of its own, its key is the message's position (topic/partition/offset),
    so a message submitted twice is one job. Raises InvalidArgument naming the field: `value`
    (or `headers.content-type`) when it does not decode, `job.…` as SubmitJob would."""
    if not value:
        raise InvalidArgument("value", "is empty: a message must carry a hourglass.v1.JobSpec")
    kind = header(headers, CONTENT_TYPE).partition(";")[0].strip().lower()
    message = pb.JobSpec()
    if kind == JSON:
        try:
            json_format.Parse(value, message)
        except (json_format.ParseError, ValueError) as error:  # ValueError: not UTF-8
            raise InvalidArgument("value", f"is not a hourglass.v1.JobSpec in JSON: {error}") from None
    elif kind in ("", *PROTOBUF):
        try:
            message.ParseFromString(value)
        except DecodeError as error:
            raise InvalidArgument("value", f"is not a hourglass.v1.JobSpec in protobuf binary: {error}") from None
    else:
        raise InvalidArgument(f"headers.{CONTENT_TYPE}", f"{kind!r} is not {JSON} or application/x-protobuf")
    spec = wire.spec_from_pb(message, now, "job")
    return spec if spec.idempotency_key else replace(spec, idempotency_key=str(at))


def check_namespace(spec: JobSpec, allowed: frozenset[str]) -> JobSpec:
    """`spec` if its namespace is among `allowed` (empty: any namespace); else InvalidArgument
    naming job.namespace. The topic's producers are not authenticated as API callers are."""
    if allowed and spec.namespace not in allowed:
        raise InvalidArgument("job.namespace", f"{spec.namespace!r} is not a namespace this topic may submit to "
                                               f"(allowed: {', '.join(sorted(allowed))})")  # fmt: skip
    return spec


def dead_letter_headers(headers: Headers | None, at: Position, error: HourglassError) -> list[tuple[str, bytes]]:
    """The message's own headers, then why it was refused: the error, the field it names
    (`value`, `job.trigger.cron.expression`, ...) and where the message was read."""
    field = getattr(error, "field", "")
    return [*pairs(headers), (ERROR, str(error).encode()), (ERROR_FIELD, str(field).encode()), (SOURCE, str(at).encode())]

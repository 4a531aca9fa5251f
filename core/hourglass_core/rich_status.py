"""google.rpc error details on failed calls, as every gRPC language's tooling reads them: an
INVALID_ARGUMENT carries a `BadRequest` naming the bad field, an UNAVAILABLE or
RESOURCE_EXHAUSTED a `RetryInfo` saying when to try again. The status message stays as before
("field: message"), so a client that reads no details loses nothing.

The coordinator builds them here (`for_error`, `status`); the SDK reads them (`read`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.any_pb2 import Any as AnyPb
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from hourglass_core import errors, wire

# After a backend (Cassandra, Redis) failed a call: the driver reconnects within about a second.
UNAVAILABLE_RETRY_S = 1.0


def status(code: grpc.StatusCode, message: str, *, field: str = "", retry_after: float | None = None) -> grpc.Status:
    """A status for `context.abort_with_status`: `message`, plus a BadRequest naming `field`
    and a RetryInfo of `retry_after` seconds, where given."""
    out = status_pb2.Status(code=code.value[0], message=message)
    if field:
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=field, description=message.removeprefix(f"{field}: ")
        )
        _attach(out, error_details_pb2.BadRequest(field_violations=[violation]))
    if retry_after is not None:
        delay = Duration()
        delay.FromNanoseconds(round(retry_after * 1e9))
        _attach(out, error_details_pb2.RetryInfo(retry_delay=delay))
    return rpc_status.to_status(out)


def _attach(out: status_pb2.Status, detail: Any) -> None:
    packed = AnyPb()
    packed.Pack(detail)
    out.details.append(packed)


def for_error(error: errors.HourglassError) -> grpc.Status:
    """The status a domain error is answered with (its code from `wire.status_code`)."""
    code = wire.status_code(error)
    if isinstance(error, errors.InvalidArgument):
        return status(code, str(error), field=error.field)
    if isinstance(error, errors.Unavailable):
        return status(code, str(error), retry_after=UNAVAILABLE_RETRY_S)
    return status(code, str(error))


@dataclass(frozen=True, slots=True)
class Details:
    """What a failed call's google.rpc details say (None: they say nothing of it)."""

    field: str | None = None  # the first field violation's field
    retry_after: float | None = None  # seconds


NONE = Details()


def read(call: Any) -> Details:
    """The details of a failed call (a grpc.RpcError that is a grpc.Call, or an AioRpcError);
    NONE for a call without them, or with details that do not decode or do not match its
    status (grpcio-status checks code and message)."""
    try:
        found = rpc_status.from_call(call)
    except (AttributeError, TypeError, ValueError, DecodeError):  # not a call, or details that do not match
        return NONE
    if found is None:
        return NONE
    field: str | None = None
    retry_after: float | None = None
    for detail in found.details:
        if field is None and detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            if detail.Unpack(bad) and bad.field_violations:
                field = bad.field_violations[0].field
        elif retry_after is None and detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            if detail.Unpack(info):
                retry_after = max(0.0, info.retry_delay.ToNanoseconds() / 1e9)
    return Details(field, retry_after)

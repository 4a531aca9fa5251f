"""Fuzzing every RPC against real coordinators, one on SQLite and one on Cassandra and Redis
(secured: mutual TLS and a token): requests generated from the .proto descriptors (random
and boundary values, long strings, repeated fields, nested messages) and raw bytes that are
no message at all. Whatever comes in, the answer is a status that names the problem (never
INTERNAL or UNKNOWN), the server stays up, and a refused submit stores nothing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.cluster import PYTHONPATH, ROOT, Cluster, free_port, wait_for_grpc
from hourglass_core.firing import job_id_for_key
from hourglass_pb.v1 import jobs_pb2 as pb
from hourglass_pb.v1 import worker_pb2 as wpb

pytestmark = pytest.mark.e2e
SERVICE = pb.DESCRIPTOR.services_by_name["JobService"]
UNARY = [m for m in SERVICE.methods if not m.server_streaming]
FAULTS = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
EXAMPLES = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))

_INTS = st.one_of(st.sampled_from([0, 1, -1, 2**31 - 1, -(2**31)]), st.integers(-(2**31), 2**31 - 1))
_UINTS = st.one_of(st.sampled_from([0, 1, 2**32 - 1]), st.integers(0, 2**32 - 1))
_TEXT = st.one_of(
    st.sampled_from(["", "default", "fuzz", "a" * 300, "* * * * *", "Europe/London", "../../etc", "\u0000", "ü🙂"]),
    st.text(max_size=40),
)
_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FieldDescriptor.TYPE_STRING: _TEXT,
    FieldDescriptor.TYPE_BYTES: st.one_of(st.binary(max_size=64), st.sampled_from([b'{"a": 1}', b"[1, 2", b"\xff\xfe"])),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_INT32: _INTS, FieldDescriptor.TYPE_SINT32: _INTS, FieldDescriptor.TYPE_SFIXED32: _INTS,
    FieldDescriptor.TYPE_INT64: st.integers(-(2**63), 2**63 - 1), FieldDescriptor.TYPE_SINT64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: _UINTS, FieldDescriptor.TYPE_FIXED32: _UINTS,
    FieldDescriptor.TYPE_UINT64: st.integers(0, 2**64 - 1), FieldDescriptor.TYPE_FIXED64: st.integers(0, 2**64 - 1),
    FieldDescriptor.TYPE_DOUBLE: st.floats(allow_nan=True), FieldDescriptor.TYPE_FLOAT: st.floats(width=32, allow_nan=True),
}  # fmt: skip


def _value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is not None:
        return messages(field.message_type, depth + 1)
    if field.enum_type is not None:
        return st.one_of(st.sampled_from([v.number for v in field.enum_type.values]), st.integers(-5, 100))
    return _SCALARS[field.type]


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[bytes]:
    """Serialized messages of `descriptor` with any subset of its fields set, nested up to 4
    levels (deeper fields left unset)."""
    fields = [f for f in descriptor.fields if depth < 4 or f.type != FieldDescriptor.TYPE_MESSAGE]

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        message: Message = _class(descriptor)()
        for field in draw(st.lists(st.sampled_from(fields), unique=True, max_size=len(fields))) if fields else []:
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                continue  # maps: labels are covered by strings elsewhere
            if field.is_repeated:
                values = draw(st.lists(_value(field, depth), max_size=5))
                target = getattr(message, field.name)
                for value in values:
                    if field.type == FieldDescriptor.TYPE_MESSAGE:
                        target.add().ParseFromString(value)
                    else:
                        target.append(value)
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                getattr(message, field.name).ParseFromString(draw(_value(field, depth)))
            else:
                setattr(message, field.name, draw(_value(field, depth)))
        return message.SerializeToString()

    return build()


def _class(descriptor: Descriptor) -> type[Message]:
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(descriptor)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("cassandra", marks=pytest.mark.cassandra)])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[grpc.Channel, list[subprocess.Popen[bytes]]]]:
    tmp = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    if request.param == "sqlite":
        address = f"127.0.0.1:{free_port()}"
        env = {"PYTHONPATH": PYTHONPATH, "HOURGLASS_STORE": f"sqlite:///{tmp / 'hg.db'}", "HOURGLASS_COORDINATION": "memory://",
               "HOURGLASS_LISTEN": address, "PATH": "/usr/bin:/bin"}  # fmt: skip
        subprocess.run([sys.executable, "-m", "hourglass", "db", "migrate"], env=env, check=True, cwd=ROOT, timeout=120)
        with open(tmp / "coordinator.log", "ab") as log:
            procs = [subprocess.Popen([sys.executable, "-m", "hourglass", "coordinator"], env=env, stdout=log,
                                      stderr=subprocess.STDOUT, cwd=ROOT)]  # fmt: skip
        wait_for_grpc(address)
        channel = grpc.insecure_channel(address)
    else:
        request.getfixturevalue("cassandra_up")
        request.getfixturevalue("redis_up")
        cluster = Cluster(name=f"fuzz_{free_port()}", tmp=tmp, num_shards=4, secure=True)
        cluster.migrate()
        address = cluster.start_coordinator()
        procs = [p for _, p in cluster.coordinators]
        token = grpc.access_token_call_credentials(cluster.client_env()["HOURGLASS_TOKEN"])
        credentials = cluster.credentials()
        assert credentials is not None
        channel = grpc.secure_channel(address, grpc.composite_channel_credentials(credentials, token))
    try:
        yield channel, procs
    finally:
        channel.close()
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=20)


def _raw(channel: grpc.Channel, method: str) -> Any:
    return channel.unary_unary(f"/hourglass.v1.JobService/{method}")


def _code(call: Any, data: bytes) -> grpc.StatusCode:
    try:
        call(data, timeout=10)
        return grpc.StatusCode.OK
    except grpc.RpcError as error:
        return error.code()  # type: ignore[no-any-return]


@pytest.mark.parametrize("method", [m.name for m in UNARY])
def test_generated_requests_get_a_status_that_names_the_problem(
    server: tuple[grpc.Channel, list[subprocess.Popen[bytes]]], method: str
) -> None:
    channel, procs = server
    descriptor = SERVICE.methods_by_name[method].input_type
    call = _raw(channel, method)

    accepted: set[str] = set()  # idempotency keys of submits that were stored

    @EXAMPLES
    @given(messages(descriptor))
    def check(data: bytes) -> None:
        code = _code(call, data)
        assert code not in FAULTS, (method, data)
        if method == "SubmitJob":
            spec = pb.SubmitJobRequest.FromString(data).job
            if code is grpc.StatusCode.OK:
                accepted.add(spec.idempotency_key)
            elif spec.idempotency_key not in accepted:
                _assert_nothing_stored(channel, spec)

    check()
    assert all(proc.poll() is None for proc in procs)


def _assert_nothing_stored(channel: grpc.Channel, spec: pb.JobSpec) -> None:
    """A refused submit with an idempotency key left no job under the id the key gives."""
    if not spec.idempotency_key:
        return
    namespace = spec.namespace or "default"
    request = pb.GetJobRequest(namespace=namespace, id=job_id_for_key(namespace, spec.idempotency_key))
    code = _code(_raw(channel, "GetJob"), request.SerializeToString())
    assert code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT), (spec, code)


@pytest.mark.parametrize("method", [m.name for m in UNARY] + ["WatchRuns"])
def test_bytes_that_are_no_message_are_invalid_argument(
    server: tuple[grpc.Channel, list[subprocess.Popen[bytes]]], method: str
) -> None:
    channel, procs = server
    garbage = [b"\xff\xff\xff\xff\x0f", b"\x0a\x05\xff\xfe\xfd\xfc\xfb", b"\x12", b"\x0a\xff\xff\xff\xff\x07" + b"x" * 10]
    refused = 0
    for data in garbage:  # a truncated varint, invalid UTF-8 in a string, a cut-off field, a length past the end
        if method == "WatchRuns":
            stream = channel.unary_stream(f"/hourglass.v1.JobService/{method}")(data, timeout=5)
            with pytest.raises(grpc.RpcError) as raised:
                next(iter(stream))
            code = raised.value.code()
        else:
            code = _code(_raw(channel, method), data)
        if _decodes(SERVICE.methods_by_name[method].input_type, data):
            # A message with no field 1 (ListWorkersRequest) reads a well-formed field 1 as an
            # unknown field, as proto3 does: the request is valid, and answered as such.
            assert code not in FAULTS, (method, data, code)
        else:
            assert code is grpc.StatusCode.INVALID_ARGUMENT, (method, data, code)
            refused += 1
    assert refused >= 3, method  # the cut-off and malformed ones whatever the message
    assert all(proc.poll() is None for proc in procs)


def _decodes(descriptor: Descriptor, data: bytes) -> bool:
    try:
        _class(descriptor).FromString(data)
        return True
    except DecodeError:
        return False


def test_a_huge_batch_and_huge_fields_are_refused_not_choked_on(
    server: tuple[grpc.Channel, list[subprocess.Popen[bytes]]],
) -> None:
    channel, procs = server
    huge_batch = pb.SubmitJobsRequest(jobs=[pb.JobSpec(name="x", executor="echo")] * 20_000)
    assert _code(_raw(channel, "SubmitJobs"), huge_batch.SerializeToString()) is grpc.StatusCode.INVALID_ARGUMENT
    huge_name = pb.SubmitJobRequest(job=pb.JobSpec(name="n" * 3_000_000, executor="echo"))
    assert _code(_raw(channel, "SubmitJob"), huge_name.SerializeToString()) is grpc.StatusCode.INVALID_ARGUMENT
    assert all(proc.poll() is None for proc in procs)


def test_the_worker_stream_refuses_what_is_not_a_worker_message(
    server: tuple[grpc.Channel, list[subprocess.Popen[bytes]]],
) -> None:
    channel, _ = server
    connect = channel.stream_stream("/hourglass.v1.WorkerService/Connect")
    far = wpb.Register(worker_id="w", started_at=Timestamp(seconds=10**12))  # past the year 9999
    for first in (b"\xff\xff\xff", wpb.WorkerMessage(heartbeat=wpb.Heartbeat()).SerializeToString(),
                  wpb.WorkerMessage(register=far).SerializeToString()):
        with pytest.raises(grpc.RpcError) as refused:
            list(connect(iter([first]), timeout=5))
        assert refused.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED)

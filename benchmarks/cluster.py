"""Starts real coordinator and worker processes (end-to-end tests, benchmarks, chaos runs)."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc

from benchmarks.cassandra_login import store_url
from hourglass_core.auth import WORKER_GRANT, mint
from hourglass_core.dev_certs import write_dev_certificates
from hourglass_core.tls import channel_credentials, channel_credentials_from_env

ROOT = Path(__file__).resolve().parents[1]  # the repository: benchmarks/ lives at its top
# The source roots, then the repository itself (so workers can load `benchmarks.probe`).
PYTHONPATH = os.pathsep.join(
    [str(ROOT / p) for p in ("client", "core", "coordinator", "worker", "proto")] + [str(ROOT)]
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    """A cluster on a fresh keyspace and Redis prefix, so tests never see each other's data."""

    name: str
    tmp: Path
    num_shards: int = 16
    cassandra: str = os.environ.get("HOURGLASS_CASSANDRA_HOSTS", "127.0.0.1") + ":" + os.environ.get(
        "HOURGLASS_CASSANDRA_PORT", "9042"
    )
    redis: str = os.environ.get("HOURGLASS_REDIS_URL", "redis://127.0.0.1:6379/0")
    # Store URL options ("name=value"): e.g. "tls_ca_file=..." to reach Cassandra over TLS.
    store_options: str = ""
    coordinators: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ingests: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)  # `hourglass ingest` processes
    # Mutual TLS between every process and bearer tokens on every call (certificates from
    # `hourglass certs dev`, an HS256 secret): clients take client_env().
    secure: bool = False

    def __post_init__(self) -> None:
        if self.secure:
            write_dev_certificates(self.tmp / "certs")
            (self.tmp / "jwt-secret").write_text(secrets.token_urlsafe(48))

    def token(self, *grants: str, subject: str, ttl: timedelta = timedelta(hours=12)) -> str:
        """A bearer token of this (secure) cluster with `grants`, valid for `ttl` from now."""
        return mint(str(self.tmp / "jwt-secret"), subject, grants, ttl, datetime.now(UTC), secret=True)

    def _tls(self, who: str) -> dict[str, str]:
        certs = self.tmp / "certs"
        return {"HOURGLASS_TLS_CA_FILE": str(certs / "ca.pem"), "HOURGLASS_TLS_CLIENT_CERT_FILE": str(certs / f"{who}.pem"),
                "HOURGLASS_TLS_CLIENT_KEY_FILE": str(certs / f"{who}.key")}  # fmt: skip

    def client_env(self) -> dict[str, str]:
        """What a client of a secure cluster needs ($HOURGLASS_TOKEN: every namespace, admin)."""
        return {**self._tls("client"), "HOURGLASS_TOKEN": self.token("*:admin", subject="tests")} if self.secure else {}

    def credentials(self) -> grpc.ChannelCredentials | None:
        return channel_credentials(*self._tls("client").values()) if self.secure else None

    @property
    def keyspace(self) -> str:
        return f"hg_{self.name}"

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            PYTHONPATH=PYTHONPATH,
            HOURGLASS_STORE=store_url(self.cassandra, self.keyspace, [self.store_options] if self.store_options else []),
            HOURGLASS_COORDINATION=self.redis,
            HOURGLASS_REDIS_PREFIX=f"hg-{self.name}:",
            HOURGLASS_NUM_SHARDS=str(self.num_shards),
            HOURGLASS_COORDINATOR=",".join(addr for addr, _ in self.coordinators),
        )
        if self.secure:  # coordinators serve mutual TLS and want tokens; workers present theirs
            certs = self.tmp / "certs"
            env.update(
                HOURGLASS_TLS_CERT_FILE=str(certs / "coordinator.pem"), HOURGLASS_TLS_KEY_FILE=str(certs / "coordinator.key"),
                HOURGLASS_TLS_CLIENT_CA_FILE=str(certs / "ca.pem"), HOURGLASS_AUTH_SECRET_FILE=str(self.tmp / "jwt-secret"),
                **self._tls("worker"),
            )  # fmt: skip
        env.update(extra)
        return env

    def _spawn(self, args: list[str], log: str, **extra: str) -> subprocess.Popen[bytes]:
        out = open(self.tmp / log, "ab")  # noqa: SIM115 - lives as long as the process
        return subprocess.Popen(
            [sys.executable, "-m", "hourglass", *args], env=self.env(**extra), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )

    def migrate(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "hourglass", "db", "migrate"], env=self.env(), check=True, cwd=ROOT,
            timeout=300,  # a ring's DDL waits for three nodes to agree: 100 s seen on a busy box
        )

    def start_coordinator(self, address: str | None = None, **extra: str) -> str:
        """Starts a replica on `address` (default: a free port; replicas may share one address,
        the server sets SO_REUSEPORT) and waits until it answers gRPC."""
        address = address or f"127.0.0.1:{free_port()}"
        proc = self._spawn(
            ["coordinator"], f"coordinator-{len(self.coordinators)}.log", HOURGLASS_LISTEN=address, **extra
        )
        self.coordinators.append((address, proc))
        wait_for_grpc(address, self.credentials())
        return address

    def restart_coordinator(self, index: int, **extra: str) -> None:
        """Starts replica `index` again on its address (after it died or was killed), as a
        supervisor would; its log goes on in the same file. Waits until it answers gRPC."""
        address, old = self.coordinators[index]
        if old.poll() is None:
            raise RuntimeError(f"coordinator-{index} is still running")
        proc = self._spawn(["coordinator"], f"coordinator-{index}.log", HOURGLASS_LISTEN=address, **extra)
        self.coordinators[index] = (address, proc)
        wait_for_grpc(address, self.credentials())

    def worker_token(self, worker_id: str) -> str:
        """A worker token for `worker_id` (coordinators let it register as that worker only)."""
        return self.token(WORKER_GRANT, subject=worker_id)

    def start_worker(self, worker_id: str, **extra: str) -> None:
        token = {"HOURGLASS_TOKEN": self.worker_token(worker_id)} if self.secure else {}
        self.workers[worker_id] = self._spawn(["worker"], f"{worker_id}.log", HOURGLASS_WORKER_ID=worker_id,
                                              **{**token, **extra})  # fmt: skip

    def kill_worker(self, worker_id: str, sig: int = signal.SIGKILL) -> None:
        proc = self.workers[worker_id]
        proc.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            proc.wait(timeout=60)

    def start_ingest(self, name: str, *args: str, **extra: str) -> subprocess.Popen[bytes]:
        """`hourglass ingest ARGS` (a Kafka consumer of this cluster's store); its log goes on
        in `name`.log across restarts."""
        self.ingests[name] = self._spawn(["ingest", *args], f"{name}.log", **extra)
        return self.ingests[name]

    def pids(self) -> dict[str, int]:
        """Role-qualified names ("coordinator-0", "worker-w1") of the live processes, with pids."""
        out = {f"coordinator-{i}": proc.pid for i, (_, proc) in enumerate(self.coordinators) if proc.poll() is None}
        out.update({f"worker-{wid}": proc.pid for wid, proc in self.workers.items() if proc.poll() is None})
        return out

    @property
    def address(self) -> str:
        return self.coordinators[0][0]

    def logs(self) -> str:
        return "\n".join(f"== {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.tmp.glob("*.log")))

    def stop(self) -> None:
        procs = [p for _, p in self.coordinators] + list(self.workers.values()) + list(self.ingests.values())
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def client_credentials_from_env() -> grpc.ChannelCredentials | None:
    """For the harness's raw gRPC channels to a secure cluster: TLS from $HOURGLASS_TLS_* and
    the bearer token $HOURGLASS_TOKEN on every call (call credentials; TLS channels only)."""
    tls = channel_credentials_from_env()
    token = os.environ.get("HOURGLASS_TOKEN", "")
    if tls is None or not token:
        return tls
    return grpc.composite_channel_credentials(tls, grpc.access_token_call_credentials(token))


def aio_channel(target: str, options: list[tuple[str, Any]] | None = None) -> grpc.aio.Channel:
    credentials = client_credentials_from_env()
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.aio.secure_channel(target, credentials, options=options)


def wait_for_grpc(address: str, credentials: grpc.ChannelCredentials | None = None, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    with grpc.secure_channel(address, credentials) if credentials else grpc.insecure_channel(address) as channel:
        while True:
            try:
                grpc.channel_ready_future(channel).result(timeout=1.0)
                return
            except grpc.FutureTimeoutError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"nothing answers gRPC on {address}") from None


def new_cluster(tmp: Path, prefix: str, *, secure: bool = False, redis: str = "", store_options: str = "") -> Cluster:
    """A cluster named after `prefix`; `redis`: its coordination URL instead of the default."""
    cluster = Cluster(name=f"{prefix}_{uuid.uuid4().hex[:8]}", tmp=tmp, secure=secure, store_options=store_options)
    if redis:
        cluster.redis = redis
    return cluster

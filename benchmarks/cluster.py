"""Starts real coordinator and worker processes (end-to-end tests, benchmarks, chaos runs)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc

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
    coordinators: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def keyspace(self) -> str:
        return f"hg_{self.name}"

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            PYTHONPATH=PYTHONPATH,
            HOURGLASS_STORE=f"cassandra://{self.cassandra}/{self.keyspace}",
            HOURGLASS_COORDINATION=self.redis,
            HOURGLASS_REDIS_PREFIX=f"hg-{self.name}:",
            HOURGLASS_NUM_SHARDS=str(self.num_shards),
            HOURGLASS_COORDINATOR=",".join(addr for addr, _ in self.coordinators),
        )
        env.update(extra)
        return env

    def _spawn(self, args: list[str], log: str, **extra: str) -> subprocess.Popen[bytes]:
        out = open(self.tmp / log, "ab")  # noqa: SIM115 - lives as long as the process
        return subprocess.Popen(
            [sys.executable, "-m", "hourglass", *args], env=self.env(**extra), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )

    def migrate(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "hourglass", "db", "migrate"], env=self.env(), check=True, cwd=ROOT, timeout=180
        )

    def start_coordinator(self, address: str | None = None, **extra: str) -> str:
        """Starts a replica on `address` (default: a free port; replicas may share one address,
        the server sets SO_REUSEPORT) and waits until it answers gRPC."""
        address = address or f"127.0.0.1:{free_port()}"
        proc = self._spawn(
            ["coordinator"], f"coordinator-{len(self.coordinators)}.log", HOURGLASS_LISTEN=address, **extra
        )
        self.coordinators.append((address, proc))
        wait_for_grpc(address)
        return address

    def restart_coordinator(self, index: int, **extra: str) -> None:
        """Starts replica `index` again on its address (after it died or was killed), as a
        supervisor would; its log goes on in the same file. Waits until it answers gRPC."""
        address, old = self.coordinators[index]
        if old.poll() is None:
            raise RuntimeError(f"coordinator-{index} is still running")
        proc = self._spawn(["coordinator"], f"coordinator-{index}.log", HOURGLASS_LISTEN=address, **extra)
        self.coordinators[index] = (address, proc)
        wait_for_grpc(address)

    def start_worker(self, worker_id: str, **extra: str) -> None:
        self.workers[worker_id] = self._spawn(["worker"], f"{worker_id}.log", HOURGLASS_WORKER_ID=worker_id, **extra)

    def kill_worker(self, worker_id: str, sig: int = signal.SIGKILL) -> None:
        proc = self.workers[worker_id]
        proc.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            proc.wait(timeout=60)

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
        procs = [p for _, p in self.coordinators] + list(self.workers.values())
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def wait_for_grpc(address: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        while True:
            try:
                grpc.channel_ready_future(channel).result(timeout=1.0)
                return
            except grpc.FutureTimeoutError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"nothing answers gRPC on {address}") from None


def new_cluster(tmp: Path, prefix: str) -> Cluster:
    return Cluster(name=f"{prefix}_{uuid.uuid4().hex[:8]}", tmp=tmp)

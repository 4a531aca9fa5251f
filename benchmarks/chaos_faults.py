"""What the chaos harness breaks, and how it watches ownership move.

The shared Redis (6379) and Cassandra (9042) are never touched: the scenarios that stop Redis or
Cassandra run their cluster on instances of their own, started here (Redis on another port;
Cassandra through scripts/services.sh with its own state folder and ports).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import redis

from benchmarks.cassandra_login import password_file, services_dir
from benchmarks.cluster import ROOT
from hourglass_core.leases.redis_connect import sync_client

US = 1_000_000


def wall_us() -> int:
    return time.time_ns() // 1000


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _alive(pid)


class OwnRedis:
    """A throwaway Redis without persistence: restarting it loses every key."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.dir = workdir / f"redis-{port}"
        self.url = f"redis://127.0.0.1:{port}/0"

    @property
    def _pidfile(self) -> Path:
        return self.dir / "redis.pid"

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--daemonize", "yes", "--pidfile", str(self._pidfile), "--dir", str(self.dir),
             "--logfile", str(self.dir / "redis.log")],
            check=True,
        )  # fmt: skip
        client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.ping():
                    return
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: the data (in memory only) is gone."""
        pid = int(self._pidfile.read_text().strip())
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 10)
        self._pidfile.unlink(missing_ok=True)

    def flushall(self) -> int:
        """FLUSHALL: every key (leases, membership, fencing counters) gone, the server still up;
        returns how many keys there were."""
        client = redis.Redis(port=self.port, socket_timeout=5)
        try:
            keys = int(client.dbsize())
            client.flushall()
            return keys
        finally:
            client.close()

    def stop(self) -> None:
        if self._pidfile.exists():
            self.kill()


class OwnCassandra:
    """A second single-node Cassandra, through scripts/services.sh with its own state folder
    (chaos/ in the services folder) and ports (HOURGLASS_CHAOS_CASSANDRA_PORT, default 9142);
    its jars are those the main instance already fetched, and its role `hourglass` has the
    main instance's password (clients log in to both alike)."""

    store_options = ""  # what the store URL of a cluster on it adds

    def __init__(self, port: int = int(os.environ.get("HOURGLASS_CHAOS_CASSANDRA_PORT", "9142")), heap: str = "1G") -> None:
        self.port = port
        self.state = services_dir() / "chaos"
        self.env = dict(
            os.environ,
            HOURGLASS_SERVICES_DIR=str(self.state),
            HOURGLASS_CASSANDRA_PASSWORD_FILE=str(password_file()),
            HOURGLASS_CASSANDRA_PORT=str(port),
            HOURGLASS_CASSANDRA_STORAGE_PORT=str(port - 2042),
            HOURGLASS_CASSANDRA_JMX_PORT=str(port - 1843),
            HOURGLASS_CASSANDRA_HEAP=heap,
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        pidfile = self.state / "cassandra" / "cassandra.pid"
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def start(self) -> float:
        """Starts it (or reuses it if it answers) and waits for CQL; returns the seconds taken."""
        lib, shared = self.state / "cassandra" / "lib", services_dir() / "cassandra" / "lib"
        if not lib.exists() and shared.exists():
            lib.parent.mkdir(parents=True, exist_ok=True)
            lib.symlink_to(shared)  # no second download from Maven Central
        began = time.monotonic()
        # Redis: the script reuses the shared one on 6379 (this instance is about Cassandra).
        subprocess.run(["bash", str(ROOT / "scripts" / "services.sh"), "start"], env=self.env, check=True, cwd=ROOT)
        return time.monotonic() - began

    def stop(self) -> None:
        """SIGTERM (Cassandra drains and exits), then waits for the process to be gone."""
        pid = self.pid
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            if not _wait_gone(pid, 60):
                os.kill(pid, signal.SIGKILL)
                _wait_gone(pid, 10)

    def freeze(self) -> None:
        if (pid := self.pid) is not None:
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if (pid := self.pid) is not None:
            os.kill(pid, signal.SIGCONT)

    def wipe(self) -> None:
        """Stops it and deletes its data (not its jars)."""
        self.stop()
        for sub in ("data", "commitlog", "saved_caches", "hints"):
            shutil.rmtree(self.state / "cassandra" / sub, ignore_errors=True)


@dataclass
class Snapshot:
    at_us: int
    shards: dict[int, tuple[str, int]]  # shard -> (owner, token)
    leader: tuple[str, int] | None


class Changes:
    """Which of a poller's answers to keep: a changed one, and the first after a failure."""

    def __init__(self) -> None:
        self._last: object = None
        self._failed = False

    def failed(self) -> None:
        self._failed = True

    def worth_keeping(self, answer: object) -> bool:
        keep = answer != self._last or self._failed
        self._last, self._failed = answer, False
        return keep


@dataclass
class LeaseWatch:
    """Polls the lease keys every `period` seconds and keeps every change: who owned which
    shard (and with which fencing token), and who was leader, when; and the first answer after
    Redis failed to answer, changed or not (a promoted replica that kept every lease is seen)."""

    redis_url: str
    prefix: str
    num_shards: int
    period: float = 0.05
    history: list[Snapshot] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)  # when a poll got no answer
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lease-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        client = sync_client(self.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5, decode_responses=True)
        keys = [f"{self.prefix}lease:shard:{s}" for s in range(self.num_shards)] + [f"{self.prefix}lease:leader"]
        changes = Changes()
        while not self._stop.wait(self.period):
            try:
                values = cast(list[str | None], client.mget(keys))  # decode_responses: str
            except redis.exceptions.RedisError:
                changes.failed()  # Redis is down: nothing is owned that we can see
                self.failures.append(wall_us())
                continue
            shards = {s: _parse(v) for s, v in enumerate(values[:-1]) if v is not None}
            leader = _parse(values[-1]) if values[-1] is not None else None
            if changes.worth_keeping((tuple(sorted(shards.items())), leader)):
                self.history.append(Snapshot(wall_us(), shards, leader))

    def at(self, t_us: int) -> Snapshot | None:
        before = [s for s in self.history if s.at_us <= t_us]
        return before[-1] if before else None

    def first(self, after_us: int, test: object) -> int | None:
        """The first time at or after `after_us` when `test(snapshot)` held."""
        for snapshot in self.history:
            if snapshot.at_us >= after_us and test(snapshot):  # type: ignore[operator]
                return snapshot.at_us
        return None

    def first_after_a_failure(self, after_us: int, test: object) -> int | None:
        """`first`, from the first poll at or after `after_us` that got no answer: what a
        promoted replica answered, however soon the watch saw it."""
        failed = next((t for t in self.failures if t >= after_us), None)
        return None if failed is None else self.first(failed, test)

    def owned_by(self, worker: str, t_us: int) -> set[int]:
        snapshot = self.at(t_us)
        return set() if snapshot is None else {s for s, (owner, _) in snapshot.shards.items() if owner == worker}


def _parse(value: str) -> tuple[str, int]:
    owner, _, token = value.rpartition("|")
    return owner, int(token)

"""A Redis Sentinel set on loopback for tests and chaos runs: one primary, one replica, three
sentinels (quorum 2), from Debian's redis-server, without persistence, in a folder of its own.

Ports (another per checkout running at the same time): the servers on
HOURGLASS_SENTINEL_REDIS_PORT (default 6395) and the next one, the sentinels on
HOURGLASS_SENTINEL_PORT (default 26395) and the next two; neither the shared Redis (6379) nor
the chaos harness's own (6390). Sentinels judge a server down after 1 s without an answer.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, cast

import redis

SERVICE = "hourglass"
REDIS_PORT = int(os.environ.get("HOURGLASS_SENTINEL_REDIS_PORT", "6395"))
SENTINEL_PORT = int(os.environ.get("HOURGLASS_SENTINEL_PORT", "26395"))
DOWN_AFTER_MS = 1000


def _client(port: int) -> redis.Redis:
    return redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1, decode_responses=True)


def _sentinel(port: int, *args: str) -> list[Any]:
    """A SENTINEL subcommand's reply, raw (redis-py's parsed forms are typed loosely)."""
    return cast(list[Any], _client(port).execute_command("SENTINEL", *args, SERVICE))  # type: ignore[no-untyped-call]


def _primary_port(sentinel_port: int) -> int:
    return int(_sentinel(sentinel_port, "get-master-addr-by-name")[1])


def _wait(what: str, ready: object, timeout: float = 30.0) -> None:
    """Polls `ready()` (exceptions count as not yet) until true; TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():  # type: ignore[operator]
                return
        except (redis.exceptions.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"sentinel set: {what} not within {timeout:g} s")
        time.sleep(0.1)


class SentinelSet:
    """`start()` waits until the replica is in sync and every sentinel knows the replica and
    the other sentinels (so a failover can be agreed); `url` is the coordination URL."""

    def __init__(self, workdir: Path, servers: tuple[int, int] | None = None,
                 sentinels: tuple[int, int, int] | None = None) -> None:  # fmt: skip
        """`servers`: the primary's and the replica's ports, `sentinels`: the sentinels' (by
        default from the environment variables above)."""
        self.servers = list(servers or (REDIS_PORT, REDIS_PORT + 1))
        self.sentinels = list(sentinels or (SENTINEL_PORT, SENTINEL_PORT + 1, SENTINEL_PORT + 2))
        self.dir = workdir / f"sentinel-set-{self.servers[0]}"
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinels)
        self.url = f"redis+sentinel://{hosts}/{SERVICE}?db=0"

    def _pidfile(self, port: int) -> Path:
        return self.dir / f"{port}.pid"

    def start_server(self, port: int, replica_of: int | None = None) -> None:
        args = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
                "--daemonize", "yes", "--pidfile", str(self._pidfile(port)), "--dir", str(self.dir),
                "--logfile", str(self.dir / f"redis-{port}.log"), "--dbfilename", f"dump-{port}.rdb"]  # fmt: skip
        if replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(replica_of)]
        subprocess.run(args, check=True)
        _wait(f"redis on {port}", lambda: _client(port).ping())

    def _start_sentinel(self, port: int) -> None:
        conf = self.dir / f"sentinel-{port}.conf"  # sentinels rewrite their file: one each
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndaemonize yes\npidfile {self._pidfile(port)}\n"
            f"logfile {self.dir / f'sentinel-{port}.log'}\ndir {self.dir}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.servers[0]} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {SERVICE} 10000\nsentinel parallel-syncs {SERVICE} 1\n"
        )
        subprocess.run(["redis-server", str(conf), "--sentinel"], check=True)

    def start(self) -> None:
        """Stops what it started if it cannot finish (so no server outlives a failed start)."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        primary, replica = self.servers
        self.start_server(primary)
        self.start_server(replica, replica_of=primary)
        _wait("replica in sync", lambda: _client(replica).info("replication")["master_link_status"] == "up")
        for port in self.sentinels:
            self._start_sentinel(port)

        def known() -> bool:
            return all(len(_sentinel(p, "replicas")) == 1 and len(_sentinel(p, "sentinels")) == 2 for p in self.sentinels)

        _wait("sentinels knowing each other and the replica", known, timeout=60)

    def primary(self) -> int:
        """The port of the primary, as the first sentinel that answers says."""
        for port in self.sentinels:
            try:
                return _primary_port(port)
            except (redis.exceptions.RedisError, OSError, TypeError):
                continue
        raise RuntimeError("no sentinel answers")

    def kill(self, port: int) -> None:
        """SIGKILL the server on `port`: what it had not replicated yet is gone."""
        pidfile = self._pidfile(port)
        pid = int(pidfile.read_text().strip())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)
        pidfile.unlink(missing_ok=True)

    def wait_promoted(self, old: int, timeout: float = 30.0) -> int:
        """Waits until every sentinel names a primary other than `old`; returns its port."""
        _wait("a replica promoted", lambda: all(_primary_port(p) != old for p in self.sentinels), timeout)
        return self.primary()

    def stop(self) -> None:
        for port in [*self.sentinels, *self.servers]:
            if self._pidfile(port).exists():
                self.kill(port)

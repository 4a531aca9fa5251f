"""asyncio on top of the DataStax driver: one bridge from `ResponseFuture` to asyncio, and the
one place where driver errors that mean "try again later" become `Unavailable`.

The driver runs its own I/O thread; its callbacks fire there, so results are handed back to
the event loop with `loop.call_soon_threadsafe` and never touch asyncio objects directly.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import cassandra
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable
from cassandra.connection import ConnectionException
from cassandra.policies import DCAwareRoundRobinPolicy, ExponentialReconnectionPolicy, TokenAwarePolicy
from cassandra.query import UNSET_VALUE, dict_factory

from hourglass_core.backoff import RateLimitedLog
from hourglass_core.credentials import Login
from hourglass_core.errors import Unavailable
from hourglass_core.store.warm_up import WarmUpPolicy, WarmUpSpeculation

T = TypeVar("T")
log = logging.getLogger(__name__)
warn = RateLimitedLog(log)
# A request slower than this is logged (at most a line every 5 s per node it was sent to) with
# those nodes (the first coordinates; a second means it was sent again) and how long its answer
# took to reach the driver's thread and then the caller: a slow node and a busy event loop look
# alike in a latency histogram, not in these two figures.
SLOW_REQUEST_S = 0.5
# While a node that came back is warming up, an idempotent request with no answer by then is
# sent again to the next node (see warm_up): a warm node answers in milliseconds, a cold one
# coordinating took 0.5-1.8 s here.
WARMING_RETRY_AFTER_S = 0.25

# Errors after which the request may succeed if retried (node down, overloaded, partitioned).
# Anything else from the driver (InvalidRequest, SyntaxException, ...) is a bug and propagates.
TRANSIENT: tuple[type[BaseException], ...] = (
    NoHostAvailable,
    cassandra.OperationTimedOut,
    cassandra.Unavailable,
    cassandra.WriteTimeout,
    cassandra.ReadTimeout,
    ConnectionException,
)

# How a node says it could not read its own logins and permissions (system_auth, read at
# LOCAL_QUORUM) because too few replicas are up: answered as Unauthorized or
# AuthenticationFailed, yet an outage, not a refusal - it passes when a quorum is back.
_AUTH_WITHOUT_QUORUM = "Cannot achieve consistency level"

Row = dict[str, Any]


def transient(exc: BaseException) -> bool:
    """Whether the request may succeed if retried later (see TRANSIENT and _AUTH_WITHOUT_QUORUM)."""
    if isinstance(exc, TRANSIENT):
        return True
    return isinstance(exc, cassandra.Unauthorized | cassandra.AuthenticationFailed) and _AUTH_WITHOUT_QUORUM in str(exc)


async def open_session(
    hosts: list[str], port: int, consistency: int, request_timeout: float, *,
    login: Login | None = None, tls: ssl.SSLContext | None = None,
) -> tuple[Any, Any]:
    """A connected (Cluster, Session) with rows as dicts, token-aware routing (a node that
    comes back eased in: see warm_up), `consistency` for reads and writes and LOCAL_SERIAL for
    LWTs, logged in as `login` (PasswordAuthenticator) over `tls` when given. Connecting
    blocks, so it runs in a thread. Raises Unavailable if no host answers."""
    routing = WarmUpPolicy(TokenAwarePolicy(DCAwareRoundRobinPolicy()))
    profile = ExecutionProfile(
        load_balancing_policy=routing,
        speculative_execution_policy=WarmUpSpeculation(routing, WARMING_RETRY_AFTER_S),
        consistency_level=consistency,
        serial_consistency_level=cassandra.ConsistencyLevel.LOCAL_SERIAL,
        request_timeout=request_timeout,
        row_factory=dict_factory,
    )
    cluster = Cluster(
        contact_points=hosts,
        port=port,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=5,
        # v4, not v5: v5 frames every message in checksummed segments, which the driver encodes
        # in pure Python (about a tenth of a busy coordinator's CPU); v4 has all this store uses.
        protocol_version=4,
        control_connection_timeout=5,
        # DDL waits until every node has the change (default 10 s): on a busy ring agreement took
        # longer, and the next statement found a node without the keyspace or table just made.
        max_schema_agreement_wait=60,
        # The driver's default waits 1, 2, 4 ... up to 600 s between reconnection attempts: a
        # node back after a minute's outage would then sit unused for up to another minute.
        reconnection_policy=ExponentialReconnectionPolicy(base_delay=0.2, max_delay=2.0, max_attempts=None),
        auth_provider=PlainTextAuthProvider(login.username, login.password) if login else None,
        ssl_context=tls,
    )
    try:
        return cluster, await asyncio.to_thread(cluster.connect)
    except TRANSIENT as exc:
        await asyncio.to_thread(cluster.shutdown)
        raise Unavailable(f"cassandra at {hosts}:{port}: {exc}") from exc


def unset_none(values: Sequence[Any]) -> list[Any]:
    """Bind values with None replaced by UNSET: an INSERT then leaves the column alone instead
    of writing a null, which in Cassandra is a tombstone (and, with USING TIMESTAMP, one that
    could shadow a value written by an earlier event)."""
    return [UNSET_VALUE if v is None else v for v in values]


def _resolve(fut: asyncio.Future[list[Row]], rows: list[Row]) -> None:
    if not fut.done():  # the awaiting task may have been cancelled meanwhile
        fut.set_result(rows)


def _reject(fut: asyncio.Future[list[Row]], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


def cql_of(statement: Any) -> str:
    """The CQL of a statement (bound, prepared, simple or a string) on one line."""
    prepared = getattr(statement, "prepared_statement", None) or statement
    return " ".join(str(getattr(prepared, "query_string", prepared)).split())


def _log_slow(statement: Any, hosts: Sequence[Any], to_driver: float, to_caller: float) -> None:
    nodes = ", then ".join(str(h.endpoint) for h in hosts) or "no node"  # a second: sent again
    warn.warning(f"slow:{nodes}", "slow cassandra request: %.2f s to the driver, %.2f s to the caller; sent to %s: %.100s",
                 to_driver, to_caller, nodes, cql_of(statement))  # fmt: skip


class CqlSession:
    """A driver `Session` seen from asyncio. Every call maps transient errors to Unavailable."""

    def __init__(self, session: Any, *, max_in_flight: int = 512) -> None:
        self.session = session
        routing = session.cluster.profile_manager.default.load_balancing_policy
        # Told how long each request took while a node warms up (see warm_up).
        self._routing = routing if isinstance(routing, WarmUpPolicy) else None
        # Bounds fan-out (a 10k-job submit, a listing's concurrent reads) below the driver's
        # per-connection stream limit, where it would start failing requests instead of queuing.
        self._in_flight = asyncio.Semaphore(max_in_flight)

    async def execute(self, statement: Any, params: Sequence[Any] | None = None) -> list[Row]:
        """Runs one statement and returns all rows of every page (our reads are bounded by a
        LIMIT or by a small table, so collecting every page is safe)."""
        async with self._in_flight:
            loop = asyncio.get_running_loop()
            done: asyncio.Future[list[Row]] = loop.create_future()
            rows: list[Row] = []
            started = answered = time.perf_counter()
            try:
                future = self.session.execute_async(statement, params)
            except Exception as exc:
                if transient(exc):
                    raise Unavailable(f"cassandra: {exc}") from exc
                raise

            def on_page(page: list[Row] | None) -> None:  # runs on the driver's thread
                nonlocal answered
                if page:
                    rows.extend(page)
                if future.has_more_pages:
                    future.start_fetching_next_page()  # calls on_page again
                else:
                    answered = time.perf_counter()
                    loop.call_soon_threadsafe(_resolve, done, rows)

            def on_error(exc: BaseException) -> None:
                nonlocal answered
                answered = time.perf_counter()
                loop.call_soon_threadsafe(_reject, done, exc)

            future.add_callbacks(on_page, on_error)
            try:
                return await done
            except Exception as exc:
                if transient(exc):
                    raise Unavailable(f"cassandra: {exc}") from exc
                raise
            finally:
                taken = time.perf_counter() - started
                if self._routing is not None and self._routing.watching and future.attempted_hosts:
                    # Charged to the first node even when sent again: it had not answered by then.
                    self._routing.observe(future.attempted_hosts[0], taken)
                if taken > SLOW_REQUEST_S:
                    _log_slow(statement, future.attempted_hosts, max(answered - started, 0.0), taken)

    async def applied(self, statement: Any, params: Sequence[Any]) -> tuple[bool, Row]:
        """Runs a lightweight transaction; returns ([applied], the row it saw)."""
        rows = await self.execute(statement, params)
        row = rows[0] if rows else {}
        return bool(row.get("[applied]")), row

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Runs a blocking driver call (connect, DDL, prepare) in a thread."""
        try:
            return await asyncio.to_thread(fn, *args)
        except Exception as exc:
            if transient(exc):
                raise Unavailable(f"cassandra: {exc}") from exc
            raise

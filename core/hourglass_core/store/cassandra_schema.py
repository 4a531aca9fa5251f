"""Creating and upgrading the Cassandra schema (keyspace, tables, recorded versions).

DDL is rare and blocking in the driver (it waits for schema agreement), so it runs in a thread.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

from hourglass_core.errors import Unavailable
from hourglass_core.store import migrations
from hourglass_core.store.cassandra_io import CqlSession
from hourglass_core.store.replication import Replication

log = logging.getLogger(__name__)

_KEYSPACE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_DDL_TIMEOUT = 60.0

_CREATE_VERSIONS = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version int PRIMARY KEY, name text, applied_at timestamp)"
)


def check_keyspace(keyspace: str) -> str:
    """Keyspace names go into DDL text (they cannot be bind markers), so only plain lower-case
    identifiers are accepted. Raises ValueError."""
    if not _KEYSPACE.match(keyspace):
        raise ValueError(
            f"keyspace {keyspace!r} must be 1-48 lower-case letters, digits or '_', "
            "starting with a letter"
        )
    return keyspace


def latest_version() -> int:
    known = migrations.load("cassandra")
    return known[-1].version if known else 0


async def current_version(cql: CqlSession, keyspace: str) -> int:
    """The highest applied migration in `keyspace` (0: keyspace or version table missing)."""
    tables = await cql.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s"
        " AND table_name = 'schema_migrations'",
        [keyspace],
    )
    if not tables:
        return 0
    rows = await cql.execute(f"SELECT version FROM {keyspace}.schema_migrations")
    return max((r["version"] for r in rows), default=0)


async def migrate(cql: CqlSession, cluster: Any, keyspace: str, replication: Replication) -> int:
    """Creates the keyspace with `replication` and applies every migration not yet recorded,
    in order, recording each. Idempotent; safe to re-run after a failure half-way (each
    statement is IF NOT EXISTS). An existing keyspace keeps its replication (a warning says so
    when it differs): raising it without a repair would leave LOCAL_QUORUM reads answered by
    replicas that have nothing. Returns the version now in force."""
    session = cql.session

    def ddl(statement: str, params: list[Any] | None = None) -> Any:
        return session.execute(statement, params, timeout=_DDL_TIMEOUT)

    existing = await cql.execute(
        "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s", [check_keyspace(keyspace)]
    )
    if existing and not replication.matches(dict(existing[0]["replication"])):
        log.warning(
            "keyspace %s keeps its replication %s (not %s): ALTER KEYSPACE %s WITH replication = %s,"
            " then nodetool repair -full %s on every node, changes it",
            keyspace, dict(existing[0]["replication"]), replication, keyspace, replication.cql(), keyspace,
        )  # fmt: skip
    await cql.blocking(
        ddl, f"CREATE KEYSPACE IF NOT EXISTS {check_keyspace(keyspace)} WITH replication = {replication.cql()}"
    )
    # USE on a node that has not heard of the keyspace yet leaves that connection without one.
    if not await cql.blocking(cluster.control_connection.wait_for_schema_agreement):
        raise Unavailable(f"cassandra: the nodes do not agree on the schema of {keyspace} yet; run migrate again")
    await cql.blocking(session.set_keyspace, keyspace)
    await cql.blocking(ddl, _CREATE_VERSIONS)
    applied = {r["version"] for r in await cql.blocking(lambda: list(ddl(
        "SELECT version FROM schema_migrations")))}  # fmt: skip
    for migration in migrations.load("cassandra"):
        if migration.version in applied:
            continue
        for statement in migration.statements:
            await cql.blocking(ddl, statement)
        await cql.blocking(
            ddl,
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
            [migration.version, migration.name, datetime.now(UTC)],
        )
        applied.add(migration.version)
    # Every node must know the tables before statements are prepared against them.
    await cql.blocking(cluster.control_connection.wait_for_schema_agreement)
    return max(applied, default=0)

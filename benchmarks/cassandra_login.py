"""How tests, benchmarks and the chaos harness log in to the local Cassandra: as the role
`hourglass`, whose password scripts/services.sh keeps in <services>/cassandra/hourglass.password
(HOURGLASS_CASSANDRA_PASSWORD_FILE instead, where set). Processes of the system under test get
it through the store URL (`store_url`: user and password_file, never the password itself);
the harness's own CQL through `cql_cluster`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hourglass_core.credentials import Login, read_secret

USER = "hourglass"
ROOT = Path(__file__).resolve().parents[1]  # the repository


def services_dir() -> Path:
    """The state folder of scripts/services.sh (HOURGLASS_SERVICES_DIR, default .services)."""
    return Path(os.environ.get("HOURGLASS_SERVICES_DIR", ROOT / ".services"))


def cassandra_ca() -> Path:
    """The CA of the local Cassandra's TLS certificate (scripts/services.sh writes it)."""
    return services_dir() / "cassandra" / "tls" / "ca.pem"


def password_file() -> Path:
    return Path(os.environ.get("HOURGLASS_CASSANDRA_PASSWORD_FILE", services_dir() / "cassandra" / "hourglass.password"))


def store_url(address: str, keyspace: str, options: Sequence[str] = ()) -> str:
    """The store URL of `keyspace` on the node at `address` ("host:port"), logged in; `options`
    as "name=value" (e.g. tls_ca_file=...)."""
    query = "&".join([f"password_file={password_file()}", *options])
    return f"cassandra://{USER}@{address}/{keyspace}?{query}"


def login() -> Login:
    """The login of the role `hourglass`, for code that opens a store without a URL."""
    return Login(USER, read_secret(str(password_file()), "the Cassandra password file"))


def cql_cluster(address: str, connect_timeout: float = 20, profile: Any = None) -> Any:
    """A driver Cluster of the nodes at `address` ("host[,host...]:port"), logged in (connect
    it, shut it down). Its requests run with `profile` (an ExecutionProfile), by default at
    LOCAL_QUORUM: on a ring a read must not miss what a node that was down never received."""
    from cassandra import ConsistencyLevel
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile

    hosts, _, port = address.rpartition(":")
    profile = profile or ExecutionProfile(consistency_level=ConsistencyLevel.LOCAL_QUORUM)
    return Cluster(hosts.split(","), port=int(port), protocol_version=5, connect_timeout=connect_timeout,
                   auth_provider=PlainTextAuthProvider(USER, login().password),
                   execution_profiles={EXEC_PROFILE_DEFAULT: profile})  # fmt: skip

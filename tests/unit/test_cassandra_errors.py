"""Which driver errors mean "try again later" (Unavailable to callers, UNAVAILABLE on the
wire) and which are refusals or bugs: as a ring that lost its quorum answers them."""

from __future__ import annotations

import cassandra
import pytest

from hourglass_core.store.cassandra_io import transient

NO_QUORUM = "Cannot achieve consistency level LOCAL_QUORUM"


@pytest.mark.parametrize(
    "error",
    [
        cassandra.Unavailable("Cannot achieve consistency level LOCAL_QUORUM", 6, 2, 1),
        cassandra.OperationTimedOut("timed out"),
        # Two nodes of three down: the live node cannot read system_auth to check a login or a
        # permission, and says so as Unauthorized / AuthenticationFailed (seen in chaos scenario 9).
        cassandra.Unauthorized(f'Error from server: code=2100 [Unauthorized] message="Unable to perform '
                               f'authorization of super-user permission: {NO_QUORUM}"'),
        cassandra.AuthenticationFailed(f"Failed to authenticate to 127.0.0.2:9042: Error from server: code=0100 "
                                       f'[Bad credentials] message="Unable to perform authentication: {NO_QUORUM}"'),
    ],
)  # fmt: skip
def test_outages_are_transient(error: Exception) -> None:
    assert transient(error)


@pytest.mark.parametrize(
    "error",
    [
        cassandra.Unauthorized("User hourglass has no SELECT permission on <table ks.jobs>"),
        cassandra.AuthenticationFailed("Provided username hourglass and/or password are incorrect"),
        cassandra.InvalidRequest("unconfigured table jobs"),
        ValueError("a bug"),
    ],
)
def test_refusals_and_bugs_are_not_transient(error: Exception) -> None:
    assert not transient(error)

"""A keyspace's replication as `db migrate --replication` and the store URL spell it: parsing,
the CQL it becomes, and refusals that name the field."""

from __future__ import annotations

import pytest

from hourglass import cli
from hourglass_core.store.factory import open_store
from hourglass_core.store.replication import Replication, parse_replication, simple


@pytest.mark.parametrize(
    ("text", "cql"),
    [
        ("SimpleStrategy:1", "{'class': 'SimpleStrategy', 'replication_factor': 1}"),
        ("NetworkTopologyStrategy:datacenter1=3", "{'class': 'NetworkTopologyStrategy', 'datacenter1': 3}"),
        (" NetworkTopologyStrategy:eu-west=3, us.east_1=2 ",
         "{'class': 'NetworkTopologyStrategy', 'eu-west': 3, 'us.east_1': 2}"),
    ],
)  # fmt: skip
def test_a_replication_becomes_the_keyspace_map_and_reads_back_the_same(text: str, cql: str) -> None:
    replication = parse_replication(text)
    assert replication.cql() == cql
    assert parse_replication(str(replication)) == replication


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("3", "expected SimpleStrategy:N"),
        ("SimpleStrategy:", "expected SimpleStrategy:N"),
        ("SimpleStrategy:0", "not a whole number from 1 to 99"),
        ("SimpleStrategy:two", "not a whole number"),
        ("EverywhereStrategy:3", "unknown strategy 'EverywhereStrategy'"),
        ("NetworkTopologyStrategy:datacenter1", "'datacenter1' is not DC=N"),
        ("NetworkTopologyStrategy:dc'1=3", "is not DC=N"),  # a quote would end the CQL string
        ("NetworkTopologyStrategy:dc1=3,dc1=2", "named twice"),
        ("NetworkTopologyStrategy:dc1=100", "from 1 to 99"),
    ],
)
def test_a_bad_replication_is_refused_naming_the_field(text: str, error: str) -> None:
    with pytest.raises(ValueError, match="replication") as refused:
        parse_replication(text)
    assert error in str(refused.value)


def test_a_keyspace_replication_as_cassandra_stores_it_matches_only_the_same_one() -> None:
    ring = parse_replication("NetworkTopologyStrategy:datacenter1=3")
    stored = {"class": "org.apache.cassandra.locator.NetworkTopologyStrategy", "datacenter1": "3"}
    assert ring.matches(stored)
    assert not ring.matches({**stored, "datacenter1": "1"})
    assert not ring.matches({**stored, "dc2": "3"})
    assert not simple(3).matches(stored)
    assert simple(1).matches({"class": "org.apache.cassandra.locator.SimpleStrategy", "replication_factor": "1"})
    assert simple(2) == Replication("SimpleStrategy", (("replication_factor", 2),))


@pytest.mark.parametrize(
    ("url", "replication", "error"),
    [
        ("cassandra://h/ks?rf=3&replication=SimpleStrategy:3", None, "rf or replication, not both"),
        ("cassandra://h/ks?replication=NetworkTopologyStrategy:dc1", None, "store URL .*replication"),
        ("cassandra://h/ks", "Simple:1", "unknown strategy"),
        ("sqlite://:memory:", "SimpleStrategy:1", "replication applies to cassandra:// stores"),
    ],
)
async def test_open_store_refuses_a_bad_replication_before_connecting(
    url: str, replication: str | None, error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        await open_store(url, replication=replication)


def test_db_migrate_refuses_a_bad_replication_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["db", "migrate", "--store", "cassandra://127.0.0.1:1/ks", "--replication", "NTS:3"]) == 2
    assert "replication 'NTS:3': unknown strategy" in capsys.readouterr().err

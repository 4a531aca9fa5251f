"""A keyspace's replication, as `hourglass db migrate --replication` and the store URL's
`replication=` option spell it:

    SimpleStrategy:1                              one node (the default; `rf=N` means SimpleStrategy:N)
    NetworkTopologyStrategy:datacenter1=3         a ring: three replicas in datacenter1
    NetworkTopologyStrategy:dc1=3,dc2=3           several datacenters

Pure: parsing and the CQL map literal. Datacenter names are checked against a strict pattern,
since they end up inside a CQL statement (DDL cannot bind values).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SIMPLE = "SimpleStrategy"
NETWORK = "NetworkTopologyStrategy"
_DATACENTER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
EXPECTED = f"expected {SIMPLE}:N or {NETWORK}:DC=N[,DC=N...], N from 1 to 99"


@dataclass(frozen=True, slots=True)
class Replication:
    """A replication strategy and its factors: (("replication_factor", N),) for SimpleStrategy,
    ((datacenter, N), ...) for NetworkTopologyStrategy."""

    strategy: str
    factors: tuple[tuple[str, int], ...]

    def cql(self) -> str:
        """The map literal of CREATE KEYSPACE ... WITH replication = <this>."""
        pairs = "".join(f", '{name}': {n}" for name, n in self.factors)
        return f"{{'class': '{self.strategy}'{pairs}}}"

    def matches(self, existing: dict[str, str]) -> bool:
        """Whether a keyspace's replication as system_schema.keyspaces holds it (class
        fully qualified, factors as text) is this one."""
        if existing.get("class", "").rpartition(".")[2] != self.strategy:
            return False
        return {k: v for k, v in existing.items() if k != "class"} == {k: str(n) for k, n in self.factors}

    def __str__(self) -> str:
        if self.strategy == SIMPLE:
            return f"{SIMPLE}:{self.factors[0][1]}"
        return f"{NETWORK}:" + ",".join(f"{dc}={n}" for dc, n in self.factors)


def simple(replication_factor: int) -> Replication:
    """SimpleStrategy with `replication_factor` copies (one node: 1)."""
    return Replication(SIMPLE, (("replication_factor", _factor(str(replication_factor))),))


def parse_replication(text: str) -> Replication:
    """`text` as a Replication; raises ValueError naming `replication` and what is accepted."""
    strategy, sep, rest = text.strip().partition(":")
    if not sep or not rest:
        raise ValueError(f"replication {text!r}: {EXPECTED}")
    if strategy == SIMPLE:
        return simple(_factor(rest, text))
    if strategy != NETWORK:
        raise ValueError(f"replication {text!r}: unknown strategy {strategy!r}; {EXPECTED}")
    factors: dict[str, int] = {}
    for item in rest.split(","):
        dc, eq, n = item.strip().partition("=")
        if not eq or not _DATACENTER.fullmatch(dc):
            raise ValueError(f"replication {text!r}: {item.strip()!r} is not DC=N; {EXPECTED}")
        if dc in factors:
            raise ValueError(f"replication {text!r}: datacenter {dc!r} named twice")
        factors[dc] = _factor(n, text)
    return Replication(NETWORK, tuple(factors.items()))


def _factor(n: str, text: str | None = None) -> int:
    if not n.strip().isdigit() or not 1 <= int(n) <= 99:
        raise ValueError(f"replication {text or n!r}: replication factor {n!r} is not a whole number from 1 to 99")
    return int(n)

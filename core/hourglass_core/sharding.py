"""Shard arithmetic: which shard a job lives in, and which worker owns which shard.

Pure functions: the coordinator passes in the live workers and the previous map and stores
the result; nothing here reads a clock, a store or a random source.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

__all__ = ["assign_shards", "moves", "shard_of"]


def shard_of(job_id: str, num_shards: int) -> int:
    """The shard of `job_id`: CRC-32 of its UTF-8 bytes modulo `num_shards`.

    Guaranteed stable across processes, machines and Python versions (unlike `hash()`, which
    is salted per process), and in [0, num_shards). Raises `ValueError` if num_shards < 1.
    """
    if num_shards < 1:
        raise ValueError("num_shards must be >= 1")
    return zlib.crc32(job_id.encode("utf-8")) % num_shards


def assign_shards(
    workers: Sequence[str], num_shards: int, previous: Mapping[int, str]
) -> dict[int, str]:
    """A map from every shard in [0, num_shards) to one of `workers`.

    Guarantees:

    * complete: every shard is assigned, to a worker in `workers` (duplicates are ignored);
      no workers gives ``{}``;
    * balanced: each worker owns ``num_shards // n`` or ``num_shards // n + 1`` shards
      (n = number of distinct workers);
    * minimal movement: among balanced maps, it keeps as many shards with their `previous`
      owner as possible. A shard only moves when its owner is gone (or absent from
      `previous`, or the shard is new) or when its owner holds more than its quota. So when a
      worker leaves, only its shards move; when one joins, only the shards it takes move
      (``num_shards // (n + 1)`` of them, from a balanced map);
    * deterministic: the result depends only on the set of workers, num_shards and previous,
      not on the order of `workers`.

    Entries of `previous` for shards outside [0, num_shards) are ignored.
    Raises `ValueError` if num_shards < 0.
    """
    if num_shards < 0:
        raise ValueError("num_shards must not be negative")
    live = sorted(set(workers))
    if not live:
        return {}
    base, extra = divmod(num_shards, len(live))

    held: dict[str, list[int]] = {worker: [] for worker in live}
    for shard in sorted(previous):
        owner = previous[shard]
        if 0 <= shard < num_shards and owner in held:
            held[owner].append(shard)

    # `extra` workers get one shard more than the others. Giving those slots to the workers
    # that already hold the most maximises what stays put: an extra slot only saves a move
    # for a worker holding more than `base`. Ties go to the smaller worker id.
    by_holding = sorted(live, key=lambda worker: (-len(held[worker]), worker))
    quota = {worker: base + (1 if rank < extra else 0) for rank, worker in enumerate(by_holding)}

    assignment: dict[int, str] = {}
    for worker in live:
        # Keep the lowest-numbered shards: any fixed choice would do, this one is simple.
        for shard in held[worker][: quota[worker]]:
            assignment[shard] = worker

    # Unowned shards, ascending, go to workers below quota, in worker-id order.
    free = (shard for shard in range(num_shards) if shard not in assignment)
    for worker in live:
        for _ in range(quota[worker] - min(len(held[worker]), quota[worker])):
            assignment[next(free)] = worker
    return dict(sorted(assignment.items()))


def moves(old: Mapping[int, str], new: Mapping[int, str]) -> int:
    """How many shards changed owner from `old` to `new`.

    A shard present in only one of the maps counts as a move (it was gained or dropped).
    """
    return sum(1 for shard in old.keys() | new.keys() if old.get(shard) != new.get(shard))

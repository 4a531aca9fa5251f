"""Who holds a fire's claim, as written in the store's claim row.

A claim names the worker *and the shard lease token it was taken under* ("w1#42"), so a claim
taken under a lease this worker has since lost is told apart from one it is acting on now, and
giving a claim up (see `abandoned`) only ever moves the claim it names, never a newer claim of
the same worker on the same fire. Claims written before tokens were part of the name (a bare
worker id) still parse, with token None.
"""

from __future__ import annotations

from dataclasses import dataclass

_TOKEN = "#"
# Appended to a holder that gave its claim up without running it (it lost the shard's lease):
# the shard's next owner takes such a claim over at once instead of waiting for the worker
# to die. No live worker is ever called this.
_ABANDONED = "!abandoned"
# Appended to a holder that decided its fire does not run (the job was paused or cancelled
# before the fire was due): whoever looks at the claim later leaves the fire alone.
_DROPPED = "!dropped"


@dataclass(frozen=True, slots=True)
class Holder:
    worker_id: str
    token: int | None
    abandoned: bool = False
    dropped: bool = False


def holder_id(worker_id: str, token: int) -> str:
    """The claim row's worker field for a claim taken by `worker_id` under lease `token`."""
    return f"{worker_id}{_TOKEN}{token}"


def abandoned(holder: str) -> str:
    """The claim row's worker field once `holder` gave the claim up."""
    return holder + _ABANDONED


def dropped(holder: str) -> str:
    """The claim row's worker field once `holder` decided the fire does not run."""
    return holder + _DROPPED


def parse(holder: str) -> Holder:
    gave_up, dropped_ = holder.endswith(_ABANDONED), holder.endswith(_DROPPED)
    if gave_up or dropped_:
        holder = holder[: -len(_ABANDONED if gave_up else _DROPPED)]
    worker_id, sep, token = holder.rpartition(_TOKEN)
    if sep and token.isdigit():
        return Holder(worker_id, int(token), gave_up, dropped_)
    return Holder(holder, None, gave_up, dropped_)

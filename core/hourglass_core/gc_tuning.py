"""Python's cyclic garbage collector, tuned for a long-running server process.

With the default settings a worker at 1000 fires/s ran a full collection about every 5 s,
each taking 50-225 ms with the event loop stopped: they made the lateness p99 (52 ms; the
fires due during one waited for it). Objects made during start-up (modules, prepared
statements, stubs) are most of the heap and never become garbage, so they are frozen out of
every collection (full ones then took 10-45 ms), and full collections come ten times less
often (young ones, which are short, are left as they are). Together: p99 52 -> 34 ms at
1000 fires/s, peak RSS unchanged (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import gc

# Collections of the middle generation before a full one is considered (default 10). A full
# one also waits, as by default, until the long-lived objects grew by a quarter.
FULL_EVERY = 100


def settle() -> None:
    """Call once start-up is done: collects, freezes what survived, spaces full collections."""
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_EVERY)

"""`hourglass dev`: the whole scheduler in one process, on the embedded backends.

The store is SQLite in a local file (jobs survive a restart), leases and membership are
in-process; the coordinator and workers are the same code that runs in production, wired to
those backends. The SDK and CLI talk to it over gRPC exactly as to a cluster.
"""

from __future__ import annotations

from hourglass_dev.main import main

__all__ = ["main"]

#!/usr/bin/env python3
"""Wait until a Kafka broker answers a metadata request, then print its cluster id.

Usage: wait_kafka.py [--bootstrap 127.0.0.1:9092] [--timeout 120] [--pid PID]

Exit status as scripts/wait_cql.py: 0 answered (cluster id on stdout), 1 timed out, 2 the
process --pid names died meanwhile. --timeout 0 tries once (is one already running?).
"""

from __future__ import annotations

import argparse
import os
import sys

from wait_cql import wait_for  # beside this script: python puts its folder first on sys.path


def _cluster_id(bootstrap: str) -> str:
    from confluent_kafka.admin import AdminClient

    # log_level 0: librdkafka would print every refused connection while the broker starts.
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0, "socket.connection.setup.timeout.ms": 2000})
    metadata = admin.list_topics(timeout=3)
    if not metadata.brokers:
        raise RuntimeError("no brokers in the metadata")
    return str(metadata.cluster_id)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default=f"127.0.0.1:{os.environ.get('HOURGLASS_KAFKA_PORT', '9092')}")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--pid", type=int, default=None, help="give up early if this process exits")
    args = parser.parse_args()
    return wait_for(lambda: _cluster_id(args.bootstrap), args.timeout, args.pid, f"Kafka on {args.bootstrap}")


if __name__ == "__main__":
    sys.exit(main())

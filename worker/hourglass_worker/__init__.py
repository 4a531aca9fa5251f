"""A worker: shard leases, read-ahead timer, executors."""

#!/usr/bin/env bash
# `make cluster`: the distributed mode on one box — two coordinator replicas and two workers
# on the Redis and Cassandra that scripts/services.sh started. For trying failover by hand:
# kill a worker or the leader and watch the others take over. Ctrl-C stops what this started
# (Redis and Cassandra keep running; `make services-stop` stops them).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export PYTHONPATH=client:core:coordinator:worker:proto
# The local Cassandra authenticates: log in as the role scripts/services.sh made.
export HOURGLASS_STORE=${HOURGLASS_STORE:-cassandra://hourglass@127.0.0.1:9042/hourglass?password_file=$PWD/.services/cassandra/hourglass.password}
export HOURGLASS_COORDINATION=${HOURGLASS_COORDINATION:-redis://127.0.0.1:6379/0}
export HOURGLASS_COORDINATOR=127.0.0.1:7070,127.0.0.1:7071
logs=.hourglass/cluster
mkdir -p "$logs"

"$PY" -m hourglass db migrate
pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "stopping ${#pids[@]} processes..."
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

for port in 7070 7071; do
  HOURGLASS_LISTEN=127.0.0.1:$port "$PY" -m hourglass coordinator >"$logs/coordinator-$port.log" 2>&1 &
  pids+=($!)
done
for n in 1 2; do
  HOURGLASS_WORKER_ID=worker-$n "$PY" -m hourglass worker >"$logs/worker-$n.log" 2>&1 &
  pids+=($!)
done

cat <<MSG
Hourglass cluster: coordinators on 127.0.0.1:7070 and :7071, workers worker-1 and worker-2.
Logs in $logs/. Pids: ${pids[*]}
Try:  .venv/bin/hourglass --coordinator $HOURGLASS_COORDINATOR submit --name tick --executor echo --every 2s
      kill -9 <a worker pid>   # its shards move to the other worker
Ctrl-C stops everything this started.
MSG
wait -n "${pids[@]}" || true
echo "a process exited; see $logs/"
wait

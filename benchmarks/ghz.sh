#!/usr/bin/env bash
# Scenario 1 and 2 of the benchmark with ghz, by hand, against any running coordinator.
#
#   benchmarks/ghz.sh ADDRESS [RATE] [SECONDS]          one fixed rate (default 1000/s for 60 s)
#   benchmarks/ghz.sh ADDRESS step START STEP END [STEP_SECONDS]
#                                                        ghz's own step schedule (--load-schedule step)
#
# `python -m benchmarks.run` runs the same cross-check automatically (benchmarks/ghz.py) on its
# own cluster and puts ghz's figures beside the Python generator's; this script is for trying
# other targets. Submits far-future once-jobs (they do not fire) with a fresh idempotency key
# each, naming the executor $EXECUTOR (default: echo, which every worker has).
#
# ghz: go install github.com/bojand/ghz/cmd/ghz@v0.93.0   (lands in $(go env GOPATH)/bin)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GHZ="${GHZ:-$(command -v ghz || echo "$(go env GOPATH 2>/dev/null || echo "$HOME/go")/bin/ghz")}"
[[ -x "$GHZ" ]] || { echo "ghz not found: go install github.com/bojand/ghz/cmd/ghz@v0.93.0" >&2; exit 1; }
[[ $# -ge 1 ]] || { sed -n '2,12p' "$0"; exit 2; }

ADDRESS="$1"; shift
AT="$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)"
PARAMS="$(printf '%s' '{"report": "daily", "customer": 4711, "region": "eu-west"}' | base64 -w0)"
DATA=$(cat <<EOF
{"job": {"namespace": "bench", "name": "ghz-{{.RequestNumber}}", "executor": "${EXECUTOR:-echo}",
 "trigger": {"once": {"at": "$AT"}}, "params": {"data": "$PARAMS", "contentType": "application/json"},
 "labels": {"suite": "bench"}, "idempotencyKey": "{{newUUID}}"}}
EOF
)
COMMON=(--insecure --proto "$ROOT/proto/hourglass/v1/jobs.proto" -i "$ROOT/proto"
        --call hourglass.v1.JobService.SubmitJob -d "$DATA" --async -c 100 -t 10s
        --duration-stop wait)

if [[ "${1:-}" == "step" ]]; then
    START="$2"; STEP="$3"; END="$4"; STEP_S="${5:-10}"
    steps=$(( (END - START) / STEP + 1 ))
    exec "$GHZ" "${COMMON[@]}" --load-schedule step --load-start "$START" --load-step "$STEP" \
        --load-end "$END" --load-step-duration "${STEP_S}s" -z "$(( steps * STEP_S ))s" "$ADDRESS"
fi
RATE="${1:-1000}"; SECONDS_="${2:-60}"
exec "$GHZ" "${COMMON[@]}" --rps "$RATE" -z "${SECONDS_}s" "$ADDRESS"

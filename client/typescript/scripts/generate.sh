#!/usr/bin/env bash
# Regenerates src/gen/ (never edit it by hand; or the folder given as argument) from ../../proto with ts-proto, through the protoc
# of grpcio-tools (the project's Python venv has it; no npm package downloads a protoc here).
# google/rpc/{status,error_details}.proto come from googleapis-common-protos, as the Python SDK
# reads them: the client decodes grpc-status-details-bin (BadRequest, RetryInfo) with them.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
root=$(cd "$here/../.." && pwd)
PYTHON=${PYTHON:-$root/.venv/bin/python}
plugin=$here/node_modules/.bin/protoc-gen-ts_proto
[ -x "$plugin" ] || (cd "$here" && npm ci --no-audit --no-fund)
googleapis=$("$PYTHON" -c 'import google.rpc.status_pb2 as m, pathlib; print(pathlib.Path(m.__file__).parents[2])')
out=${1:-$here/src/gen}
rm -rf "$out" && mkdir -p "$out"
"$PYTHON" -m grpc_tools.protoc -I "$root/proto" -I "$googleapis" \
  --plugin=protoc-gen-ts_proto="$plugin" --ts_proto_out="$out" \
  --ts_proto_opt=outputServices=grpc-js,env=node,esModuleInterop=true,useDate=true,useOptionals=messages \
  --ts_proto_opt=annotateFilesWithVersion=false \
  hourglass/v1/jobs.proto google/rpc/status.proto google/rpc/error_details.proto

#!/usr/bin/env bash
# Regenerates the Python code for proto/ into proto/hourglass_pb/ (never edit it by hand), or
# into the folder given (the stale-code check compares the two).
# The .proto files live under hourglass/v1/ (the path other languages expect), but the Python
# package `hourglass` is the SDK, so generated imports are moved to `hourglass_pb.v1`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
out=${1:-proto/hourglass_pb}
rm -rf "$out" && mkdir -p "$out/v1"
tmp=$(mktemp -d)
PATH="$(dirname "$PYTHON"):$PATH" "$PYTHON" -m grpc_tools.protoc -I proto --python_out="$tmp" --grpc_python_out="$tmp" \
  --mypy_out="$tmp" proto/hourglass/v1/*.proto
cp "$tmp"/hourglass/v1/* "$out/v1/"
rm -rf "$tmp"
sed -i 's/^from hourglass\.v1 import/from hourglass_pb.v1 import/; s/^import hourglass\.v1\./import hourglass_pb.v1./; s/\bhourglass\.v1\.\(jobs_pb2\|worker_pb2\)/hourglass_pb.v1.\1/g' "$out"/v1/*.py "$out"/v1/*.pyi
printf '"""Generated from proto/hourglass/v1 by scripts/gen_proto.sh. Do not edit."""\n' > "$out/__init__.py"
touch "$out/v1/__init__.py" "$out/py.typed"

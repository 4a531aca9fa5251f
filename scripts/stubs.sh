#!/usr/bin/env bash
# Regenerates the client code of every language from proto/ (make stubs); never edit it by hand.
# With a folder as argument, writes the committed languages' code there instead of in place
# (<dir>/python, <dir>/go/client/go/gen, <dir>/typescript): tests/unit/test_stubs.py compares them to catch
# stale code.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
BUF=${BUF:-$(dirname "$PYTHON")/buf}  # from the buf-bin wheel (dev dependencies)
out=${1:-}

# Python: proto/hourglass_pb (grpcio-tools, mypy-protobuf).
PYTHON=$PYTHON bash scripts/gen_proto.sh ${out:+"$out/python"}

# Go: client/go/gen (buf with the local plugins of buf.gen.yaml, pinned in scripts/go_tools.sh).
bash scripts/go_tools.sh
"$BUF" generate ${out:+--output "$out/go"}

# TypeScript: client/typescript/src/gen (ts-proto through grpcio-tools' protoc; npm ci first
# when the client's node_modules lacks the plugin).
PYTHON=$PYTHON bash client/typescript/scripts/generate.sh ${out:+"$out/typescript"}

# Java generates nothing committed: Maven compiles the stubs from proto/ at build time.

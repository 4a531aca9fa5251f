#!/usr/bin/env bash
# Installs the Go code generators buf runs as local plugins (buf.gen.yaml) into .tools/bin,
# at the versions pinned here: the generated code names them, so the stale-code check
# (tests/unit/test_stubs.py) needs the same ones. Idempotent: a binary already at its version
# stays.
set -euo pipefail
cd "$(dirname "$0")/.."
PROTOC_GEN_GO=v1.36.12      # google.golang.org/protobuf
PROTOC_GEN_GO_GRPC=v1.6.2   # google.golang.org/grpc/cmd/protoc-gen-go-grpc
bin="$PWD/.tools/bin"
mkdir -p "$bin"
install() {  # name, package, version
  local have
  have=$("$bin/$1" --version 2>/dev/null | awk '{print $NF}') || true
  if [ "${have#v}" != "${3#v}" ]; then  # protoc-gen-go prints "v1.36.12", -go-grpc "1.6.2"
    GOBIN="$bin" GOFLAGS=-mod=mod go install "$2@$3"
  fi
}
install protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go "$PROTOC_GEN_GO"
install protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC"

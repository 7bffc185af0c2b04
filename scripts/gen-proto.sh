#!/usr/bin/env bash
# Regenerates the Go code of api/ from its .proto files. The generator
# versions are pinned so that regeneration is byte-for-byte reproducible;
# bump them together with google.golang.org/protobuf and grpc in go.mod.
set -euo pipefail

cd "$(dirname "$0")/.."

PROTOC_GEN_GO="google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12"
PROTOC_GEN_GO_GRPC="google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2"

if ! command -v protoc >/dev/null 2>&1; then
	if [ "$(id -u)" -eq 0 ]; then
		apt-get update -qq >/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler >/dev/null
	else
		echo "protoc is missing: apt-get install protobuf-compiler" >&2
		exit 1
	fi
fi

bin="$(mktemp -d)"
trap 'rm -rf "$bin"' EXIT
GOBIN="$bin" GOFLAGS= go install "$PROTOC_GEN_GO"
GOBIN="$bin" GOFLAGS= go install "$PROTOC_GEN_GO_GRPC"

for proto in $(find api -name '*.proto' | sort); do
	PATH="$bin:$PATH" protoc -I api \
		--go_out=api --go_opt=paths=source_relative \
		--go-grpc_out=api --go-grpc_opt=paths=source_relative \
		"$proto"
	echo "generated from $proto"
done

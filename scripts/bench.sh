#!/usr/bin/env bash
# weft's benchmark: the same HTTP/1.1 and gRPC work sent directly, through
# two TCP relays (the floor), through weft sidecar pairs and through nginx,
# HAProxy and Caddy pairs with mutual TLS between them, in one run. Writes
# docs/bench/results.md, latency.svg and results.json.
#
#   scripts/bench.sh                      # full run, ~15 min on 2 cores
#   scripts/bench.sh --smoke              # seconds per system; what CI runs
#   scripts/bench.sh --duration 60s --rate 1000 --systems direct,haproxy
#   scripts/bench.sh --profile docs/bench/profile   # pprof of a weft pair
#
# Installs what it needs when missing (as root: nginx, haproxy, caddy and
# wrk from Debian; fortio with go install), so it is safe to run again.
# Every other flag goes to bench/cmd/weftbench (--help lists them); see
# docs/bench/README.md.
set -euo pipefail

cd "$(dirname "$0")/.."

FORTIO_MODULE="fortio.org/fortio@v1.68.2"

log() { printf '==> %s\n' "$*" >&2; }

# --- peers ------------------------------------------------------------------
missing=()
for cmd in nginx haproxy caddy wrk; do
	# nginx and haproxy live in /usr/sbin, which a non-root PATH may lack.
	if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
		missing+=("$cmd")
	fi
done
if [ "${#missing[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing: ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root" >&2
		exit 1
	fi
	log "installing ${missing[*]}"
	apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	# Debian starts the packages' own services where an init system runs;
	# the benchmark starts its own instances and needs neither them nor
	# their ports.
	for svc in nginx haproxy caddy; do
		if [[ " ${missing[*]} " == *" $svc "* ]] && command -v service >/dev/null 2>&1; then
			service "$svc" stop >/dev/null 2>&1 || true
		fi
	done
fi
export PATH="$PATH:/usr/sbin"

GOBIN_DIR="$(go env GOPATH)/bin"
export PATH="$GOBIN_DIR:$PATH"
if ! go version -m "$(command -v fortio 2>/dev/null || echo /nonexistent)" 2>/dev/null | grep -q 'fortio.org/fortio[[:space:]]*v1\.68\.2'; then
	log "installing fortio ($FORTIO_MODULE)"
	if ! out="$(GOFLAGS= go install "$FORTIO_MODULE" 2>&1)"; then
		echo "$out" >&2
		exit 1
	fi
fi

# --- build --------------------------------------------------------------------
BIN_DIR="${WEFTBENCH_BIN_DIR:-$(mktemp -d -t weftbench-bin-XXXXXX)}"
mkdir -p "$BIN_DIR"
log "building weft and weftbench into $BIN_DIR"
go build -o "$BIN_DIR/weft" ./cmd/weft
go build -o "$BIN_DIR/weftbench" ./bench/cmd/weftbench

# On a shared machine, run every benchmark process (proxies, server,
# client) ahead of background jobs: nice -10 as root, WEFTBENCH_NICE to
# change it. All systems get the same priority.
NICE="${WEFTBENCH_NICE:--10}"
nice_cmd=()
if [ "$NICE" != "0" ] && nice -n "$NICE" true 2>/dev/null; then
	nice_cmd=(nice -n "$NICE")
fi

# Show the command as typed in the report.
exec "${nice_cmd[@]}" "$BIN_DIR/weftbench" --weft "$BIN_DIR/weft" --fortio "$(command -v fortio)" \
	--repo . --command "scripts/bench.sh${*:+ $*}" "$@"

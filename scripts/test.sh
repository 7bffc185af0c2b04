#!/usr/bin/env bash
# The one command that runs every test of weft, on a fresh Debian machine as
# root or on a developer's machine: installs what the tests need (curl,
# h2spec, etcd), then vet, gofmt, build, unit tests with -race, and the end-to-end
# suite against the built binary. Safe to run again: installs are skipped
# when already done.
set -euo pipefail

cd "$(dirname "$0")/.."

H2SPEC_MODULE="github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible"

log() { printf '==> %s\n' "$*"; }

# --- tools the tests need -------------------------------------------------
if ! command -v curl >/dev/null 2>&1; then
	log "installing curl"
	if [ "$(id -u)" -eq 0 ]; then
		apt-get update -qq >/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null
	else
		echo "curl is missing and this is not root: install it (apt-get install curl)" >&2
		exit 1
	fi
fi

# etcd (Debian's etcd-server) for the etcd store backend and the control
# plane replica tests; those tests skip, saying why, where it is missing.
if ! command -v etcd >/dev/null 2>&1; then
	if [ "$(id -u)" -eq 0 ]; then
		log "installing etcd-server"
		apt-get update -qq >/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null
		# The package starts a system etcd on the default ports; the tests
		# start their own on free ports and need none.
		if command -v systemctl >/dev/null 2>&1; then systemctl stop etcd >/dev/null 2>&1 || true; fi
	else
		echo "etcd is missing and this is not root: etcd tests will be skipped (apt-get install etcd-server)" >&2
	fi
fi

# Prometheus (Debian's) scrapes the proxies in the telemetry test; Chromium
# (Debian's) with playwright-core (npm, pinned by
# test/e2e/browser/package-lock.json) shows the dashboard in the browser
# test. Those tests skip, saying why, where these are missing.
apt_install() {
	if [ "$(id -u)" -eq 0 ]; then
		log "installing $*"
		apt-get update -qq >/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
	else
		echo "missing and this is not root: apt-get install $*; the tests that need it will be skipped" >&2
	fi
}
if ! command -v prometheus >/dev/null 2>&1; then
	apt_install --no-install-recommends prometheus
	# The package may start a system Prometheus; the test runs its own.
	if command -v systemctl >/dev/null 2>&1; then systemctl stop prometheus >/dev/null 2>&1 || true; fi
fi
if [ ! -x /usr/bin/chromium ]; then
	apt_install chromium
fi
browser_dir=test/e2e/browser
want_pw="$(sed -n 's/.*"playwright-core": "\(.*\)".*/\1/p' "$browser_dir/package.json")"
have_pw="$(sed -n 's/^  "version": "\(.*\)".*/\1/p' "$browser_dir/node_modules/playwright-core/package.json" 2>/dev/null || true)"
if command -v npm >/dev/null 2>&1 && [ "$want_pw" != "$have_pw" ]; then
	log "installing playwright-core $want_pw (npm ci in $browser_dir)"
	(cd "$browser_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

GOBIN_DIR="$(go env GOPATH)/bin"
export PATH="$GOBIN_DIR:$PATH"
# h2spec --version says nothing useful (no ldflags), the build info does.
if ! go version -m "$(command -v h2spec 2>/dev/null || echo /nonexistent)" 2>/dev/null | grep -q 'summerwind/h2spec.*v2\.2\.1'; then
	log "installing h2spec"
	# h2spec has no go.mod, so go install chats about every dependency it
	# resolves; show that only if it fails.
	if ! out="$(GOFLAGS= go install "$H2SPEC_MODULE" 2>&1)"; then
		echo "$out" >&2
		exit 1
	fi
fi

# --- static checks and build ----------------------------------------------
log "go vet ./..."
go vet ./...

log "gofmt"
unformatted="$(gofmt -l .)"
if [ -n "$unformatted" ]; then
	echo "gofmt needed on:" >&2
	echo "$unformatted" >&2
	exit 1
fi

log "go build ./..."
go build ./...

# --- tests ----------------------------------------------------------------
# Everything but the end-to-end suite, with the race detector.
mapfile -t unit_pkgs < <(go list ./... | grep -v '/test/e2e')
if [ "${#unit_pkgs[@]}" -gt 0 ]; then
	log "go test -race (unit)"
	go test -race -count=1 -timeout 15m "${unit_pkgs[@]}"
fi

log "go test ./test/e2e"
go test -count=1 -timeout 12m -parallel 4 ./test/e2e

# The benchmark in smoke mode (installs nginx, haproxy, caddy, fortio if
# missing): every system carries traffic with zero errors and the mTLS and
# connection-reuse proofs hold; timings are not checked.
log "scripts/bench.sh --smoke"
scripts/bench.sh --smoke

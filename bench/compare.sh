#!/usr/bin/env bash
# A step against every peer in turn — nginx, HAProxy (HTTP mode), HAProxy's
# TCP mode and Go's httputil.ReverseProxy — each measured side by side with
# the step by bench/pair.sh (one core, the same seconds), so each line is a
# ratio of CPU per request that this shared machine does not blur.
#   bench/compare.sh [STEP-BINARY] [pair.sh options…]
# Needs: apt-get install -y nginx-light haproxy wrk golang-go
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-step03-reverse-proxy}; shift || true
cargo build --release -p "$bin"
for peer in nginx haproxy l4-tcp go-httputil; do
  bench/pair.sh -o "target/release/$bin --listen {listen} --upstream {up1}" -b "$peer" "$@" | tail -n 1
done

#!/usr/bin/env bash
# Benchmark a step against nginx, HAProxy and Go's ReverseProxy on this
# machine, in one run, with the workplace's shared harness.
#   bench/compare.sh [STEP-BINARY] [compare.sh options…]
# Needs: apt-get install -y nginx-light haproxy wrk golang-go
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-step03-reverse-proxy}; shift || true
harness=../shared/bench/compare.sh
[ -x "$harness" ] || [ -f "$harness" ] || { echo "no $harness here: it ships with the workplace's shared/ folder" >&2; exit 1; }
cargo build --release -p "$bin"
bash "$harness" -o "target/release/$bin --listen {listen} --upstream {up1}" "$@"

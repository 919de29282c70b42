#!/usr/bin/env bash
# The soak with faults: SECONDS (default 600) of mixed traffic through step
# 05 with every middleware on, while one of three upstreams is killed and
# restarted every 30 s (examples/soak.rs says what runs and what must hold).
# Prints what each kind of traffic saw, the retries, and RSS and open
# descriptors every 10 s; exits non-zero if a GET failed, memory grew more
# than 5 % after the first minute, or a descriptor leaked.
set -euo pipefail
seconds="${1:-600}"
cd "$(dirname "$0")/.."
cargo build --release -p real_server -p step05-middleware
cargo build --release --example soak
ulimit -n 65536 2>/dev/null || true
exec target/release/examples/soak --seconds "$seconds"

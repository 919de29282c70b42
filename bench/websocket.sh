#!/usr/bin/env bash
# Memory per idle websocket tunnel and echo round trips/s through step 06
# (the proxy as its own process, one runtime thread).
# Usage: bench/websocket.sh [SESSIONS] [MESSAGES]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p step06-websocket --bin step06-websocket --example idle_tunnels
exec target/release/examples/idle_tunnels target/release/step06-websocket "${1:-1000}" "${2:-100}"

#!/usr/bin/env bash
# RSS of the release gateway with N services configured (default 1,000):
#   bench/gateway-rss.sh [N]
# Each service has its own path prefix, two upstreams, a rate limit and
# health bookkeeping; RSS is read after start and after one request to each.
set -euo pipefail
n=${1:-1000}
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
{
  echo "listen = \"127.0.0.1:$port\""
  for i in $(seq 1 "$n"); do
    printf '[[services]]\nname = "s%d"\npath_prefix = "/s%d"\n' "$i" "$i"
    printf 'upstreams = ["http://127.0.0.1:9%03d", "http://127.0.0.1:8%03d,weight=2"]\n' $((i % 1000)) $((i % 1000))
    echo 'rate_limit = { rps = 100, burst = 100, key = "client-ip" }'
  done
} > "$dir/gateway.toml"
"$(dirname "$0")/../target/release/step11-gateway" --config "$dir/gateway.toml" 2>/dev/null &
pid=$!
until curl -s -o /dev/null "http://127.0.0.1:$port/"; do sleep 0.1; done
echo "services: $n  RSS after start: $(awk '/VmRSS/{print $2, $3}' /proc/$pid/status)"
for i in $(seq 1 "$n"); do printf 'url = "http://127.0.0.1:%s/s%d/"\noutput = "/dev/null"\n' "$port" "$i"; done > "$dir/urls"
curl -s -o /dev/null -K "$dir/urls" || true
echo "services: $n  RSS after a request to each: $(awk '/VmRSS/{print $2, $3}' /proc/$pid/status)"

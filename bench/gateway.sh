#!/usr/bin/env bash
# The release gateway in front of one upstream, for bench/pair.sh:
#   bench/gateway.sh LISTEN UPSTREAM_URL [REDIS_URL]
# One service, limited to a rate no benchmark reaches (every request is
# checked and admitted): in this process's own buckets, or with REDIS_URL,
# in Redis — so the two runs differ by the sharing alone. Example:
#   bench/pair.sh -o 'bench/gateway.sh {listen} {up1} redis://127.0.0.1:6390' \
#                 -b 'bench/gateway.sh {listen} {up1}'
set -euo pipefail
listen=$1 upstream=$2 redis=${3:-}
config=$(mktemp --suffix=.toml)
{
  echo "listen = \"$listen\""
  [ -n "$redis" ] && printf '[redis]\nurl = "%s"\n' "$redis"
  printf '[[services]]\nname = "bench"\nupstreams = ["%s"]\n' "$upstream"
  echo 'rate_limit = { rps = 100000000, burst = 100000000, key = "global" }'
} > "$config"
exec "$(dirname "$0")/../target/release/step11-gateway" --config "$config"

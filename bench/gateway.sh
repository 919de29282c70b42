#!/usr/bin/env bash
# The release gateway in front of one upstream, for bench/pair.sh:
#   bench/gateway.sh [--engine hyper|fast] [--key global|client-ip] [--services N]
#                    [--allow CIDR] LISTEN UPSTREAM_URL [REDIS_URL]
# One service, limited to a rate no benchmark reaches (every request is
# checked and admitted): in this process's own buckets, or with REDIS_URL,
# in Redis — so the two runs differ by the sharing alone. The engine is the
# plain listener's (default hyper); the key the limit's (default global);
# --services N adds N services before it, each with its own host and
# prefix, that the benchmark's requests never match (routing's cost);
# --allow CIDR gives the service an address allow-list (auth's cost).
# Examples:
#   bench/pair.sh -o 'bench/gateway.sh {listen} {up1} redis://127.0.0.1:6390' \
#                 -b 'bench/gateway.sh {listen} {up1}'
#   bench/pair.sh -o 'bench/gateway.sh --engine fast --key client-ip {listen} {up1}' -b nginx-limit
set -euo pipefail
engine=hyper key=global services=0 allow=
while [ $# -gt 0 ]; do
  case $1 in
    --engine) engine=$2; shift 2 ;;
    --key) key=$2; shift 2 ;;
    --services) services=$2; shift 2 ;;
    --allow) allow=$2; shift 2 ;;
    *) break ;;
  esac
done
listen=$1 upstream=$2 redis=${3:-}
config=$(mktemp --suffix=.toml)
{
  echo "engine = \"$engine\""
  echo "listen = \"$listen\""
  if [ -n "$redis" ]; then printf '[redis]\nurl = "%s"\n' "$redis"; fi
  for i in $(seq 1 "$services"); do
    printf '[[services]]\nname = "s%d"\nhost = "s%d.example"\npath_prefix = "/s%d"\nupstreams = ["%s"]\n' \
      "$i" "$i" "$i" "$upstream"
  done
  printf '[[services]]\nname = "bench"\nupstreams = ["%s"]\n' "$upstream"
  echo "rate_limit = { rps = 100000000, burst = 100000000, key = \"$key\" }"
  if [ -n "$allow" ]; then echo "auth = { allow = [\"$allow\"] }"; fi
} > "$config"
exec "$(dirname "$0")/../target/release/step11-gateway" --config "$config"

#!/usr/bin/env bash
# The release gateway in front of one upstream, for bench/pair.sh:
#   bench/gateway.sh [--engine hyper|fast] [--key global|client-ip] [--services N]
#                    [--allow CIDR] [--no-limit] [--tenants] [--cache SIZE] [--binary PATH]
#                    LISTEN UPSTREAM_URL [REDIS_URL]
# One service, limited to a rate no benchmark reaches (every request is
# checked and admitted): in this process's own buckets, or with REDIS_URL,
# in Redis — so the two runs differ by the sharing alone. The engine is the
# plain listener's (default hyper); the key the limit's (default global);
# --services N adds N services before it, each with its own host and
# prefix, that the benchmark's requests never match (routing's cost);
# --allow CIDR gives the service an address allow-list (auth's cost).
# --no-limit leaves the rate limit out; --tenants makes the service
# open_auth, for an app "bench" whose qps and qpd no benchmark reaches
# (its token: bench/token.sh bench-secret bench; with REDIS_URL its quotas
# and the statistics are kept there); --cache SIZE puts step 09's cache
# in front of its upstream (with pair.sh -k every request is a hit);
# --binary runs another build (an older commit's, to measure what a
# change costs).
# Examples:
#   bench/pair.sh -o 'bench/gateway.sh {listen} {up1} redis://127.0.0.1:6390' \
#                 -b 'bench/gateway.sh {listen} {up1}'
#   bench/pair.sh -o 'bench/gateway.sh --engine fast --key client-ip {listen} {up1}' -b nginx-limit
#   bench/pair.sh -k -o 'bench/gateway.sh --engine fast --no-limit --cache 64MiB {listen} {up1}' -b nginx-cache
set -euo pipefail
engine=hyper key=global services=0 allow= limit=yes tenants=no cache=
binary="$(dirname "$0")/../target/release/step11-gateway"
while [ $# -gt 0 ]; do
  case $1 in
    --no-limit) limit=no; shift ;;
    --tenants) tenants=yes; shift ;;
    --cache) cache=$2; shift 2 ;;
    --binary) binary=$2; shift 2 ;;
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
  if [ "$tenants" = yes ]; then
    printf '[tokens]\nsecret = "bench-secret"\n'
    printf '[[apps]]\nid = "bench"\nsecret = "x"\nqps = 100000000\nqpd = 100000000000\n'
  fi
  for i in $(seq 1 "$services"); do
    printf '[[services]]\nname = "s%d"\nhost = "s%d.example"\npath_prefix = "/s%d"\nupstreams = ["%s"]\n' \
      "$i" "$i" "$i" "$upstream"
  done
  printf '[[services]]\nname = "bench"\nupstreams = ["%s"]\n' "$upstream"
  if [ "$limit" = yes ]; then
    echo "rate_limit = { rps = 100000000, burst = 100000000, key = \"$key\" }"
  fi
  if [ "$tenants" = yes ]; then echo "open_auth = true"; fi
  if [ -n "$allow" ]; then echo "auth = { allow = [\"$allow\"] }"; fi
  if [ -n "$cache" ]; then echo "cache = { size = \"$cache\" }"; fi
} > "$config"
exec "$binary" --config "$config"

#!/usr/bin/env bash
# What the middleware chain costs: step 05 with every middleware on against
# step 03, side by side (bench/pair.sh: one core, the same seconds; the
# ratio is what to read).
#   bench/overhead.sh [ROUNDS] [SECONDS]          (default 9 rounds of 5 s)
#   bench/overhead.sh --self [ROUNDS] [SECONDS]   step 03 against itself: the noise floor
#   bench/overhead.sh --flags 'FLAGS' [ROUNDS] [SECONDS]
#       step 05 with FLAGS against step 05 with none: what one middleware
#       costs, e.g. --flags '--admin 127.0.0.1:19121'
# Every middleware is set so that the benchmark's requests pass it: a rate
# no benchmark reaches, a breaker that never opens, the client's network
# allowed, a rewrite that matches nothing.
# Needs: nginx and wrk (apt-get install -y nginx-light wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=all flags=""
case "${1:-}" in
  --self) mode=self; shift ;;
  --flags) mode=flags; flags=$2; shift 2 ;;
esac
rounds=${1:-9} seconds=${2:-5}
cargo build --release -p step03-reverse-proxy -p step05-middleware
step03="target/release/step03-reverse-proxy --listen {listen} --upstream {up1}"
step05="target/release/step05-middleware --listen {listen} --upstream {up1}"
all_on="--admin 127.0.0.1:19121 --rate-limit 1000000000 --rate-key client-ip --breaker-error-rate 50 --max-concurrent 100000 --allow 127.0.0.0/8 --rewrite ^/never/(.*)=/\$1"
case $mode in
  self) ours=$step03 peer=$step03 ;;
  flags) ours="$step05 $flags" peer=$step05 ;;
  all) ours="$step05 $all_on" peer=$step03 ;;
esac
bench/pair.sh -o "$ours" -b "$peer" -r "$rounds" -d "$seconds"

#!/usr/bin/env bash
# What the middleware chain costs: step 03 against step 05 with every
# middleware on, measured *at the same time*.
#
# Both proxies run at once, pinned to the same core (CPU 1), each driven by
# its own wrk (CPU 0) against the same nginx backend. Each round reads both
# proxies' CPU time over the same seconds and divides by the requests each
# served; the ratio of the two cancels whatever the machine did in those
# seconds. (Measured one after the other, as bench/compare.sh
# does, the same binary moves by 15-30 % between blocks on this shared
# machine; measured side by side, step 03 against itself gives ratios
# within 1 %.) Sharing a core makes both absolute figures higher than a
# proxy running alone; the ratio is what this script is for.
#   bench/overhead.sh [ROUNDS] [SECONDS]   (default 9 rounds of 5 s)
#   bench/overhead.sh --self [ROUNDS] [SECONDS]   step 03 against itself
#   bench/overhead.sh --flags 'FLAGS' [ROUNDS] [SECONDS]
#       step 05 with FLAGS against step 05 with none: what one middleware
#       costs, e.g. --flags '--admin 127.0.0.1:19121'
# Needs: nginx and wrk (apt-get install -y nginx-light wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=all; FLAGS=""
case "${1:-}" in
  --self) MODE=self; shift;;
  --flags) MODE=flags; FLAGS=$2; shift 2;;
esac
ROUNDS=${1:-9}; D=${2:-5}
cargo build --release -p step03-reverse-proxy -p step05-middleware
W=$(mktemp -d /tmp/overhead.XXXX); PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
mkdir -p "$W/t"
cat > "$W/be.conf" <<C
worker_processes 1; daemon off; pid $W/be.pid; error_log $W/be.err;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 10000000; client_body_temp_path $W/t; proxy_temp_path $W/t; fastcgi_temp_path $W/t; uwsgi_temp_path $W/t; scgi_temp_path $W/t;
  server { listen 127.0.0.1:19101; location / { return 200 "Hello, World!\n"; } } }
C
taskset -c 0 nginx -c "$W/be.conf" -p "$W" & PIDS+=($!)
wait_port() { for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }
wait_port 19101
UP=http://127.0.0.1:19101
STEP03="target/release/step03-reverse-proxy --upstream $UP"
STEP05="target/release/step05-middleware --upstream $UP"
case $MODE in
  self) A_NAME=step03; A=$STEP03; B_NAME=step03-again; B=$STEP03;;
  flags) A_NAME=step05-none; A=$STEP05; B_NAME=step05+flags; B="$STEP05 $FLAGS";;
  # Every middleware on, each set so that the benchmark's requests pass it.
  all) A_NAME=step03; A=$STEP03; B_NAME=step05-all
       B="$STEP05 --admin 127.0.0.1:19121 --rate-limit 1000000000 --rate-key client-ip --breaker-error-rate 50 --max-concurrent 100000 --allow 127.0.0.0/8 --rewrite ^/never/(.*)=/\$1";;
esac
A="$A --listen 127.0.0.1:19110"; B="$B --listen 127.0.0.1:19120"
taskset -c 1 $A >"$W/a.log" 2>&1 & PA=$!; PIDS+=($PA)
taskset -c 1 $B >"$W/b.log" 2>&1 & PB=$!; PIDS+=($PB)
wait_port 19110; wait_port 19120
ticks() { awk '{print $14+$15}' /proc/$1/stat; }
load() { # load SECONDS: both proxies at once; leaves wrk's reports in $W
  taskset -c 0 wrk -t1 -c64 -d"$1"s http://127.0.0.1:19110/ >"$W/wa" & local wa=$!
  taskset -c 0 wrk -t1 -c64 -d"$1"s http://127.0.0.1:19120/ >"$W/wb" & local wb=$!
  wait $wa $wb
}
load 2   # warm-up: connections, pools, caches
CPU_A=""; CPU_B=""; RATIOS=""
for _ in $(seq "$ROUNDS"); do
  a0=$(ticks $PA); b0=$(ticks $PB)
  load "$D"
  a1=$(ticks $PA); b1=$(ticks $PB)
  ra=$(awk '/requests in/{print $1}' "$W/wa"); rb=$(awk '/requests in/{print $1}' "$W/wb")
  for f in wa wb; do grep -E 'Non-2xx|Socket errors' "$W/$f" >&2 || true; done
  read -r ca cb ratio < <(python3 -c "t=$(getconf CLK_TCK); a=($a1-$a0)*1e6/t/$ra; b=($b1-$b0)*1e6/t/$rb; print(f'{a:.2f} {b:.2f} {b/a:.4f}')")
  CPU_A+="$ca,"; CPU_B+="$cb,"; RATIOS+="$ratio,"
done
python3 - <<PY
import statistics
a = [$CPU_A]; b = [$CPU_B]; ratios = sorted([$RATIOS])
print(f"# $ROUNDS rounds of wrk -t1 -c64 -d${D}s against each proxy at once, both proxies on CPU 1")
print(f"{'$A_NAME':13} {statistics.median(a):6.2f} us CPU/req (median)  rounds: {a}")
print(f"{'$B_NAME':13} {statistics.median(b):6.2f} us CPU/req (median)  rounds: {b}")
print("per-round ratios: " + " ".join(f"{r:.3f}" for r in ratios))
print(f"$B_NAME costs {100*(statistics.median(ratios)-1):+.1f}% CPU per request over $A_NAME (median of per-round ratios)")
PY

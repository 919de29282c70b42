#!/usr/bin/env bash
# What the middleware chain costs: step 03 against step 05 with every
# middleware on, interleaved round by round on the same nginx backend so the
# machine's noise hits both alike. Proxy pinned to CPU 1, wrk and the
# backend to CPU 0, as in ../shared/bench/compare.sh.
#   bench/overhead.sh [ROUNDS] [SECONDS]   (default 11 rounds of 5 s)
# Needs: nginx and wrk (apt-get install -y nginx-light wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-11}; D=${2:-5}
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
wait_port() { for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
wait_port 19101
UP=http://127.0.0.1:19101
declare -A CMD
CMD[step03]="target/release/step03-reverse-proxy --listen 127.0.0.1:19110 --upstream $UP"
# Every middleware on, each set so that the benchmark's requests pass it.
CMD[step05-all]="target/release/step05-middleware --listen 127.0.0.1:19110 --upstream $UP --admin 127.0.0.1:19111 --rate-limit 1000000000 --rate-key client-ip --breaker-error-rate 50 --max-concurrent 100000 --allow 127.0.0.0/8 --rewrite ^/never/(.*)=/\$1"
declare -A CPU RPS
for r in $(seq "$ROUNDS"); do
  # Alternate which goes first, so a machine getting busier (or quieter)
  # during a round does not always favour the same proxy.
  order="step03 step05-all"; [ $((r % 2)) -eq 0 ] && order="step05-all step03"
  for n in $order; do
    taskset -c 1 ${CMD[$n]} >/dev/null 2>&1 & PX=$!
    wait_port 19110
    taskset -c 0 wrk -t1 -c64 -d2s http://127.0.0.1:19110/ >/dev/null
    t0=$(awk '{print $14+$15}' /proc/$PX/stat)
    out=$(taskset -c 0 wrk -t1 -c64 -d${D}s http://127.0.0.1:19110/)
    t1=$(awk '{print $14+$15}' /proc/$PX/stat)
    reqs=$(echo "$out" | awk '/requests in/{print $1}')
    CPU[$n]+="$(python3 -c "print(round(($t1-$t0)*1e6/$(getconf CLK_TCK)/$reqs,2))") "
    RPS[$n]+="$(echo "$out" | awk '/Requests\/sec/{print $2}') "
    kill $PX; wait $PX 2>/dev/null || true
  done
done
python3 - <<PY
import statistics
cpu = {"step03": [${CPU[step03]// /,}], "step05-all": [${CPU[step05-all]// /,}]}
rps = {"step03": [${RPS[step03]// /,}], "step05-all": [${RPS[step05-all]// /,}]}
print(f"# {len(cpu['step03'])} interleaved rounds of wrk -t1 -c64 -d${D}s, proxy on 1 core; medians")
for n in cpu:
    print(f"{n:12} {statistics.median(rps[n]):10.0f} req/s {statistics.median(cpu[n]):8.2f} us CPU/req   rounds: {cpu[n]}")
# The machine is shared: a neighbour's burst inflates whole rounds. Each
# round runs both proxies back to back, so the ratio within a round cancels
# most of that; the median of those ratios is the figure.
ratios = sorted(b / a for a, b in zip(cpu["step03"], cpu["step05-all"]))
ratio = statistics.median(ratios)
print("per-round ratios: " + " ".join(f"{r:.3f}" for r in ratios))
print(f"step 05 with every middleware costs {100*(ratio-1):+.1f}% CPU per request over step 03 (median of per-round ratios)")
PY

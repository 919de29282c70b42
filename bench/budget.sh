#!/usr/bin/env bash
# Where the time of one proxied request goes: user-space instructions
# (callgrind) and system calls (perf's raw_syscalls tracepoint) per
# request, and the kernel's share of the proxy's CPU, for nginx, step 03 and step 10 (and HAProxy's TCP mode for the
# system calls: the L4 floor) — each as the same proxy in front of the same
# nginx backend that bench/pair.sh uses.
#   bench/budget.sh            (after cargo build --release -p step03-reverse-proxy -p step10-fast-path)
# Instructions: the proxy under callgrind, loaded by wrk -c64 once for 2 s
# and once for 8 s; the difference in instructions over the difference in
# requests removes start-up. System calls: the release binary alone, wrk
# for 4 s, every system call it enters counted.
# Needs nginx, haproxy, wrk, valgrind, perf.
set -euo pipefail
cd "$(dirname "$0")/.."
W=$(mktemp -d /tmp/budget.XXXX); PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
wait_port() { for _ in $(seq 600); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }
mkdir -p "$W/t"
TEMPS="client_body_temp_path $W/t; proxy_temp_path $W/t; fastcgi_temp_path $W/t; uwsgi_temp_path $W/t; scgi_temp_path $W/t;"
cat > "$W/be.conf" <<C
worker_processes 1; daemon off; pid $W/be.pid; error_log $W/be.err;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 10000000; $TEMPS
  server { listen 127.0.0.1:19401; location / { return 200 "Hello, World!\n"; } } }
C
cat > "$W/px.conf" <<C
master_process off; worker_processes 1; daemon off; pid $W/px.pid; error_log $W/px.err;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 10000000; $TEMPS
  upstream be { server 127.0.0.1:19401; keepalive 256; }
  server { listen 127.0.0.1:19420; location / { proxy_pass http://be; proxy_http_version 1.1;
    proxy_set_header Connection ""; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; } } }
C
printf 'global\n  nbthread 1\n  maxconn 8192\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\nlisten p\n  bind 127.0.0.1:19420\n  server s1 127.0.0.1:19401\n' > "$W/ha.cfg"
taskset -c 0 nginx -c "$W/be.conf" -p "$W" >/dev/null 2>&1 & PIDS+=($!)
wait_port 19401

command_of() {
  case $1 in
    nginx) echo "nginx -c $W/px.conf -p $W";;
    step03) echo "target/release/step03-reverse-proxy --listen 127.0.0.1:19420 --upstream http://127.0.0.1:19401";;
    step10) echo "target/release/step10-fast-path --listen 127.0.0.1:19420 --upstream http://127.0.0.1:19401";;
    l4-tcp) echo "haproxy -f $W/ha.cfg";;
  esac
}

# requests SECONDS: run wrk, print how many requests it completed.
load() { taskset -c 0 wrk -t1 -c64 -d"$1"s http://127.0.0.1:19420/ | awk '/requests in/ {print $1}'; }

# instructions under callgrind for a SECONDS-long load: "INSTRUCTIONS REQUESTS"
callgrind_run() {
  local out="$W/cg.$1.$2"
  taskset -c 1 valgrind --tool=callgrind --callgrind-out-file="$out" $(command_of "$1") >/dev/null 2>&1 & local pid=$!
  wait_port 19420
  local requests; requests=$(load "$2")
  kill -INT "$pid"; wait "$pid" 2>/dev/null || true
  local ir; ir=$(grep -h '^summary:' "$out"* | awk '{s+=$2} END {print s}')
  echo "$ir $requests"
}

# user and system CPU ticks of PID and its children: "USER SYSTEM"
ticks() { local u=0 k=0; for p in $(ps -o pid= --ppid "$1") "$1"; do read -r a b < <(awk '{print $14, $15}' /proc/"$p"/stat); u=$((u + a)); k=$((k + b)); done; echo "$u $k"; }

# system calls per request, and the kernel's share of the CPU: "CALLS SHARE"
syscalls() {
  taskset -c 1 $(command_of "$1") >/dev/null 2>&1 & local pid=$!
  wait_port 19420
  load 1 >/dev/null
  read -r u0 k0 < <(ticks "$pid")
  perf stat -x, -e raw_syscalls:sys_enter -p "$pid" -o "$W/perf.$1" & local perf=$!
  sleep 0.2
  local requests; requests=$(load 4)
  kill -INT "$perf"; wait "$perf" 2>/dev/null || true
  read -r u1 k1 < <(ticks "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local calls; calls=$(awk -F, '/raw_syscalls/ {print $1}' "$W/perf.$1")
  awk -v c="$calls" -v r="$requests" -v u=$((u1 - u0)) -v k=$((k1 - k0)) \
    'BEGIN {printf "%.2f %.0f%%\n", c / r, 100 * k / (u + k)}'
}

printf '%-8s %18s %14s %12s\n' proxy instructions/req syscalls/req kernel-share
for system in nginx step03 step10 l4-tcp; do
  if [ "$system" = l4-tcp ]; then
    ir_per='-'
  else
    read -r ir2 rq2 < <(callgrind_run "$system" 2)
    read -r ir8 rq8 < <(callgrind_run "$system" 8)
    ir_per=$(awk -v a="$ir2" -v b="$ir8" -v x="$rq2" -v y="$rq8" 'BEGIN {printf "%.0f\n", (b - a) / (y - x)}')
  fi
  read -r calls share < <(syscalls "$system")
  printf '%-8s %18s %14s %12s\n' "$system" "$ir_per" "$calls" "$share"
done

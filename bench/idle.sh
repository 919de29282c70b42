#!/usr/bin/env bash
# What an idle keep-alive connection costs each proxy: N clients (default
# 8,000, from eight loopback addresses so no per-address cap is reached)
# each send one request, read the answer, and then say nothing. The proxy's
# RSS (with its children, for nginx's worker) is read before the clients
# connect and once they are all idle; the growth over N is the figure.
#
#   bench/idle.sh [N]      (after cargo build --release -p real_server
#                           -p step03-reverse-proxy -p step10-fast-path
#                           -p step11-gateway; nginx when installed)
#
# The backend is real_server; each proxy runs with its defaults (and
# enough open files for N clients and N upstream connections).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-8000}
. bench/lib.sh
ulimit -n "$(ulimit -Hn)"  # a client and an upstream connection each, and room
family() { echo "$1"; cat /proc/"$1"/task/*/children 2>/dev/null; }
rss_kib() { local t=0 p; for p in $(family "$1"); do t=$((t + $(awk '/^VmRSS/ {print $2}' /proc/$p/status 2>/dev/null || echo 0))); done; echo $t; }

cat > "$work/idle.py" <<'PY'
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
held = []
for i in range(n):
    s = socket.socket(); s.bind((f"127.0.0.{10 + i % 8}", 0)); s.connect(("127.0.0.1", port))
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += s.recv(4096)
    held.append(s)
print("ready", flush=True)
time.sleep(3600)
PY

target/release/real_server --listen 127.0.0.1:19501 >"$work/rs.log" 2>&1 & children+=($!)
await_port 19501
UP=http://127.0.0.1:19501

measure() { # NAME PORT COMMAND...
  local name=$1 port=$2; shift 2
  "$@" >"$work/p.log" 2>&1 & local pid=$!; children+=($pid)
  await_port "$port"
  curl -s -o /dev/null "http://127.0.0.1:$port/"
  local before; before=$(rss_kib $pid)
  python3 "$work/idle.py" "$port" "$n" >"$work/ready" 2>&1 & local clients=$!
  until grep -q ready "$work/ready" 2>/dev/null; do
    kill -0 $clients 2>/dev/null || { echo "$name: the clients failed: $(cat "$work/ready")" >&2; return 1; }
    sleep 0.2
  done
  sleep 1
  local after; after=$(rss_kib $pid)
  awk -v n="$name" -v b="$before" -v a="$after" -v c="$n" \
    'BEGIN {printf "%-10s %8.1f MiB -> %8.1f MiB   %6.2f KiB an idle connection\n", n, b/1024, a/1024, (a-b)/c}'
  kill $clients $pid; wait $clients $pid 2>/dev/null || true
}

echo "$n idle keep-alive clients, each after one request"
if command -v nginx >/dev/null; then
  mkdir -p "$work/ng"
  cat >"$work/ng/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $work/ng/nginx.pid; error_log $work/ng/err.log;
events { worker_connections $((3 * n)); }
http { access_log off; client_body_temp_path $work/ng; proxy_temp_path $work/ng;
  fastcgi_temp_path $work/ng; uwsgi_temp_path $work/ng; scgi_temp_path $work/ng;
  upstream backend { server 127.0.0.1:19501; keepalive 256; }
  server { listen 127.0.0.1:19510; location / { proxy_pass http://backend;
    proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
  measure nginx 19510 nginx -c "$work/ng/nginx.conf" -p "$work/ng"
fi
measure step10 19511 target/release/step10-fast-path --listen 127.0.0.1:19511 --upstream $UP
measure step03 19512 target/release/step03-reverse-proxy --listen 127.0.0.1:19512 --upstream $UP
printf 'engine = "hyper"\nlisten = "127.0.0.1:19513"\n[[services]]\nname = "all"\nupstreams = ["%s"]\n' $UP >"$work/gateway.toml"
measure gateway 19513 target/release/step11-gateway --config "$work/gateway.toml"
printf 'engine = "fast"\nlisten = "127.0.0.1:19514"\n[[services]]\nname = "all"\nupstreams = ["%s"]\n' $UP >"$work/gateway-fast.toml"
measure gw-fast 19514 target/release/step11-gateway --config "$work/gateway-fast.toml"

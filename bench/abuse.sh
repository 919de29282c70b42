#!/usr/bin/env bash
# Replays the attacks of the "hostile clients" issue against the release
# binaries on loopback, with default flags unless an attack needs one, and
# prints what held: the proxy's file descriptors and memory at the peak
# and after, and whether a normal client was still served meanwhile.
#
#   bench/abuse.sh            (needs python3, curl and wrk)
#
# The second round (5-9) replays what one client could still do: slow
# readers of 1 MB (beside nginx, when installed), bodies announced and never
# sent, silent TCP clients, the spellings of a private path, and HTTP/2
# clients that grant no flow-control window.
#
# The attacker connects from 127.0.0.1, the normal client from 127.0.0.2
# (all of 127/8 is loopback on Linux), so the per-address cap, which is
# one of the defences, does not also lock out the normal client.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p real_server -p step01-forward-proxy -p step03-reverse-proxy -p step05-middleware -p step08-tcp-proxy -p step10-fast-path -p step11-gateway
cargo build --release -q --example h2_streams
W=$(mktemp -d /tmp/abuse.XXXX); PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
wait_port() { for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }
fds() { ls /proc/$1/fd | wc -l; }
rss() { awk '/VmRSS/ {printf "%.0f MiB", $2/1024}' /proc/$1/status; }
served() { # served PORT: does a normal client get an answer within 5 s?
  if curl -s -m 5 --interface 127.0.0.2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/" | grep -q '^[23]'; then echo yes; else echo NO; fi
}
row() { printf '%-44s %-26s %-26s %s\n' "$@"; }

target/release/real_server --listen 127.0.0.1:19201 >"$W/rs.log" 2>&1 & PIDS+=($!)
wait_port 19201
UP=http://127.0.0.1:19201

row "attack" "proxy at the peak" "proxy afterwards" "normal client served"

# 1. Slowloris: 3,000 connections that send one byte and wait (against
#    step 03, then step 10: BINARY PORT).
slowloris() {
target/release/$1 --listen 127.0.0.1:$2 --upstream $UP --header-read-timeout 3 >"$W/p1.log" 2>&1 & P=$!; PIDS+=($P)
wait_port $2
python3 - $2 3000 >"$W/a1" <<'PY' &
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
held, refused = [], 0
for _ in range(n):
    try:
        s = socket.create_connection(("127.0.0.1", port)); s.send(b"P"); held.append(s)
    except OSError:
        refused += 1
time.sleep(1)
# The proxy closes what is past the per-address cap at once: count what is
# still open a second later.
open_now = 0
for s in held:
    s.setblocking(False)
    try:
        open_now += s.recv(1) != b""
    except BlockingIOError:
        open_now += 1
    except OSError:
        pass
print(f"{len(held)} connected, {open_now} still open after 1 s, {refused} refused")
time.sleep(7)
PY
A=$!; sleep 1.5
peak="$(fds $P) fds, $(rss $P)"; ok=$(served $2)
wait $A
row "$1: 3,000 connections sending one byte" "$peak" "$(fds $P) fds, $(rss $P)" "$ok"
echo "    the attacker: $(cat "$W/a1")"
}
slowloris step03-reverse-proxy 19210
slowloris step10-fast-path 19211

# 2. Rate-limit keys: 20,000 distinct keys, each request padded to 32 KB.
target/release/step05-middleware --listen 127.0.0.1:19220 --upstream $UP --rate-limit 1000 --rate-key header:x-api-key >"$W/p2.log" 2>&1 & P=$!; PIDS+=($P)
wait_port 19220
before="$(rss $P)"
cat > "$W/keys.lua" <<'LUA'
local n = 0
local pad = string.rep("p", 32 * 1024)
request = function()
  n = n + 1
  return wrk.format("GET", "/", { ["x-api-key"] = "key-" .. n, ["x-pad"] = pad })
end
LUA
wrk -t1 -c16 -d3s -s "$W/keys.lua" http://127.0.0.1:19220/ >"$W/w2" 2>&1
peak="$(fds $P) fds, $(rss $P) (from $before)"; ok=$(served 19220)
row "distinct rate-limit keys, 32 KB heads (3 s)" "$peak" "$(fds $P) fds, $(rss $P)" "$ok"

# 3. Slow readers: 500 clients ask for 1 GB each and read nothing
#    (against step 03, then step 10: BINARY PORT).
slow_readers() {
target/release/$1 --listen 127.0.0.1:$2 --upstream $UP --send-timeout 3 >"$W/p3.log" 2>&1 & P=$!; PIDS+=($P)
wait_port $2
python3 - $2 500 >"$W/a3" <<'PY' &
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
held = []
for _ in range(n):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.send(b"GET /bytes/1000000000 HTTP/1.1\r\nHost: x\r\n\r\n"); held.append(s)
time.sleep(10)
PY
A=$!; sleep 2
peak="$(fds $P) fds, $(rss $P)"; ok=$(served $2)
sleep 5
row "$1: 500 clients that stop reading 1 GB" "$peak" "$(fds $P) fds, $(rss $P) (at 7 s)" "$ok"
wait $A

}
slow_readers step03-reverse-proxy 19230
slow_readers step10-fast-path 19231

# 4. The forward proxy asked to CONNECT to itself, however spelled.
target/release/step01-forward-proxy --listen 127.0.0.1:19240 --allow-private --connect-ports any >"$W/p4.log" 2>&1 & P=$!; PIDS+=($P)
wait_port 19240
answers=""
for host in 127.0.0.1 127.1 2130706433 0 '[::ffff:127.0.0.1]'; do
  code=$(python3 - "$host" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", 19240))
s.send(f"CONNECT {sys.argv[1]}:19240 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
print(s.recv(64).split(b" ")[1].decode())
PY
)
  answers="$answers $code"
done
via=$(curl -s -m 5 --interface 127.0.0.2 -x http://127.0.0.1:19240 -o /dev/null -w '%{http_code}' $UP/)
row "CONNECT to itself, five spellings" "answers:$answers" "$(fds $P) fds, $(rss $P)" "$([ "$via" = 200 ] && echo yes || echo NO)"

# 5. Slow readers of ordinary responses: 1,000 clients (from four
#    addresses) each ask for 1 MB and read it at 4 KiB a second. What the
#    proxy holds for them is what it has read ahead of each client.
cat > "$W/slow.py" <<'PY'
import socket, sys, time
port, n, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
held = []
for i in range(n):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.bind((f"127.0.0.{10 + i % 4}", 0)); s.connect(("127.0.0.1", port))
    s.send(b"GET /bytes/1000000 HTTP/1.1\r\nHost: x\r\n\r\n"); s.setblocking(False); held.append(s)
end = time.time() + seconds
while time.time() < end:
    for s in held:
        try: s.recv(4096)
        except OSError: pass
    time.sleep(1)
PY
family() { echo "$1"; cat /proc/"$1"/task/*/children 2>/dev/null; }
rss_family() { local t=0 p; for p in $(family $1); do t=$((t + $(awk '/^VmRSS/ {print $2}' /proc/$p/status 2>/dev/null || echo 0))); done; echo "$((t / 1024)) MiB"; }
slow_1mb() { # NAME PORT COMMAND...
  local name=$1 port=$2; shift 2
  "$@" >"$W/p5.log" 2>&1 & P=$!; PIDS+=($P)
  wait_port $port
  python3 "$W/slow.py" $port 1000 15 & A=$!
  peak=0
  while kill -0 $A 2>/dev/null; do r=$(rss_family $P); r=${r% MiB}; [ "$r" -gt $peak ] && peak=$r; sleep 0.5; done
  ok=$(served $port)
  row "$name: 1,000 slow readers of 1 MB" "$(fds $P) fds, peak $peak MiB" "$(rss_family $P) (3 s on)" "$ok"
  kill $P
}
slow_1mb step03 19250 target/release/step03-reverse-proxy --listen 127.0.0.1:19250 --upstream $UP
slow_1mb step10 19251 target/release/step10-fast-path --listen 127.0.0.1:19251 --upstream $UP
printf 'listen = "127.0.0.1:19252"\n[[services]]\nname = "all"\nupstreams = ["%s"]\n' $UP >"$W/gateway.toml"
slow_1mb gateway 19252 target/release/step11-gateway --config "$W/gateway.toml"
if command -v nginx >/dev/null; then
  mkdir -p "$W/ng"
  cat >"$W/ng/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $W/ng/nginx.pid; error_log $W/ng/err.log;
events { worker_connections 8192; }
http { access_log off; client_body_temp_path $W/ng; proxy_temp_path $W/ng;
  fastcgi_temp_path $W/ng; uwsgi_temp_path $W/ng; scgi_temp_path $W/ng;
  upstream backend { server 127.0.0.1:19201; keepalive 256; }
  server { listen 127.0.0.1:19253; location / { proxy_pass http://backend;
    proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
  slow_1mb nginx 19253 nginx -c "$W/ng/nginx.conf" -p "$W/ng"
fi

# 6. Bodies announced and never sent: 200 clients send a POST head with
#    Expect: 100-continue and nothing more (step 03, then step 10, with a
#    2-second body timeout). Counted: connections the upstream still holds.
upstream_conns() { ss -tn state established "( sport = :19201 )" | tail -n +2 | wc -l; }
never_sent() {
target/release/$1 --listen 127.0.0.1:$2 --upstream $UP --client-body-timeout 2 >"$W/p6.log" 2>&1 & P=$!; PIDS+=($P)
wait_port $2
python3 - $2 <<'PY' &
import socket, sys, time
held = []
for _ in range(200):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    s.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"); held.append(s)
time.sleep(8)
PY
A=$!; sleep 1
at1="$(upstream_conns) upstream connections"; ok=$(served $2)
sleep 4
row "$1: 200 bodies announced, never sent" "at 1 s: $at1" "at 5 s: $(upstream_conns)" "$ok"
wait $A; kill $P
}
never_sent step03-reverse-proxy 19260
never_sent step10-fast-path 19261

# 7. Silent TCP clients: step 08 with room for 100 connections; 100
#    connections that say nothing, then a client with something to say.
target/release/step08-tcp-proxy --listen 127.0.0.1:19270 --upstream 127.0.0.1:19201 --max-connections 100 --max-connections-per-ip 100 >"$W/p7.log" 2>&1 & P=$!; PIDS+=($P)
wait_port 19270
python3 - <<'PY' &
import socket, time
held = [socket.create_connection(("127.0.0.1", 19270)) for _ in range(100)]
time.sleep(6)
PY
A=$!; sleep 1
ok=$(served 19270)
row "step08: 100 silent connections at the cap" "$(fds $P) fds" "" "$ok"
wait $A

# 8. One private path, many spellings: the gateway's /private service
#    allows only 10.0.0.0/8; every spelling must meet that rule (403) or be
#    refused (400), never reach the catch-all service (200).
cat >"$W/private.toml" <<CONF
listen = "127.0.0.1:19280"
[[services]]
name = "private"
path_prefix = "/private"
auth = { allow = ["10.0.0.0/8"] }
upstreams = ["$UP"]
[[services]]
name = "public"
upstreams = ["$UP"]
CONF
target/release/step11-gateway --config "$W/private.toml" >"$W/p8.log" 2>&1 & P=$!; PIDS+=($P)
wait_port 19280
answers=""
for path in //private/x /x/../private/x /./private/x /%70rivate/x /private%2fx '/private;x=1/x'; do
  answers="$answers $(curl -s --path-as-is -o /dev/null -w '%{http_code}' "http://127.0.0.1:19280$path")"
done
row "gateway: six spellings of /private" "answers:$answers" "" "$(served 19280)"

# 9. HTTP/2 with no window: twelve connections of 100 streams each, a
#    client that never grants a byte of window, against step 03 limited to
#    1,024 open files (its per-address share is then 96 places). Before,
#    they held 1,200 upstream connections and every descriptor.
( ulimit -n 1024; exec target/release/step03-reverse-proxy --listen 127.0.0.1:19290 --upstream $UP --send-timeout 3 ) >"$W/p9.log" 2>&1 & P=$!; PIDS+=($P)
wait_port 19290
for _ in $(seq 12); do
  timeout 10 target/release/examples/h2_streams http://127.0.0.1:19290/bytes/100000 --streams 100 --no-window >>"$W/a9" 2>&1 &
done
sleep 1.5
peak="$(fds $P) fds"; ok=$(served 19290)
sleep 4
row "step03: 12 HTTP/2 connections, 1,200 streams, no window" "$peak" "$(fds $P) fds at 5.5 s" "$ok"
sleep 5
# A connection whose every stream was refused holds its one place and no
# upstream, like any quiet HTTP/2 connection; its client gives up at 10 s.
echo "    the attacker: $(grep -c '^200' "$W/a9") streams answered 200, $(grep -c '^503' "$W/a9") refused 503, $(grep -c 'closed before' "$W/a9") cut off before an answer; $(grep -c 'closed the connection' "$W/a9") of 12 connections closed by the proxy"

#!/usr/bin/env bash
# Replays the attacks of the "hostile clients" issue against the release
# binaries on loopback, with default flags unless an attack needs one, and
# prints what held: the proxy's file descriptors and memory at the peak
# and after, and whether a normal client was still served meanwhile.
#
#   bench/abuse.sh            (needs python3, curl and wrk)
#
# The attacker connects from 127.0.0.1, the normal client from 127.0.0.2
# (all of 127/8 is loopback on Linux), so the per-address cap, which is
# one of the defences, does not also lock out the normal client.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p real_server -p step01-forward-proxy -p step03-reverse-proxy -p step05-middleware -p step10-fast-path
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

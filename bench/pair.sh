#!/usr/bin/env bash
# Side by side: the CPU one proxy spends per request, against a peer's, measured in the
# same seconds on the same core.
#
#   bench/pair.sh -o 'OURS' [-b PEER] [-r ROUNDS] [-d SECONDS] [-c CONNECTIONS] [-H HEADER] [-k]
#
# -H 'Name: value' is sent with every request, to both (a token, for a gateway's apps).
# -k makes the backend's answer cacheable for an hour (Cache-Control: max-age=3600), for
# caches: after the first request each one answers from its store.
# OURS (and a PEER given as a command) may use {listen} (where to listen), {up1} (the
# backend as http://HOST:PORT) and {up1addr} (HOST:PORT). PEER is nginx (default),
# nginx-limit (nginx with a per-client limit_req every request passes), nginx-cache
# (nginx's proxy_cache, 64 MiB; with -k every request is a hit), haproxy (HTTP
# mode), l4-tcp (HAProxy's TCP mode), go-httputil (bench/peers/goproxy), self (a second
# copy of OURS) or a command.
#
# Why side by side: this machine is shared, and the same proxy measured twice, one run
# after the other, moves by 15-30 %. Here both proxies run at once, pinned to CPU 1, each
# loaded by its own wrk; the backend (nginx, one worker answering "Hello, World!") and both
# wrks are on CPU 0. Each round reads both proxies' CPU time (utime + stime of the process
# and its children, from /proc) over the same seconds and divides by the requests each
# served; whatever else the machine does in those seconds hits both alike, and the ratio
# moves by about 1 %. Absolute figures are higher than alone (the core is shared): read
# the ratio. The last line is the median ratio of the rounds.
#
# Needs (Debian): nginx-light wrk, and haproxy or golang-go for those peers; everything
# else it reads from /proc.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

seconds=5 connections=64 rounds=7 ours="" peer=nginx header=() cacheable=""
while getopts "o:b:r:d:c:H:k" flag; do
  case $flag in
    o) ours=$OPTARG ;; b) peer=$OPTARG ;; r) rounds=$OPTARG ;;
    d) seconds=$OPTARG ;; c) connections=$OPTARG ;; H) header=(-H "$OPTARG") ;;
    k) cacheable='add_header Cache-Control "max-age=3600";' ;; *) exit 2 ;;
  esac
done
if [ -z "$ours" ]; then
  echo "usage: bench/pair.sh -o 'CMD with {listen} {up1}' [-b PEER] [-r ROUNDS] [-d SECONDS] [-c CONNECTIONS]" >&2
  exit 2
fi
for tool in nginx wrk taskset awk; do
  command -v "$tool" >/dev/null || { echo "bench/pair.sh needs $tool (apt-get install -y nginx-light wrk)" >&2; exit 1; }
done

backend_port=19301 ours_port=19310 peer_port=19320
. "$here/lib.sh"

# Fill the placeholders of a command for a proxy listening on PORT.
command_for() { # COMMAND PORT
  local cmd=$1
  cmd=${cmd//\{listen\}/127.0.0.1:$2}
  cmd=${cmd//\{up1addr\}/127.0.0.1:$backend_port}
  cmd=${cmd//\{up1\}/http://127.0.0.1:$backend_port}
  printf '%s' "$cmd"
}

# nginx's temporary files go to the work directory, so no root is needed.
nginx_conf() { # PORT BODY
  cat <<CONF
worker_processes 1; daemon off; pid $work/nginx-$1.pid; error_log $work/nginx-$1.err;
events { worker_connections 8192; }
http {
  access_log off; keepalive_requests 10000000;
  client_body_temp_path $work/tmp; proxy_temp_path $work/tmp; fastcgi_temp_path $work/tmp;
  uwsgi_temp_path $work/tmp; scgi_temp_path $work/tmp;
  $2
}
CONF
}

haproxy_conf() { # MODE
  printf 'global\n  nbthread 1\n  maxconn 8192\n'
  printf 'defaults\n  mode %s\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n' "$1"
  [ "$1" = tcp ] || printf '  option http-keep-alive\n  option forwardfor\n'
  printf 'listen proxy\n  bind 127.0.0.1:%s\n' "$peer_port"
  [ "$1" = tcp ] || printf '  http-reuse always\n'
  printf '  server backend 127.0.0.1:%s\n' "$backend_port"
}

mkdir -p "$work/tmp"
nginx_conf "$backend_port" "server { listen 127.0.0.1:$backend_port; location / { $cacheable return 200 \"Hello, World!\\n\"; } }" >"$work/backend.conf"
case $peer in
  nginx)
    nginx_conf "$peer_port" "upstream backend { server 127.0.0.1:$backend_port; keepalive 256; }
  server { listen 127.0.0.1:$peer_port; location / {
    proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection \"\";
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; } }" >"$work/peer.conf"
    peer_cmd="nginx -c $work/peer.conf -p $work" ;;
  nginx-limit)
    # nginx doing a gateway's work (bench/gateway.sh): a per-client limit
    # at a rate no benchmark reaches, so every request is checked.
    nginx_conf "$peer_port" "upstream backend { server 127.0.0.1:$backend_port; keepalive 256; }
  limit_req_zone \$binary_remote_addr zone=perclient:10m rate=100000000r/s;
  server { listen 127.0.0.1:$peer_port; location / {
    limit_req zone=perclient burst=100000000 nodelay;
    proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection \"\";
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; } }" >"$work/peer.conf"
    peer_cmd="nginx -c $work/peer.conf -p $work" ;;
  nginx-cache)
    # nginx's cache: entries on disk (in the page cache after the first
    # read), keys in 10 MiB of shared memory, at most 64 MiB stored.
    nginx_conf "$peer_port" "upstream backend { server 127.0.0.1:$backend_port; keepalive 256; }
  proxy_cache_path $work/nginx-cache keys_zone=hits:10m max_size=64m;
  server { listen 127.0.0.1:$peer_port; location / {
    proxy_cache hits;
    proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection \"\";
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; } }" >"$work/peer.conf"
    # Run as root, nginx's workers are nobody: they must reach and write
    # the cache's directories.
    mkdir -p "$work/nginx-cache" && chmod a+x "$work" && chmod a+rwx "$work/tmp" "$work/nginx-cache"
    peer_cmd="nginx -c $work/peer.conf -p $work" ;;
  haproxy) haproxy_conf http >"$work/peer.cfg"; peer_cmd="haproxy -f $work/peer.cfg" ;;
  l4-tcp) haproxy_conf tcp >"$work/peer.cfg"; peer_cmd="haproxy -f $work/peer.cfg" ;;
  go-httputil)
    (cd "$here/peers/goproxy" && go build -o "$work/goproxy" .)
    peer_cmd="env GOMAXPROCS=1 $work/goproxy -listen 127.0.0.1:$peer_port -upstream http://127.0.0.1:$backend_port" ;;
  self) peer_cmd=$(command_for "$ours" "$peer_port") ;;
  *) peer_cmd=$(command_for "$peer" "$peer_port"); peer=peer ;;
esac
ours_cmd=$(command_for "$ours" "$ours_port")

taskset -c 0 nginx -c "$work/backend.conf" -p "$work" >/dev/null 2>&1 &
children+=($!)
await_port "$backend_port"
taskset -c 1 $ours_cmd >"$work/ours.log" 2>&1 &
ours_pid=$!; children+=("$ours_pid")
taskset -c 1 $peer_cmd >"$work/peer.log" 2>&1 &
peer_pid=$!; children+=("$peer_pid")
await_port "$ours_port"
await_port "$peer_port"

# A process and its children (nginx's worker), from /proc alone.
family() { echo "$1"; cat /proc/"$1"/task/*/children 2>/dev/null; }
# One number summed over a process and its children, read by AWK from /proc/PID/FILE.
sum_family() { # PID FILE AWK
  local total=0 pid
  for pid in $(family "$1"); do
    total=$((total + $(awk "$3" "/proc/$pid/$2" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
cpu_ticks() { sum_family "$1" stat '{ print $14 + $15 }'; } # user + system
rss_kib() { sum_family "$1" status '/^VmRSS/ { print $2 }'; }

# Load both proxies at once for SECONDS, each with its own wrk on CPU 0.
load_both() {
  taskset -c 0 wrk -t1 -c"$connections" -d"$1"s --latency "${header[@]}" "http://127.0.0.1:$ours_port/" >"$work/wrk-ours" 2>&1 &
  local a=$!
  taskset -c 0 wrk -t1 -c"$connections" -d"$1"s --latency "${header[@]}" "http://127.0.0.1:$peer_port/" >"$work/wrk-peer" 2>&1 &
  local b=$!
  wait "$a" "$b"
}
requests() { awk '/requests in/ { print $1 }' "$1"; }
p99() { awk '$1 == "99%" { print $2 }' "$1"; }

load_both 2 # warm both up: pools filled, pages touched
samples="" p99_ours="" p99_peer="" unclean=0
for _ in $(seq "$rounds"); do
  ours_before=$(cpu_ticks "$ours_pid"); peer_before=$(cpu_ticks "$peer_pid")
  load_both "$seconds"
  ours_after=$(cpu_ticks "$ours_pid"); peer_after=$(cpu_ticks "$peer_pid")
  for side in ours peer; do
    if grep -qE 'Non-2xx|Socket errors' "$work/wrk-$side"; then
      grep -E 'Non-2xx|Socket errors' "$work/wrk-$side" | sed "s/^/$side: /" >&2
      unclean=1
    fi
  done
  samples+="$((ours_after - ours_before)) $(requests "$work/wrk-ours") $((peer_after - peer_before)) $(requests "$work/wrk-peer");"
  p99_ours+="$(p99 "$work/wrk-ours") "; p99_peer+="$(p99 "$work/wrk-peer") "
done

echo "# $rounds rounds of ${seconds} s, wrk -t1 -c$connections against each proxy at once, both proxies on CPU 1; peer: $peer"
echo "RSS ours $(rss_kib "$ours_pid") KiB, $peer $(rss_kib "$peer_pid") KiB"
echo "p99 ours: $p99_ours"
echo "p99 $peer: $p99_peer"
[ "$unclean" = 0 ] || echo "errors were seen (above): the ratio below is not a clean measurement"
# Per round: µs of CPU per request for each proxy, and their ratio; the
# figure is the median ratio.
echo "$samples" | tr ';' '\n' | awk -v tck="$(getconf CLK_TCK)" -v peer="$peer" '
  NF == 4 {
    n++
    ours[n] = $1 * 1e6 / tck / $2
    theirs[n] = $3 * 1e6 / tck / $4
    ratio[n] = ours[n] / theirs[n]
  }
  END {
    line = "ours µs CPU per request:"
    for (i = 1; i <= n; i++) line = line sprintf(" %.2f", ours[i])
    print line
    line = peer " µs CPU per request:"
    for (i = 1; i <= n; i++) line = line sprintf(" %.2f", theirs[i])
    print line
    for (i = 2; i <= n; i++) {            # insertion sort: n is small
      r = ratio[i]
      for (j = i - 1; j >= 1 && ratio[j] > r; j--) ratio[j + 1] = ratio[j]
      ratio[j + 1] = r
    }
    line = "ratios, sorted:"
    for (i = 1; i <= n; i++) line = line sprintf(" %.3f", ratio[i])
    print line
    median = (n % 2) ? ratio[(n + 1) / 2] : (ratio[n / 2] + ratio[n / 2 + 1]) / 2
    printf "ours/%s CPU per request %.3f (median of %d rounds)\n", peer, median, n
  }'

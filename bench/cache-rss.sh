#!/usr/bin/env bash
# Does a cache hold its bound? step09-cache with --cache-size SIZE (default 64MiB) in
# front of an nginx whose every answer is a 16 KiB body good for an hour, under wrk
# asking for a new URL each request, so every request is a miss that is stored and the
# store must evict to stay within its size. Prints the cache's RSS every 5 s and how
# many requests were stored by then.
#
#   bench/cache-rss.sh [SIZE] [SECONDS]
#
# Needs: nginx-light wrk, and `cargo build --release -p step09-cache` first.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib.sh"
size=${1:-64MiB} seconds=${2:-60}
backend_port=19401 cache_port=19410
mkdir -p "$work/www" "$work/tmp"
head -c 16384 /dev/zero | tr '\0' 'x' >"$work/www/body"
# Run as root, nginx's worker is nobody: it must reach the file.
chmod a+x "$work" "$work/www" && chmod a+r "$work/www/body"
cat >"$work/backend.conf" <<CONF
worker_processes 1; daemon off; pid $work/backend.pid; error_log $work/backend.err;
events { worker_connections 4096; }
http {
  access_log off; client_body_temp_path $work/tmp; proxy_temp_path $work/tmp;
  fastcgi_temp_path $work/tmp; uwsgi_temp_path $work/tmp; scgi_temp_path $work/tmp;
  server { listen 127.0.0.1:$backend_port; root $work/www;
    location / { add_header Cache-Control "max-age=3600"; try_files /body =404; } }
}
CONF
nginx -c "$work/backend.conf" -p "$work" >/dev/null 2>&1 &
children+=($!)
"$here/../target/release/step09-cache" --listen "127.0.0.1:$cache_port" \
  --upstream "http://127.0.0.1:$backend_port" --cache-size "$size" >"$work/cache.log" 2>&1 &
cache=$!
children+=("$cache")
await_port "$backend_port"
await_port "$cache_port"
# Each wrk thread counts on its own; the thread id keeps their URLs apart.
cat >"$work/distinct.lua" <<'LUA'
local n = 0
local id = tostring(math.random(1, 1e9))
request = function()
  n = n + 1
  return wrk.format("GET", "/" .. id .. "/" .. n)
end
LUA
wrk -t2 -c32 -d"${seconds}s" -s "$work/distinct.lua" "http://127.0.0.1:$cache_port/" >"$work/wrk.txt" &
load=$!
echo "cache size $size; 16 KiB responses, every URL new"
for ((t = 5; t <= seconds; t += 5)); do
  sleep 5
  printf '%3d s  RSS %s\n' "$t" "$(awk '/VmRSS/{print $2, $3}' "/proc/$cache/status")"
done
wait "$load"
grep -E 'requests in|Requests/sec|Non-2xx' "$work/wrk.txt"

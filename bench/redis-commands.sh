#!/usr/bin/env bash
# How many commands Redis gets per request when a gateway keeps an app's
# quotas and the statistics there:
#   bench/redis-commands.sh [SECONDS] [CONNECTIONS]
# Starts a redis-server (port 19390), an nginx backend (19391) and the
# release gateway (19392) with an open_auth service and one app whose qps
# and qpd no load reaches (bench/gateway.sh --tenants --no-limit), loads it
# with wrk for SECONDS (10) with the app's token, and divides the commands
# the gateway sent (INFO commandstats: EVALSHA and SCRIPT LOAD for quota
# leases, HINCRBY and EXPIREAT for statistics — not the GET, INCRBY and
# EXPIRE the lease script runs inside Redis) by the requests wrk counted.
# Needs: redis-server, nginx-light, wrk, openssl.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
seconds=${1:-10} connections=${2:-64}
. "$here/lib.sh"
redis-server --port 19390 --save '' --appendonly no >"$work/redis.log" 2>&1 &
children+=($!)
mkdir -p "$work/tmp"
cat >"$work/backend.conf" <<CONF
worker_processes 1; daemon off; pid $work/nginx.pid; error_log $work/nginx.err;
events { worker_connections 8192; }
http {
  access_log off; keepalive_requests 10000000;
  client_body_temp_path $work/tmp; proxy_temp_path $work/tmp; fastcgi_temp_path $work/tmp;
  uwsgi_temp_path $work/tmp; scgi_temp_path $work/tmp;
  server { listen 127.0.0.1:19391; location / { return 200 "Hello, World!\n"; } }
}
CONF
nginx -c "$work/backend.conf" &
children+=($!)
"$here/gateway.sh" --engine fast --no-limit --tenants 127.0.0.1:19392 http://127.0.0.1:19391 redis://127.0.0.1:19390 >"$work/gateway.log" 2>&1 &
children+=($!)
await_port 19390; await_port 19391; await_port 19392
# What the gateway sent: all but INFO (ours) and what the lease script runs.
commands() {
  redis-cli -p 19390 info commandstats | tr -d '\r' | awk -F'[=,:]' '
    /^cmdstat_/ && $1 !~ /^cmdstat_(info|get|incrby|expire)$/ { n += $3 } END { print n + 0 }'
}
token=$("$here/token.sh" bench-secret bench)
before=$(commands)
wrk -t1 -c"$connections" -d"$seconds"s -H "Authorization: Bearer $token" http://127.0.0.1:19392/ >"$work/wrk" 2>&1
sleep 1.5 # the statistics of the last second are written once a second
after=$(commands)
requests=$(awk '/requests in/ { print $1 }' "$work/wrk")
if grep -qE 'Non-2xx|Socket errors' "$work/wrk"; then grep -E 'Non-2xx|Socket errors' "$work/wrk" >&2; fi
redis-cli -p 19390 info commandstats | tr -d '\r' | grep '^cmdstat_' | grep -v cmdstat_info
awk -v c=$((after - before)) -v r="$requests" 'BEGIN { printf "%d commands for %d requests: %.5f per request\n", c, r, c / r }'

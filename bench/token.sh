#!/usr/bin/env bash
# A token the gateway accepts, made without asking it (for load tools that
# cannot ask first): bench/token.sh SECRET APP [SECONDS]
# An HS256 JWT for APP, signed with [tokens]' SECRET, valid for SECONDS
# (a day by default) — what POST /oauth/tokens would answer.
set -euo pipefail
secret=$1 app=$2 ttl=${3:-86400}
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
now=$(date +%s)
header=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
claims=$(printf '{"sub":"%s","iss":"step11-gateway","iat":%d,"exp":%d}' "$app" "$now" $((now + ttl)) | b64url)
signature=$(printf '%s.%s' "$header" "$claims" | openssl dgst -sha256 -hmac "$secret" -binary | b64url)
printf '%s.%s.%s\n' "$header" "$claims" "$signature"

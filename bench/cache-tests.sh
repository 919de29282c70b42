#!/usr/bin/env bash
# The HTTP caching conformance suite (github.com/http-tests/cache-tests, the one
# cache-tests.fyi scores nginx, Varnish, Squid, Apache, Traffic Server, HAProxy, Caddy and
# Fastly with) against step09-cache, and the same count for each cache the suite has
# results for.
#
#   bench/cache-tests.sh [COMMIT]
#
# Clones the suite at COMMIT (default: the one bench/README.md's figures were taken
# with), runs its origin server on port 8000, step09-cache in front of it on 8009 (no
# retries: a retried request looks to the suite like a cache sending two), then its
# client, and prints, for step 09 and for every results/*.json the suite ships, how many
# tests of each kind pass: "required" (a cache must), "optimal" (a good cache does).
# Needs: git, Node 20 or later with npm (apt-get install -y nodejs npm), and
# `cargo build --release -p step09-cache` first. CACHE_TESTS_REPO names another clone
# of the suite to start from (a mirror, offline).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib.sh"
commit=${1:-b55b8bd}
binary="$here/../target/release/step09-cache"
[ -x "$binary" ] || { echo "build it first: cargo build --release -p step09-cache" >&2; exit 1; }

git clone -q "${CACHE_TESTS_REPO:-https://github.com/http-tests/cache-tests}" "$work/suite"
git -C "$work/suite" checkout -q "$commit"
(cd "$work/suite" && npm install --silent >/dev/null)
(cd "$work/suite" && exec npm run --silent server) >"$work/server.log" 2>&1 &
children+=($!)
await_port 8000
"$binary" --listen 127.0.0.1:8009 --upstream http://127.0.0.1:8000 --retries 0 >"$work/cache.log" 2>&1 &
children+=($!)
await_port 8009
(cd "$work/suite" && npm run --silent cli --base=http://127.0.0.1:8009) >"$work/step09-cache.json"

cat >"$work/score.mjs" <<'SCORE'
import index from './suite/tests/index.mjs'
import fs from 'fs'
const kinds = {}
for (const suite of index) for (const test of suite.tests) {
  if (!test.browser_only) kinds[test.id] = test.kind || 'required'
}
for (const file of process.argv.slice(2)) {
  const results = JSON.parse(fs.readFileSync(file))
  const passed = { required: 0, optimal: 0 }, total = { required: 0, optimal: 0 }
  for (const [id, kind] of Object.entries(kinds)) {
    if (kind === 'check') continue
    total[kind]++
    if (results[id] === true) passed[kind]++
  }
  const name = file.split('/').pop().replace('.json', '')
  console.log(`${name.padEnd(16)} required ${passed.required}/${total.required}  optimal ${passed.optimal}/${total.optimal}`)
}
SCORE
cd "$work"
node score.mjs step09-cache.json $(ls suite/results/*.json | grep -v -e chrome -e firefox -e safari)

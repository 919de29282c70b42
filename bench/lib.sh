# What the bench scripts share; sourced (`. "$here/lib.sh"`), not run.
#
# `work` is a fresh directory; every process a script starts goes into
# `children`; when the script ends, for whatever reason, they are killed and
# the directory removed.
work="$(mktemp -d "/tmp/$(basename "$0" .sh).XXXXXX")"
children=()
finish() {
  for pid in "${children[@]:-}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap finish EXIT

# Wait until something accepts on PORT (15 s at most).
await_port() {
  local tries=0
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    tries=$((tries + 1))
    [ "$tries" -lt 150 ] || { echo "nothing listens on port $1" >&2; return 1; }
    sleep 0.1
  done
}

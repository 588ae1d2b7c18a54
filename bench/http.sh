#!/usr/bin/env bash
# The HTTP server library comparison behind model/httpd.c
# (docs/http-server.md). Called by bench/run.sh; also runs alone:
#   bash bench/http.sh BUILD_DIR
# Each candidate library serves the same benchmark program through the same
# model/httpd.h interface (build/bench/ferry-httpbench-LIB): a POST of a
# ~200-byte V2 JSON body, answered with a small JSON either inline in the
# handler or from another thread after the handler returned (parked). wrk
# drives it on 127.0.0.1 at 1 and 32 connections; the table shows
# requests/s, p50 and p99 latency and the server's resident memory
# (VmRSS after the run, VmHWM its peak), with ratios against the chosen
# library (libmicrohttpd). Prints figures, asserts nothing.
# The machine is shared and loopback figures are noisy: every run is
# repeated ROUNDS times, the libraries interleaved, and the median shown.
# Knobs: FERRY_BENCH_HTTP_SECONDS (5) per run, FERRY_BENCH_HTTP_ROUNDS (3),
# FERRY_BENCH_HTTP_LIBS ("mhd civetweb h2o"; the first is the reference).
set -euo pipefail
BUILD=${1:-build}
BUILD=$(cd "$BUILD" && pwd)
SECS=${FERRY_BENCH_HTTP_SECONDS:-5}
ROUNDS=${FERRY_BENCH_HTTP_ROUNDS:-3}
LIBS=${FERRY_BENCH_HTTP_LIBS:-mhd civetweb h2o}
REF=${LIBS%% *}
# bench/CMakeLists.txt builds a candidate only when its library is installed.
have=
for l in $LIBS; do
  if [ -x "$BUILD/bench/ferry-httpbench-$l" ]; then have="$have $l"
  elif [ "$l" = "$REF" ]; then echo "bench/http.sh: $BUILD/bench/ferry-httpbench-$l is not built" >&2; exit 1
  else echo "bench/http.sh: skipping $l: $BUILD/bench/ferry-httpbench-$l is not built (its -dev package is missing)" >&2
  fi
done
LIBS=${have# }
command -v wrk >/dev/null || { echo "bench/http.sh: wrk is not installed (scripts/install-deps.sh)" >&2; exit 1; }

W=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-http.XXXXXX")
SRV=
cleanup() {
  if [ -n "$SRV" ]; then kill -TERM "$SRV" 2>/dev/null || true; wait "$SRV" 2>/dev/null || true; fi
  rm -rf "$W"
}
trap cleanup EXIT

cat > "$W/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"id": "42", "inputs": [{"name": "sepal_length", "shape": [1], "datatype": "FP64", "data": [5.1]}, {"name": "sepal_width", "shape": [1], "datatype": "FP64", "data": [3.5]}, {"name": "petal_length", "shape": [1], "datatype": "FP64", "data": [1.4]}]}'
LUA

# wrk prints latencies as 12.34us / 1.23ms / 1.00s: to microseconds.
to_us() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "us") f = 1; else if (u == "ms") f = 1000; else if (u == "s") f = 1000000; else f = 0
    printf "%.0f", n * f }'
}

start_server() { # LIB MODE: sets SRV and PORT; a server that does not come up is retried twice
  local bin="$BUILD/bench/ferry-httpbench-$1" try i
  [ -x "$bin" ] || { echo "bench/http.sh: $bin is not built" >&2; exit 1; }
  for try in 1 2 3; do
    # Emptied here, not by the child's redirection: that happens after the
    # fork, and the loop below could read the previous server's port.
    : > "$W/srv.out"
    "$bin" --mode "$2" >> "$W/srv.out" 2>"$W/srv.err" &
    SRV=$!
    for i in $(seq 1000); do grep -q '^port ' "$W/srv.out" && break; sleep 0.01; done
    PORT=$(awk '/^port / {print $2}' "$W/srv.out")
    # Connectable before wrk starts (wrk gives up on a refused connection).
    if [ -n "$PORT" ]; then
      for i in $(seq 500); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0; sleep 0.01; done
    fi
    echo "  note: $1 try $try: port '${PORT}', alive: $(kill -0 "$SRV" 2>/dev/null && echo yes || echo no)," \
      "listening: $(ss -Hltn "sport = :${PORT:-0}" 2>/dev/null | wc -l), err: $(head -c 200 "$W/srv.err")" >&2
    stop_server
  done
  echo "bench/http.sh: $1 did not come up" >&2; exit 1
}

stop_server() {
  kill -TERM "$SRV" 2>/dev/null || true
  wait "$SRV" 2>/dev/null || true
  SRV=
}

kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

# run LIB MODE CONNS: one line of results into $W/results
run() {
  local lib=$1 mode=$2 c=$3 t=1
  [ "$c" -gt 1 ] && t=2
  start_server "$lib" "$mode"
  local url="http://127.0.0.1:$PORT/v2/models/iris/infer"
  wrk -t1 -c"$c" -d1s -s "$W/post.lua" "$url" >/dev/null # warm-up
  wrk -t"$t" -c"$c" -d"${SECS}s" --latency -s "$W/post.lua" "$url" > "$W/wrk.out"
  local rss hwm rps p50 p99 errs
  rss=$(kb "$SRV" VmRSS); hwm=$(kb "$SRV" VmHWM)
  stop_server
  rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$W/wrk.out")
  p50=$(to_us "$(awk '$1 == "50%" {print $2}' "$W/wrk.out")")
  p99=$(to_us "$(awk '$1 == "99%" {print $2}' "$W/wrk.out")")
  errs=$(awk '/Non-2xx|Socket errors/ {print}' "$W/wrk.out" | tr '\n' ' ')
  [ -n "$errs" ] && echo "  note: $lib $mode c=$c: $errs" >&2
  echo "$lib $mode $c $rps $p50 $p99 $rss $hwm" >> "$W/results"
}

echo
echo "HTTP server libraries through model/httpd.h (wrk, ${SECS}s per run, median of $ROUNDS, 127.0.0.1, POST ~200-byte JSON)"
for r in $(seq "$ROUNDS"); do
  for mode in inline thread; do
    for c in 1 32; do
      for lib in $LIBS; do run "$lib" "$mode" "$c"; done
    done
  done
done
# One line per (library, answer, connections): the median of each figure.
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for mode in inline thread; do
  for c in 1 32; do
    for lib in $LIBS; do
      line="$lib $mode $c"
      for col in 4 5 6 7 8; do
        line="$line $(awk -v l="$lib" -v m="$mode" -v c="$c" -v k="$col" '$1 == l && $2 == m && $3 == c {print $k}' "$W/results" | median)"
      done
      echo "$line" >> "$W/medians"
    done
  done
done

printf '\n%-9s %-7s %5s %10s %9s %9s %9s %9s   %-24s\n' library answer conns "req/s" "p50 us" "p99 us" "RSS KiB" "peak KiB" "vs $REF: req/s p50 p99"
while read -r lib mode c rps p50 p99 rss hwm; do
  read -r _ _ _ rrps rp50 rp99 _ _ < <(awk -v l="$REF" -v m="$mode" -v c="$c" '$1 == l && $2 == m && $3 == c' "$W/medians")
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; }
  printf '%-9s %-7s %5s %10s %9s %9s %9s %9s   %5s %5s %5s\n' "$lib" "$mode" "$c" "$rps" "$p50" "$p99" "$rss" "$hwm" \
    "$(ratio "$rps" "$rrps")" "$(ratio "$p50" "$rp50")" "$(ratio "$p99" "$rp99")"
done < "$W/medians"
echo "(answer: inline = in the handler; thread = from another thread after the handler returned)"

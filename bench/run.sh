#!/usr/bin/env bash
# make bench: artifact transfer against baselines measured in the same run;
# then the agent (bench/agent.sh) and the registry under a non-reading client
# (bench/attack.sh).
#   pull of a 1 GiB single-file artifact (verified, materialized) vs b2sum
#   and cp of the same file; publish throughput; bytes sent on a re-publish.
# Each measurement runs ROUNDS times, interleaved, and the median is shown.
set -euo pipefail
BUILD=${1:-build}
BUILD=$(cd "$BUILD" && pwd)
SIZE_MIB=${FERRY_BENCH_MIB:-1024}
ROUNDS=${FERRY_BENCH_ROUNDS:-3}
FERRY="$BUILD/cli/ferry"
REGISTRY="$BUILD/registry/ferry-registry"

W=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench.XXXXXX")
REG_PID=
cleanup() { [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# run_timed FILE CMD...: append the wall time of CMD to FILE
run_timed() {
  local f=$1; shift
  local t0 t1
  t0=$(now); "$@" >/dev/null; t1=$(now)
  echo "$t1 - $t0" | bc -l >> "$f"
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "preparing a ${SIZE_MIB} MiB artifact in $W ..."
mkdir -p "$W/app"
printf 'name: bench\nversion: "1"\nkind: model\nruntime: model\n' > "$W/app/ferry.yaml"
head -c $((SIZE_MIB * 1048576)) /dev/urandom > "$W/app/model.bin"
"$FERRY" keygen bench --dir "$W" >/dev/null

"$REGISTRY" --data "$W/reg" --listen tcp://127.0.0.1:0 --http 127.0.0.1:0 --trust "$W/bench.pub" 2>"$W/reg.log" &
REG_PID=$!
for _ in $(seq 500); do grep -q 'listening on' "$W/reg.log" && break; sleep 0.01; done
URL=$(grep -o 'tcp://[0-9.]*:[0-9]*' "$W/reg.log" | head -n 1)

bytes=$((SIZE_MIB * 1048576))
t0=$(now)
"$FERRY" publish "$W/app" --registry "$URL" --key "$W/bench.key" >/dev/null
t1=$(now)
publish_s=$(echo "$t1 - $t0" | bc -l)
t0=$(now)
republish=$("$FERRY" publish "$W/app" --registry "$URL" --key "$W/bench.key" -v 2>&1 >/dev/null)
t1=$(now)
republish_s=$(echo "$t1 - $t0" | bc -l)
republish_bytes=$(echo "$republish" | grep -o '([0-9]* bytes)' | tr -dc 0-9)

for r in $(seq "$ROUNDS"); do
  rm -rf "$W/out" "$W/copy.bin"
  run_timed "$W/t.pull" "$FERRY" pull bench@1 --out "$W/out" --registry "$URL" --trust "$W/bench.pub"
  run_timed "$W/t.b2sum" b2sum "$W/app/model.bin"
  run_timed "$W/t.cp" cp "$W/app/model.bin" "$W/copy.bin"
  cmp -s "$W/out/model.bin" "$W/app/model.bin" || { echo "pulled bytes differ" >&2; exit 1; }
done
pull=$(median < "$W/t.pull"); b2=$(median < "$W/t.b2sum"); cpt=$(median < "$W/t.cp")
mibps() { echo "scale=0; $SIZE_MIB / $1" | bc -l; }

echo
printf '%-44s %10s %12s %10s\n' "measurement (median of $ROUNDS)" "seconds" "MiB/s" "ratio"
printf '%-44s %10.3f %12s %10s\n' "b2sum of the file (baseline: hash floor)" "$b2" "$(mibps "$b2")" "1.00"
printf '%-44s %10.3f %12s %10s\n' "cp of the file (baseline: copy)" "$cpt" "$(mibps "$cpt")" "1.00"
printf '%-44s %10.3f %12s %10s\n' "ferry pull, verified + materialized" "$pull" "$(mibps "$pull")" ""
printf '%-44s %10s %12s %10.2f\n' "  pull throughput / b2sum throughput" "" "" "$(echo "$b2 / $pull" | bc -l)"
printf '%-44s %10s %12s %10.2f\n' "  pull throughput / cp throughput" "" "" "$(echo "$cpt / $pull" | bc -l)"
printf '%-44s %10.3f %12s %10.2f\n' "ferry publish (hash, sign, upload)" "$publish_s" "$(mibps "$publish_s")" "$(echo "$b2 / $publish_s" | bc -l)"
printf '%-44s %10.3f %12s %10s\n' "ferry re-publish, nothing changed" "$republish_s" "-" ""
printf '%-44s %10s %12s %10s\n' "  blob bytes uploaded on re-publish" "$republish_bytes" "" ""
echo
echo "targets: pull >= 0.80 x b2sum throughput; re-publish uploads 0 blob bytes"

# The model server's metrics: observe and render against an atomic add and
# a plain snprintf, in the same run (bench/mmetrics.c).
"$BUILD/bench/ferry-bench-mmetrics"

# The agent: memory, deploy latency, a fleet of 100 agents (bench/agent.sh).
bash "$(dirname "${BASH_SOURCE[0]}")/agent.sh" "$BUILD"

# The registry while a client that never reads is attached (bench/attack.sh).
bash "$(dirname "${BASH_SOURCE[0]}")/attack.sh" "$BUILD"
# ferry logs round trip against a bare CLI round trip (bench/logs.sh).
bash "$(dirname "${BASH_SOURCE[0]}")/logs.sh" "$BUILD"
# The registry under a flood of signed polls (bench/pollflood.sh).
bash "$(dirname "${BASH_SOURCE[0]}")/pollflood.sh" "$BUILD"
# The model server's HTTP library, against the other candidates (bench/http.sh).
bash "$(dirname "${BASH_SOURCE[0]}")/http.sh" "$BUILD"
# Model serving: ferry-model-server against gunicorn + Flask (bench/model.sh).
bash "$(dirname "${BASH_SOURCE[0]}")/model.sh" "$BUILD"
# Governance: envelope verification and ferry audit --verify (bench/gov.sh).
bash "$(dirname "${BASH_SOURCE[0]}")/gov.sh" "$BUILD"
# Governance: the agent's policy evaluation per deploy (bench/policy.sh).
bash "$(dirname "${BASH_SOURCE[0]}")/policy.sh" "$BUILD"
# Notebooks: ferry kernel start vs a local kernel, a scheduled run vs
# nbclient directly (bench/notebook.sh).
bash "$(dirname "${BASH_SOURCE[0]}")/notebook.sh" "$BUILD"
# Containers: deploy to running and container start against podman (bench/oci.sh).
bash "$(dirname "${BASH_SOURCE[0]}")/oci.sh" "$BUILD"
# The registry's HTTP side with 100 agents x 10 workloads: /metrics and
# /api/v1/workloads under wrk against /api/v1 (bench/dashboard.sh).
bash "$(dirname "${BASH_SOURCE[0]}")/dashboard.sh" "$BUILD"

#!/usr/bin/env bash
# Containers (runtime oci) against podman, in the same run (docs/benchmarks.md,
# "Containers"). Called by bench/run.sh; also runs alone (as root, with
# runc, podman, umoci and busybox-static installed):
#   bash bench/oci.sh BUILD_DIR
# 1. Deploy to running: `ferry deploy` of a busybox image until the
#    container's first line is in its log (the agent materializes the tree
#    from its blob cache, checks and unpacks the layers, writes the runtime
#    spec and starts runc), then undeploy; median of ROUNDS.
# 2. Container start alone, both warm: `runc run` of the bundle the oci
#    plugin wrote (its runtime spec, the process replaced by /bin/true, the
#    rootfs already unpacked) against `podman run --rm` of the same image
#    (loaded once, offline, through the oci: transport) running /bin/true;
#    interleaved, median of ROUNDS, and the ratio (target: ferry within
#    1.5x of podman).
# 3. Layer dedupe: bytes uploaded when a second image on the same base is
#    published, next to the base layer's size.
# Prints figures, asserts nothing. Knobs: FERRY_BENCH_OCI_ROUNDS (10).
set -euo pipefail
BUILD=${1:-build}
BUILD=$(cd "$BUILD" && pwd)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROUNDS=${FERRY_BENCH_OCI_ROUNDS:-10}
FERRY="$BUILD/cli/ferry"
REGISTRY="$BUILD/registry/ferry-registry"
AGENT="$BUILD/agent/ferry-agent"
[ "$(id -u)" = 0 ] || { echo "bench/oci.sh: needs root (runc, podman); skipped" >&2; exit 0; }
for t in runc podman umoci; do
  command -v "$t" >/dev/null || { echo "bench/oci.sh: $t is not installed (scripts/install-deps.sh)" >&2; exit 1; }
done
source "$HERE/../tests/integration/ociimage.sh"

# Lowercase: podman names an image pulled through oci: after its path.
W="${TMPDIR:-/tmp}/ferry-bench-oci-$$-$RANDOM"
mkdir -m 700 "$W"
RR="$W/runc-bench" # the runc state of the start-alone runs
PIDS=()
IMAGE_REF=
cleanup() {
  set +e
  for id in $(runc --root "$W/state/oci" list -q 2>/dev/null) $(runc --root "$RR" list -q 2>/dev/null); do
    runc --root "$W/state/oci" delete --force "$id" >/dev/null 2>&1
    runc --root "$RR" delete --force "$id" >/dev/null 2>&1
  done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  [ -n "$IMAGE_REF" ] && podman rmi -f "$IMAGE_REF" >/dev/null 2>&1
  rm -rf "$W"
}
trap cleanup EXIT
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ms() { echo "$1 * 1000" | bc -l | xargs printf '%.0f'; }
wait_for() { # wait_for SECONDS CMD...: poll every 5 ms
  local end=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do [ "$(date +%s)" -le "$end" ] || return 1; sleep 0.005; done
}

echo "== containers: ferry (runc) vs podman $(podman --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1 {print $3}')"
oci_busybox_layout "$W/img" /bin/sh -c 'trap "exit 0" TERM; echo ready; sleep 300 & wait'
"$FERRY" keygen bench --dir "$W" >/dev/null
mkdir -p "$W/enroll"
"$FERRY" keygen enroll --dir "$W/enroll" >/dev/null
"$FERRY" hosts token --key "$W/enroll/enroll.key" --ttl 1h -o "$W/join.token" 2>/dev/null
"$REGISTRY" --data "$W/reg" --listen tcp://127.0.0.1:0 --trust "$W/bench.pub" --trust "$W/enroll/enroll.pub" 2>"$W/reg.log" &
PIDS+=($!)
wait_for 10 grep -q 'listening on' "$W/reg.log"
URL=$(grep -o 'tcp://[0-9.]*:[0-9]*' "$W/reg.log" | head -n 1)
export FERRY_REGISTRY="$URL" FERRY_KEY="$W/bench.key"
"$AGENT" --registry "$URL" --state "$W/state" --name bench --label role=bench --trust "$W/bench.pub" \
  --plugins "$BUILD/plugins" --join-token "$W/join.token" 2>"$W/agent.log" &
PIDS+=($!)
wait_for 10 grep -q 'host bench ' "$W/agent.log"

mkdir -p "$W/app"
printf 'name: bb\nversion: "1"\nkind: app\nruntime: oci\noci:\n  image: ../img\nhealth: {settle: 100ms}\n' > "$W/app/ferry.yaml"
"$FERRY" publish "$W/app" >/dev/null

# 1. deploy to running
LOG="$W/state/workloads/bb/1/.ferry/stdout.log"
gone() { [ -z "$(runc --root "$W/state/oci" list -q)" ] && [ ! -e "$W/state/workloads/bb/1" ]; }
for r in $(seq "$ROUNDS"); do
  t0=$(now)
  "$FERRY" deploy bb@1 --to role=bench >/dev/null
  wait_for 30 grep -q ready "$LOG" || { echo "bb did not start: $(tail -3 "$W/agent.log")" >&2; exit 1; }
  t1=$(now)
  echo "$t1 - $t0" | bc -l >> "$W/t.deploy"
  if [ "$r" -lt "$ROUNDS" ]; then
    "$FERRY" undeploy bb --to role=bench >/dev/null
    wait_for 30 gone || { echo "bb did not go: $(runc --root "$W/state/oci" list)" >&2; exit 1; }
  fi
done
unpack_ms=$(grep -o 'unpacked 1 layer in [0-9]* ms' "$W/agent.log" | awk '{print $5}' | median)
echo "deploy to running (ferry deploy .. first line of the container), median of $ROUNDS: $(ms "$(median < "$W/t.deploy")") ms (of which unpacking the layer: ${unpack_ms} ms)"

# 2. container start alone, warm
ID=$(runc --root "$W/state/oci" list -q | head -n1)
BUNDLE=$(runc --root "$W/state/oci" state "$ID" | python3 -c 'import json,sys; print(json.load(sys.stdin)["bundle"])')
mkdir -p "$W/bundle"
python3 - "$BUNDLE/config.json" "$W/bundle/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["args"] = ["/bin/true"]
json.dump(c, open(sys.argv[2], "w"))
PY
IMAGE_REF=$(podman pull -q "oci:$W/img:latest")
# This host's hard limits are below podman's defaults for nofile and nproc.
PODMAN_RUN=(podman run --rm --network host --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 "$IMAGE_REF" /bin/true)
"${PODMAN_RUN[@]}" || { echo "podman cannot run the image here" >&2; exit 1; }
runc --root "$RR" run --bundle "$W/bundle" warm >/dev/null
for r in $(seq "$ROUNDS"); do
  t0=$(now); runc --root "$RR" run --bundle "$W/bundle" "b$r" >/dev/null; t1=$(now)
  echo "$t1 - $t0" | bc -l >> "$W/t.ferry"
  t0=$(now); "${PODMAN_RUN[@]}" >/dev/null; t1=$(now)
  echo "$t1 - $t0" | bc -l >> "$W/t.podman"
done
f=$(median < "$W/t.ferry"); p=$(median < "$W/t.podman")
ratio=$(echo "$f / $p" | bc -l | xargs printf '%.2f')
echo "container start alone (create, start, /bin/true, delete), median of $ROUNDS: ferry's bundle under runc $(ms "$f") ms, podman run --rm $(ms "$p") ms: ratio $ratio (target <= 1.5)"

# 3. layer dedupe
printf 'second image\n' > "$W/extra.txt"
oci_add_layer "$W/img" "$W/img2" "$W/extra.txt" /extra.txt
mkdir -p "$W/app2"
printf 'name: bb2\nversion: "1"\nkind: app\nruntime: oci\noci:\n  image: ../img2\n' > "$W/app2/ferry.yaml"
base=$(stat -c %s "$(oci_blob_path "$W/img" layer 0)")
summary=$("$FERRY" publish -v "$W/app2" 2>&1 >/dev/null | grep 'blobs uploaded' || true)
echo "layer dedupe: second image on the same base: ${summary#ferry: } (base layer: $base bytes, not sent again)"

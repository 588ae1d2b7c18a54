#!/usr/bin/env bash
# Publishing container images (docs/containers.md): what the second image on
# a shared base costs. Builds offline (tests/integration/ociimage.sh) a
# busybox base image plus a base layer of BASE_MIB random bytes, and a
# second image with one more layer of NEW_KIB random bytes; publishes both
# as layout directories, then the second again as a layout tar and as a
# docker save archive (new artifacts, same layers). Reports blob bytes
# uploaded (the -v summary and the registry's blob_bytes_received) and the
# median publish time over ROUNDS fresh registries.
#   bash bench/oci_publish.sh [BUILD]
set -euo pipefail
BUILD=${1:-build}
BUILD=$(cd "$BUILD" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
BASE_MIB=${FERRY_BENCH_OCI_BASE_MIB:-64}
NEW_KIB=${FERRY_BENCH_OCI_NEW_KIB:-256}
ROUNDS=${FERRY_BENCH_ROUNDS:-3}
FERRY="$BUILD/cli/ferry"
REGISTRY="$BUILD/registry/ferry-registry"
source "$SRC/tests/integration/ociimage.sh"

W=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-oci.XXXXXX")
REG_PID=
cleanup() { [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "machine: $(nproc) cores, $(uname -r)"
echo "building images: busybox + ${BASE_MIB} MiB base layer, second image + ${NEW_KIB} KiB layer ..."
oci_busybox_layout "$W/base" /bin/sh
head -c $((BASE_MIB * 1048576)) /dev/urandom > "$W/base.bin"
umoci insert --image "$W/base:latest" "$W/base.bin" /data/base.bin >/dev/null
umoci gc --layout "$W/base"
head -c $((NEW_KIB * 1024)) /dev/urandom > "$W/new.bin"
oci_add_layer "$W/base" "$W/two" "$W/new.bin" /data/new.bin
image_bytes() { du -sb --apparent-size "$1/blobs" | cut -f1; }
new_bytes=$(( $(stat -c %s "$(oci_blob_path "$W/two" layer 2)") + $(stat -c %s "$(oci_blob_path "$W/two" config)") ))
"$FERRY" keygen bench --dir "$W" >/dev/null

app() { # app DIR NAME IMAGE
  mkdir -p "$1"
  printf 'name: %s\nversion: "1"\nkind: app\nruntime: oci\noci:\n  image: %s\n' "$2" "$3" > "$1/ferry.yaml"
}
app "$W/a1" base "$W/base"
app "$W/a2" two "$W/two"
app "$W/a3" twotar image.tar
oci_layout_tar "$W/two" "$W/a3/image.tar"
app "$W/a4" twodocker image.tar
oci_docker_save "$W/two" "$W/a4/image.tar"

start_registry() {
  rm -rf "$W/reg"
  "$REGISTRY" --data "$W/reg" --listen tcp://127.0.0.1:0 --trust "$W/bench.pub" 2>"$W/reg.log" &
  REG_PID=$!
  for _ in $(seq 500); do grep -q 'listening on' "$W/reg.log" && break; sleep 0.01; done
  URL=$(grep -o 'tcp://[0-9.]*:[0-9]*' "$W/reg.log" | head -n 1)
}
stop_registry() { kill "$REG_PID"; wait "$REG_PID" 2>/dev/null || true; REG_PID=; }
received() { "$FERRY" stats --registry "$URL" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["blob_bytes_received"])'; }
publish() { # publish DIR TIMES-FILE: prints the bytes the registry received
  local before t0 t1
  before=$(received)
  t0=$(now)
  "$FERRY" publish "$1" --registry "$URL" --key "$W/bench.key" >/dev/null
  t1=$(now)
  echo "$t1 - $t0" | bc -l >> "$2"
  echo $(( $(received) - before ))
}

for r in $(seq "$ROUNDS"); do
  start_registry
  b1=$(publish "$W/a1" "$W/t.a1")
  b2=$(publish "$W/a2" "$W/t.a2")
  b3=$(publish "$W/a3" "$W/t.a3")
  b4=$(publish "$W/a4" "$W/t.a4")
  stop_registry
done

printf '%-52s %14s %10s\n' "publish" "bytes uploaded" "median s"
printf '%-52s %14s %10.3f\n' "base image (layout dir, $(image_bytes "$W/base") bytes of blobs)" "$b1" "$(median < "$W/t.a1")"
printf '%-52s %14s %10.3f\n' "second image, same base (layout dir)" "$b2" "$(median < "$W/t.a2")"
printf '%-52s %14s %10.3f\n' "second image as a layout tar (another artifact)" "$b3" "$(median < "$W/t.a3")"
printf '%-52s %14s %10.3f\n' "second image as docker save (uncompressed layers)" "$b4" "$(median < "$W/t.a4")"
echo "second image: new layer + config = $new_bytes bytes; uploaded $b2 ($(echo "scale=4; $b2 * 100 / $(image_bytes "$W/two")" | bc -l)% of its $(image_bytes "$W/two") bytes of blobs)"
[ "$b2" -eq "$new_bytes" ] || { echo "the second image uploaded more than its new layer and config" >&2; exit 1; }
[ "$b3" -eq 0 ] || { echo "the same layers as a tar were uploaded again" >&2; exit 1; }

#!/usr/bin/env bash
# ferry import checks the signed manifest before it reads a blob, extracts
# only the blobs that manifest names (and the registry lacks), and never
# writes more than the manifest's sizes: a gzip bomb is refused before it is
# written. Staging goes to TMPDIR, here a small tmpfs, so anything written
# beyond the signed sizes would end in "No space left on device" instead of
# the refusal. FERRY_BUNDLE_MAX_* can only lower the built-in caps.
source "$(dirname "$0")/lib.sh"

MOUNTS=()
unmount_all() {
  local rc=$? m
  for m in "${MOUNTS[@]:-}"; do
    [ -n "$m" ] && { umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; }
  done
  # cleanup reads the exit status from $?; set -e must not end the trap
  # when it is a failure's.
  set +e
  (exit $rc)
  cleanup
}
trap unmount_all EXIT
small_fs() { # small_fs DIR SIZE
  mkdir -p "$1"
  mount -t tmpfs -o "size=$2" tmpfs "$1" || fail "cannot mount a tmpfs on $1 (the tests run as root)"
  MOUNTS+=("$1")
}

make_key alice
make_key mallory
start_registry src "$T/src" --trust "$T/alice.pub"
src_url=$REG_URL
start_registry dst "$T/dst" --trust "$T/alice.pub"
dst_url=$REG_URL

make_app "$T/app" shop 1.0
head -c 200000 /dev/urandom > "$T/app/data.bin"
pub=$("$FERRY" publish "$T/app" --registry "$src_url" --key "$T/alice.key")
"$FERRY" export shop@1.0 -o "$T/shop.tar" --registry "$src_url" >/dev/null
tar -tf "$T/shop.tar" > "$T/members" # (no pipe into head: tar's SIGPIPE would fail under pipefail)
first=$(sed -n '1,2p' "$T/members" | tr '\n' ' ')
[ "$first" = "manifest.pb signatures.pb " ] || fail "export does not begin with the signed part: $first"
pass "an exported bundle begins with manifest.pb, then signatures.pb"

python3 "$FERRY_SRC/tests/fixtures/make_hostile_bundles.py" "$T/hostile" "$T/shop.tar" >/dev/null
small_fs "$T/stage" 1m
imp() { env TMPDIR="$T/stage" "$@" "$FERRY" import "${IMPORT_ARGS[@]}"; }
nothing_staged() { [ -z "$(ls -A "$T/stage")" ] || fail "staging left behind: $(ls -A "$T/stage")"; }
not_published() { [ -z "$("$FERRY" versions shop --registry "$dst_url" 2>/dev/null)" ] || fail "$1 became visible"; }

# --- gzip bombs: 64 MiB of zeros in a few hundred KiB
size=$(stat -c %s "$T/hostile/bomb.tar.gz")
[ "$size" -lt 1000000 ] || fail "bomb.tar.gz is $size bytes: not a bomb"
IMPORT_ARGS=("$T/hostile/bomb.tar.gz" --registry "$dst_url")
expect_fail "bomb\.tar\.gz: entry 'blobs/[0-9a-f]{64}': 67108864 bytes, but the signed manifest says [0-9]+$" imp
nothing_staged; not_published bomb.tar.gz
IMPORT_ARGS=("$T/hostile/unnamed_bomb.tar.gz" --registry "$dst_url")
expect_fail "unnamed_bomb\.tar\.gz: entry 'blobs/[0-9a-f]{64}': the bundle carries more than its manifest accounts for" imp
nothing_staged; not_published unnamed_bomb.tar.gz
pass "a gzip bomb is refused before a byte past its signed size is written (staging on a 1 MiB tmpfs)"

# --- the signed part must come first
IMPORT_ARGS=("$T/hostile/blobs_first.tar" --registry "$dst_url")
expect_fail "blobs_first\.tar: entry 'blobs': out of order: a bundle begins with manifest\.pb, then signatures\.pb" imp
IMPORT_ARGS=("$T/hostile/signatures_first.tar" --registry "$dst_url")
expect_fail "signatures_first\.tar: entry 'signatures\.pb': out of order" imp
nothing_staged; not_published "an out-of-order bundle"
pass "a bundle that does not begin with manifest.pb and signatures.pb is refused"

# --- signed by a key we were told to trust? checked before any blob
IMPORT_ARGS=("$T/shop.tar" --registry "$dst_url" --trust "$T/mallory.pub")
expect_fail "shop\.tar: .*(not signed by a trusted key|untrusted)" imp
nothing_staged; not_published "a bundle refused by --trust"
pass "a bundle not signed by a --trust key is refused before extraction"

# --- a bundle carrying more blobs than its manifest names: only those are
# extracted (3 MB of extra blob would not fit in the 1 MiB staging)
mkdir "$T/unpack" && tar -xf "$T/shop.tar" -C "$T/unpack"
head -c 3000000 /dev/urandom > "$T/extra"
extra=$(b2sum -l 256 "$T/extra" | cut -d' ' -f1)
mv "$T/extra" "$T/unpack/blobs/$extra"
(cd "$T/unpack" && tar --format=ustar -cf "$T/extra.tar" manifest.pb signatures.pb blobs)
IMPORT_ARGS=("$T/extra.tar" --registry "$dst_url")
out=$(imp) || fail "import of a bundle with an extra blob failed"
[ "$out" = "$pub" ] || fail "import printed '$out', expected '$pub'"
nothing_staged
[ ! -e "$T/dst/blobs/$extra" ] && [ -z "$(find "$T/dst" -name "$extra")" ] || fail "the unnamed blob reached the registry"
"$FERRY" pull shop@1.0 --out "$T/pulled" --registry "$dst_url" --trust "$T/alice.pub" >/dev/null
[ "$(tree_listing "$T/app")" = "$(tree_listing "$T/pulled")" ] || fail "imported tree differs"
pass "only the blobs the manifest names are extracted and uploaded"

# --- importing what the registry already has extracts nothing at all
small_fs "$T/tiny" 64k
out=$(env TMPDIR="$T/tiny" "$FERRY" import "$T/shop.tar" --registry "$dst_url") \
  || fail "re-import into a 64 KiB staging failed"
[ "$out" = "$pub" ] || fail "re-import printed '$out'"
[ -z "$(ls -A "$T/tiny")" ] || fail "re-import left staging"
pass "a re-import extracts none of the 200 KB the registry already holds"

# --- and one that needs the 200 KB, into that 64 KiB staging: the reason
start_registry fourth "$T/fourth" --trust "$T/alice.pub"
expect_fail "^ferry: import .*shop\.tar: entry 'blobs/[0-9a-f]{64}': writing $T/tiny/ferry-import\.[A-Za-z0-9]+/blobs/[0-9a-f]{64}: No space left on device$" \
  env TMPDIR="$T/tiny" "$FERRY" import "$T/shop.tar" --registry "$REG_URL"
[ -z "$(ls -A "$T/tiny")" ] || fail "a failed import left staging"
[ -z "$("$FERRY" versions shop --registry "$REG_URL" 2>/dev/null)" ] || fail "a failed import became visible"
pass "an import whose staging runs out of space names the file and the reason"

# --- FERRY_BUNDLE_MAX_*: lower only
IMPORT_ARGS=("$T/shop.tar" --registry "$dst_url")
expect_fail "^ferry: import .*shop\.tar: FERRY_BUNDLE_MAX_BYTES 999999999999999: above the built-in cap of 68719476736; it can only lower it$" \
  imp FERRY_BUNDLE_MAX_BYTES=999999999999999
expect_fail "FERRY_BUNDLE_MAX_ENTRIES 100001: above the built-in cap of 100000; it can only lower it" \
  imp FERRY_BUNDLE_MAX_ENTRIES=100001
expect_fail "FERRY_BUNDLE_MAX_ENTRIES 'lots': not a whole number" imp FERRY_BUNDLE_MAX_ENTRIES=lots
expect_fail "FERRY_BUNDLE_MAX_BYTES '0': must be from 1" imp FERRY_BUNDLE_MAX_BYTES=0
# Lowering works: 100000 bytes is less than data.bin (into a registry
# that lacks it).
start_registry third "$T/third" --trust "$T/alice.pub"
IMPORT_ARGS=("$T/shop.tar" --registry "$REG_URL")
expect_fail "shop\.tar: entry 'blobs/[0-9a-f]{64}': 200000 bytes, over the 100000 byte entry limit" \
  imp FERRY_BUNDLE_MAX_BYTES=100000
nothing_staged
pass "FERRY_BUNDLE_MAX_* above the built-in caps are refused; below, they apply"

"$FERRY_POKE" "$dst_url" ping >/dev/null || fail "registry stopped answering"

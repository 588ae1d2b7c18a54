#!/usr/bin/env bash
# kill -9 of the registry in the middle of a large upload, and of a client in
# the middle of a large pull: nothing partial is ever visible under a real
# digest, and the next attempt continues where the last one stopped.
source "$(dirname "$0")/lib.sh"

make_key alice
start_registry reg "$T/reg" --trust "$T/alice.pub"
url=$REG_URL

make_app "$T/big" big 1.0
size=$((384 * 1024 * 1024))
head -c "$size" /dev/urandom > "$T/big/model.bin"
big_digest=$(b2sum -l 256 "$T/big/model.bin" | cut -d' ' -f1)

partial_has_bytes() {
  local f="$T/reg/tmp/$big_digest.part"
  [ -f "$f" ] && [ "$(stat -c %s "$f")" -gt 0 ]
}

# --- kill -9 the registry mid-upload
"$FERRY" publish "$T/big" --registry "$url" --key "$T/alice.key" >"$T/pub1.out" 2>"$T/pub1.err" &
pub_pid=$!
PIDS+=("$pub_pid")
wait_until 60 partial_has_bytes || fail "upload never started"
kill -9 "$REG_PID"
wait "$REG_PID" 2>/dev/null || true
rc=0; wait "$pub_pid" || rc=$?
[ $rc -ne 0 ] || fail "publish succeeded although the registry died"
grep -q "registry $url" "$T/pub1.err" || fail "publish error does not name the registry: $(cat "$T/pub1.err")"
partial=$(stat -c %s "$T/reg/tmp/$big_digest.part")
[ "$partial" -lt "$size" ] || fail "upload was not interrupted (partial=$partial)"
pass "publish fails cleanly when the registry is killed (partial $partial of $size bytes)"

# Nothing under blobs/ is partial: every stored blob hashes to its name.
check_blobs_honest() {
  local f
  while IFS= read -r f; do
    [ "$(b2sum -l 256 "$f" | cut -d' ' -f1)" = "$(basename "$f")" ] || fail "blob $f does not match its name"
  done < <(find "$T/reg/blobs" -type f)
  [ ! -e "$T/reg/blobs/${big_digest:0:2}/$big_digest" ] || [ "$1" = complete ] || fail "partial blob visible"
}
check_blobs_honest partial
pass "no partial blob is visible after the crash"

# --- restart on the same port; publishing again resumes and completes
start_registry_at reg2 "$T/reg" "$url" --trust "$T/alice.pub"
[ -z "$("$FERRY" versions big --registry "$url" 2>/dev/null)" ] || fail "half a publish is visible"
"$FERRY" publish "$T/big" --registry "$url" --key "$T/alice.key" -v >"$T/pub2.out" 2>"$T/pub2.err"
grep -q '^big@1.0 ' "$T/pub2.out" || fail "second publish: $(cat "$T/pub2.err")"
sent=$(grep -o '([0-9]* bytes)' "$T/pub2.err" | tr -dc 0-9)
[ "$sent" -le $((size - partial + 1024)) ] || fail "resume re-sent $sent bytes; $partial were already there"
check_blobs_honest complete
[ -f "$T/reg/blobs/${big_digest:0:2}/$big_digest" ] || fail "blob missing after publish"
pass "publish resumed from byte $partial and completed ($sent bytes sent)"

# --- kill -9 a pull mid-transfer; the next pull resumes and verifies
staging_has_bytes() {
  local f
  f=$(find "$T" -maxdepth 2 -path "*/.out.ferry-partial-*/model.bin" 2>/dev/null | head -n 1)
  [ -n "$f" ] && [ "$(stat -c %s "$f")" -gt $((8 * 1024 * 1024)) ]
}
"$FERRY" pull big@1.0 --out "$T/out" --registry "$url" --trust "$T/alice.pub" >/dev/null 2>&1 &
pull_pid=$!
PIDS+=("$pull_pid")
wait_until 60 staging_has_bytes || fail "pull never started writing"
kill -9 "$pull_pid"
wait "$pull_pid" 2>/dev/null || true
[ ! -e "$T/out" ] || fail "destination visible after an interrupted pull"
served_before=$(stat_counter chunks_served)
"$FERRY" pull big@1.0 --out "$T/out" --registry "$url" --trust "$T/alice.pub" >/dev/null
served=$(( $(stat_counter chunks_served) - served_before ))
[ "$(b2sum -l 256 "$T/out/model.bin" | cut -d' ' -f1)" = "$big_digest" ] || fail "resumed pull content"
[ "$served" -lt $((size / 1048576)) ] || fail "resumed pull fetched $served chunks: it started over"
[ -z "$(find "$T" -maxdepth 1 -name '.out.ferry-partial-*')" ] || fail "staging left behind"
pass "an interrupted pull resumes ($served chunks fetched on resume)"

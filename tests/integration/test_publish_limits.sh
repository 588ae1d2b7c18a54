#!/usr/bin/env bash
# A publish's claimed blob sizes are bounded at offer, before any byte is
# accepted: by the registry's --max-blob-size and by its free disk space.
source "$(dirname "$0")/lib.sh"

make_key alice
make_key mallory
expect_fail "ferry-registry: --max-blob-size '5abc': " \
  "$FERRY_REGISTRY_BIN" --data "$T/bad" --max-blob-size 5abc
expect_fail "ferry-registry: --max-blob-size '0': " \
  "$FERRY_REGISTRY_BIN" --data "$T/bad" --max-blob-size 0
expect_fail "ferry-registry: --max-blob-size '1P': " \
  "$FERRY_REGISTRY_BIN" --data "$T/bad" --max-blob-size 1P
expect_fail "ferry-registry: --max-blob-size '99999999999999999999': " \
  "$FERRY_REGISTRY_BIN" --data "$T/bad" --max-blob-size 99999999999999999999
rc=0; "$FERRY_REGISTRY_BIN" --data "$T/bad" --max-blob-size 5abc 2>/dev/null || rc=$?
[ $rc = 2 ] || fail "a bad --max-blob-size exits $rc, not 2 (usage)"
pass "--max-blob-size is parsed strictly (usage error, exit 2)"

# --- over --max-blob-size: refused at offer, with the file and the limit
start_registry small "$T/small" --trust "$T/alice.pub" --max-blob-size 1K
make_app "$T/app" app 1.0
head -c 2048 /dev/urandom > "$T/app/big.bin"
expect_fail "publish refused: app@1.0: big.bin is 2048 bytes, over this registry's --max-blob-size of 1024" \
  "$FERRY" publish "$T/app" --registry "$REG_URL" --key "$T/alice.key"
[ "$(stat_counter blob_bytes_received)" = 0 ] || fail "bytes were accepted before the refusal"
[ "$(stat_counter publishes_refused)" = 1 ] || fail "the refusal is not counted"
rm "$T/app/big.bin"
"$FERRY" publish "$T/app" --registry "$REG_URL" --key "$T/alice.key" | grep -q '^app@1.0 ' \
  || fail "a publish within the limit"
pass "a blob over --max-blob-size is refused at offer; smaller ones publish"

# --- the default limit (64 GiB) and the free space bound a forged claim
start_registry dflt "$T/dflt" --trust "$T/alice.pub"
make_app "$T/claim" claim 1.0
expect_fail "publish refused: claim@1.0: run.sh is 1125899906842624 bytes, over this registry's --max-blob-size of 68719476736" \
  "$FERRY_FORGE" "$REG_URL" offer "$T/claim" "$T/alice.key" 1125899906842624
start_registry roomy "$T/roomy" --trust "$T/alice.pub" --max-blob-size 4096T
expect_fail "publish refused: claim@1.0 needs [0-9]+ bytes of storage, the registry has [0-9]+ free" \
  "$FERRY_FORGE" "$REG_URL" offer "$T/claim" "$T/alice.key" 1125899906842624
expect_fail "untrusted key" "$FERRY_FORGE" "$REG_URL" offer "$T/claim" "$T/mallory.key" 100
"$FERRY" versions claim --registry "$REG_URL" >/dev/null 2>&1 || fail "registry stopped serving"
pass "claims over the default limit or the free disk space are refused at offer"

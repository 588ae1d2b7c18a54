#!/usr/bin/env bash
# export -> import through an air gap, and hostile bundles given to import.
source "$(dirname "$0")/lib.sh"

make_key alice
make_key mallory
start_registry src "$T/src" --trust "$T/alice.pub"
src_url=$REG_URL
start_registry dst "$T/dst" --trust "$T/alice.pub"
dst_url=$REG_URL

# --- round trip: export from one registry, import into another
make_app "$T/app" shop 1.0
head -c 200000 /dev/urandom > "$T/app/data.bin"
pub=$("$FERRY" publish "$T/app" --registry "$src_url" --key "$T/alice.key")
"$FERRY" export shop@1.0 -o "$T/shop.tar" --registry "$src_url" >/dev/null
imp=$("$FERRY" import "$T/shop.tar" --registry "$dst_url")
[ "$imp" = "$pub" ] || fail "import printed '$imp', publish printed '$pub'"
"$FERRY" pull shop@1.0 --out "$T/pulled" --registry "$dst_url" --trust "$T/alice.pub" >/dev/null
[ "$(tree_listing "$T/app")" = "$(tree_listing "$T/pulled")" ] || fail "imported tree differs"
pass "export -> import -> pull round trip"

# --- a bundle signed by a key the importing registry does not trust
make_app "$T/evil" evil 1.0
start_registry evilsrc "$T/evilsrc" --trust "$T/mallory.pub"
"$FERRY" publish "$T/evil" --registry "$REG_URL" --key "$T/mallory.key" >/dev/null
"$FERRY" export evil@1.0 -o "$T/evil.tar" --registry "$REG_URL" >/dev/null
expect_fail 'evil\.tar: publish refused: manifest signed by untrusted key' \
  "$FERRY" import "$T/evil.tar" --registry "$dst_url"
[ -z "$("$FERRY" versions evil --registry "$dst_url" 2>/dev/null)" ] || fail "evil became visible"
pass "import of a bundle signed by an untrusted key is refused"

# --- a tampered blob inside an otherwise valid bundle
mkdir "$T/unpack" && tar -xf "$T/shop.tar" -C "$T/unpack"
blob=$(b2sum -l 256 "$T/app/data.bin" | cut -d' ' -f1)
printf '\x00' | dd of="$T/unpack/blobs/$blob" bs=1 seek=10 conv=notrunc status=none
(cd "$T/unpack" && tar --format=ustar -cf "$T/tampered.tar" manifest.pb signatures.pb blobs)
make_app "$T/app2" shop 1.0   # a third, empty registry receives it
start_registry third "$T/third" --trust "$T/alice.pub"
expect_fail "bundle blob for file 'data\.bin' does not match its digest" \
  "$FERRY" import "$T/tampered.tar" --registry "$REG_URL"
[ -z "$(find "$T/third/blobs" -type f)" ] || fail "tampered import stored blobs"
pass "a tampered bundle is refused before any byte is uploaded"

# --- hostile bundles: each refused, nothing written outside the staging area
# shop.tar gives them a real signed head: import verifies it before reading
# on, so the refusal is the hostile entry's.
python3 "$FERRY_SRC/tests/fixtures/make_hostile_bundles.py" "$T/hostile" "$T/shop.tar" >/dev/null
mkdir -p "$T/tmp"
# What a hostile entry would leave where it aims (the scratch parent, /tmp,
# /etc, the working directory): the fixtures' target names, or a file named
# like a blob outside any store. Names, not "anything new", because other
# tests run at the same time and write in /tmp too.
outside_writes() {
  find "$(dirname "$T")" /tmp /var/tmp /etc "$PWD" -maxdepth 2 -newer "$T/marker" \
       -regextype posix-extended \( -name 'ferry-hostile-*' -o -regex '.*/[0-9a-f]{64}' \) \
       -not -path "$T" -not -path "$T/*" -not -path '*/blobs/*' 2>/dev/null | sort || true
}
check_hostile() { # check_hostile FILE PATTERN [ENV...]
  local file=$1 pattern=$2; shift 2
  local before after
  before=$(outside_writes)
  env TMPDIR="$T/tmp" "$@" "$FERRY" import "$T/hostile/$file" --registry "$REG_URL" \
      >/dev/null 2>"$T/err" && fail "$file was accepted"
  grep -Eq -- "$pattern" "$T/err" || fail "$file: error '$(cat "$T/err")', expected /$pattern/"
  [ "$(wc -l < "$T/err")" -eq 1 ] || fail "$file: error is not one line"
  grep -q "$file" "$T/err" || fail "$file: error does not name the bundle"
  [ -z "$(ls -A "$T/tmp")" ] || fail "$file: staging left behind: $(ls -A "$T/tmp")"
  after=$(outside_writes)
  [ "$before" = "$after" ] || fail "$file wrote outside the staging area"
  [ -z "$(find "$T/third/blobs" -type f)" ] || fail "$file: blobs reached the registry"
}
touch "$T/marker"
check_hostile dotdot.tar "entry '\.\./ferry-hostile-dotdot': '\.' or '\.\.' component"
check_hostile dotdot_nested.tar "'\.' or '\.\.' component"
check_hostile absolute.tar "absolute path"
check_hostile symlink_escape.tar "symlink not allowed"
check_hostile hardlink_outside.tar "hardlink not allowed"
check_hostile device.tar "character device not allowed"
check_hostile fifo.tar "FIFO not allowed"
check_hostile setuid.tar "setuid bit not allowed"
check_hostile unknown_name.tar "not a bundle member name"
check_hostile duplicate.tar "duplicate entry"
check_hostile truncated.tar "[Tt]runcated"
check_hostile garbage.tar "[Uu]nrecognized archive format"
check_hostile too_many_entries.tar "more than 100 entries" FERRY_BUNDLE_MAX_ENTRIES=100
check_hostile too_big.tar "limit" FERRY_BUNDLE_MAX_BYTES=1048576
[ "$(stat -c %h /etc/passwd)" = 1 ] || fail "/etc/passwd gained a link"
pass "14 hostile bundles refused, nothing written outside staging"

"$FERRY_POKE" "$REG_URL" ping >/dev/null || fail "registry stopped answering"

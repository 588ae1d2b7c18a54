#!/usr/bin/env bash
# publish -> pull round trips, dedupe by digest, immutable versions, trust.
source "$(dirname "$0")/lib.sh"

make_key alice
make_key mallory
start_registry reg "$T/reg" --trust "$T/alice.pub"

# --- publish -> pull gives a byte-identical tree with the same modes
make_app "$T/app1" shop 1.0
head -c 300000 /dev/urandom > "$T/app1/static/blob.bin"
out=$("$FERRY" publish "$T/app1" --registry "$REG_URL" --key "$T/alice.key")
grep -Eq '^shop@1\.0 [0-9a-f]{64}$' <<<"$out" || fail "publish printed '$out'"
digest1=${out#* }
"$FERRY" pull shop@1.0 --out "$T/pulled1" --registry "$REG_URL" --trust "$T/alice.pub" >/dev/null
[ "$(tree_listing "$T/app1")" = "$(tree_listing "$T/pulled1")" ] || fail "pulled tree differs"
[ -x "$T/pulled1/run.sh" ] || fail "exec bit lost"
[ "$(stat -c %a "$T/pulled1/static/index.html")" = 644 ] || fail "plain file mode wrong"
pass "publish -> pull is byte-identical with modes"

# --- progress: drawn on a terminal, absent without one
head -c 3000000 /dev/urandom > "$T/app-progress.bin"
make_app "$T/progress" progress 1.0
mv "$T/app-progress.bin" "$T/progress/data.bin"
err=$("$FERRY" publish "$T/progress" --registry "$REG_URL" --key "$T/alice.key" 2>&1 >/dev/null)
[ -z "$err" ] || fail "publish without a terminal printed: $err"
script -qec "'$FERRY' pull progress@1.0 --out '$T/progress-out' --registry '$REG_URL' --trust '$T/alice.pub'" \
  /dev/null > "$T/tty.out" || fail "pull on a terminal failed"
grep -q 'pull progress@1.0: .*/s' "$T/tty.out" || fail "no progress on a terminal: $(cat -v "$T/tty.out")"
err=$("$FERRY" pull progress@1.0 --out "$T/progress-out2" --registry "$REG_URL" --trust "$T/alice.pub" 2>&1 >/dev/null)
[ -z "$err" ] || fail "pull without a terminal printed: $err"
pass "progress on a terminal only"

# --- re-publishing identical content succeeds and uploads nothing
before=$(stat_counter blob_bytes_received)
out2=$("$FERRY" publish "$T/app1" --registry "$REG_URL" --key "$T/alice.key")
[ "$out2" = "$out" ] || fail "re-publish printed '$out2', expected '$out'"
[ "$(stat_counter blob_bytes_received)" = "$before" ] || fail "re-publish uploaded bytes"
pass "re-publish is a no-op"

# --- version 2 changing one of three files uploads exactly one blob
cp -a "$T/app1" "$T/app2"
sed -i 's/"1.0"/"2.0"/' "$T/app2/ferry.yaml"
echo "changed" >> "$T/app2/static/index.html"
blobs_before=$(stat_counter blobs_received)
summary=$("$FERRY" publish "$T/app2" --registry "$REG_URL" --key "$T/alice.key" -v 2>&1 >/dev/null)
blobs_after=$(stat_counter blobs_received)
[ $((blobs_after - blobs_before)) -eq 1 ] || fail "v2 uploaded $((blobs_after - blobs_before)) blobs"
grep -q '1 of 3 blobs uploaded' <<<"$summary" || fail "publish summary: $summary"
pass "changing one file of three uploads one blob"

# --- same version, different content is refused; the first is untouched
cp -a "$T/app1" "$T/app1b"
echo "tampered" >> "$T/app1b/run.sh"
expect_fail 'shop@1\.0: version already published with different content' \
  "$FERRY" publish "$T/app1b" --registry "$REG_URL" --key "$T/alice.key"
"$FERRY" pull shop@1.0 --out "$T/pulled1-again" --registry "$REG_URL" --trust "$T/alice.pub" >/dev/null
[ "$(tree_listing "$T/app1")" = "$(tree_listing "$T/pulled1-again")" ] || fail "v1 changed"
"$FERRY" versions shop --registry "$REG_URL" --json > "$T/versions.json"
python3 - "$T/versions.json" "$digest1" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
vs = {v["version"]: v for v in doc["versions"]}
assert set(vs) == {"1.0", "2.0"}, vs
assert vs["1.0"]["digest"] == sys.argv[2], vs["1.0"]
assert len(vs["1.0"]["publisher"]) == 16
PY
pass "different content under a used version is refused"

# --- a publish signed by an unknown key is refused; nothing becomes visible
make_app "$T/evil" evil 1.0
expect_fail 'untrusted key' "$FERRY" publish "$T/evil" --registry "$REG_URL" --key "$T/mallory.key"
[ -z "$("$FERRY" versions evil --registry "$REG_URL" 2>/dev/null)" ] || fail "evil is visible"
expect_fail 'evil@1\.0: no such artifact version' \
  "$FERRY" pull evil@1.0 --out "$T/evil-out" --registry "$REG_URL" --trust "$T/mallory.pub"
pass "publish by an untrusted key is refused"

# --- pull verifies against the client's own trust
expect_fail 'untrusted key' \
  "$FERRY" pull shop@1.0 --out "$T/untrusted" --registry "$REG_URL" --trust "$T/mallory.pub"
[ ! -e "$T/untrusted" ] || fail "destination exists after untrusted pull"
expect_fail 'no trusted keys' "$FERRY" pull shop@1.0 --out "$T/nokeys" --registry "$REG_URL"
pass "pull refuses manifests signed by keys it does not trust"

# --- a flipped byte in a stored blob: pull names the file; no destination
blob_digest=$(b2sum -l 256 "$T/app1/static/blob.bin" | cut -d' ' -f1)
blob_path="$T/reg/blobs/${blob_digest:0:2}/$blob_digest"
[ -f "$blob_path" ] || fail "blob not stored by digest at $blob_path"
printf '\xff' | dd of="$blob_path" bs=1 seek=1000 conv=notrunc status=none
expect_fail "file 'static/blob.bin' does not match its digest" \
  "$FERRY" pull shop@1.0 --out "$T/corrupt" --registry "$REG_URL" --trust "$T/alice.pub"
[ ! -e "$T/corrupt" ] || fail "destination exists after a failed verification"
[ -z "$(find "$T" -maxdepth 1 -name '.corrupt*')" ] || fail "staging left behind"
pass "a tampered blob is caught and nothing is materialized"
cp "$T/app1/static/blob.bin" "$blob_path"   # repair it for the checks below

# --- environment variables stand in for the flags
FERRY_REGISTRY="$REG_URL" FERRY_TRUST="$T/mallory.pub:$T/alice.pub" \
  "$FERRY" pull shop@2.0 --out "$T/env-pull" >/dev/null
grep -q changed "$T/env-pull/static/index.html" || fail "env pull content"
make_app "$T/app3" shop 3.0
FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/alice.key" "$FERRY" publish "$T/app3" | grep -q '^shop@3.0 '
pass "FERRY_REGISTRY, FERRY_KEY and FERRY_TRUST work"

# --- keys: a secret key readable by others is refused by every command
cp "$T/alice.key" "$T/loose.key"; chmod 644 "$T/loose.key"
expect_fail 'loose\.key: secret key is accessible by group or others' \
  "$FERRY" publish "$T/app3" --registry "$REG_URL" --key "$T/loose.key"
[ "$(stat -c %a "$T/alice.key")" = 600 ] || fail "keygen mode"
expect_fail 'already exists' "$FERRY" keygen alice --dir "$T"
pass "secret key permissions are enforced"

# --- ferry.yaml errors name file, line and key
make_app "$T/bad" bad 1.0
printf 'colour: blue\n' >> "$T/bad/ferry.yaml"
expect_fail 'bad/ferry\.yaml:7: key .colour.: unknown key' \
  "$FERRY" publish "$T/bad" --registry "$REG_URL" --key "$T/alice.key"
sed -i '/colour/d; s/kind: app/kind: 5/' "$T/bad/ferry.yaml"
expect_fail "bad/ferry\.yaml:3: key 'kind'" \
  "$FERRY" publish "$T/bad" --registry "$REG_URL" --key "$T/alice.key"
pass "ferry.yaml errors are reported with file, line and key"

# --- a model whose files are not among its files is refused before upload
mkdir -p "$T/model"
cat > "$T/model/ferry.yaml" <<'YAML'
name: churn
version: "1"
kind: model
runtime: model
model:
  format: sklearn
  file: model.joblib
  inputs: [{name: x, datatype: FP64, shape: [-1]}]
  card: CARD.md
  reference: data/reference.csv
YAML
expect_fail "model/ferry\.yaml: key 'model\.card': file 'CARD\.md' is not in the artifact" \
  "$FERRY" publish "$T/model" --registry "$REG_URL" --key "$T/alice.key"
echo "# churn model" > "$T/model/CARD.md"
expect_fail "model/ferry\.yaml: key 'model\.file': file 'model\.joblib' is not in the artifact" \
  "$FERRY" publish "$T/model" --registry "$REG_URL" --key "$T/alice.key"
head -c 1000 /dev/urandom > "$T/model/model.joblib"
expect_fail "model/ferry\.yaml: key 'model\.reference': file 'data/reference\.csv' is not in the artifact" \
  "$FERRY" publish "$T/model" --registry "$REG_URL" --key "$T/alice.key"
mkdir -p "$T/model/data"
echo "x" > "$T/model/data/reference.csv"
"$FERRY" publish "$T/model" --registry "$REG_URL" --key "$T/alice.key" | grep -q '^churn@1 '
"$FERRY" versions churn --registry "$REG_URL" --json | grep -q '"kind": "model"' || fail "model kind"
# python: the FILE of entry FILE:CLASS ships too
mkdir -p "$T/pymodel"
printf 'name: pym\nversion: "1"\nkind: model\nruntime: model\nmodel: {format: python, entry: "src/serve.py:Model", inputs: [{name: x, datatype: FP64, shape: [-1]}]}\n' \
  > "$T/pymodel/ferry.yaml"
expect_fail "pymodel/ferry\.yaml: key 'model\.entry': file 'src/serve\.py' is not in the artifact" \
  "$FERRY" publish "$T/pymodel" --registry "$REG_URL" --key "$T/alice.key"
mkdir -p "$T/pymodel/src" && echo "class Model: pass" > "$T/pymodel/src/serve.py"
"$FERRY" publish "$T/pymodel" --registry "$REG_URL" --key "$T/alice.key" | grep -q '^pym@1 '
pass "a model's card, file, entry and reference must ship with it"

# --- an unreachable registry is one clear line
expect_fail 'registry tcp://127.0.0.1:1: ' \
  "$FERRY" versions shop --registry tcp://127.0.0.1:1
pass "unreachable registry"

# the registry is still healthy and exits 0 on SIGTERM
"$FERRY_POKE" "$REG_URL" ping >/dev/null || fail "registry stopped answering"
stop_and_wait "$REG_PID" 30 "the registry" || fail "registry exit status $? on SIGTERM"
pass "registry exits 0 on SIGTERM"

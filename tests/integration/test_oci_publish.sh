#!/usr/bin/env bash
# Publishing OCI images (runtime oci), built offline with umoci from
# busybox-static: the image's config and layers become artifact files whose
# sha256 digests the signed manifest keeps (ferry inspect shows them, a pull
# brings back the same bytes); a second image on the same base uploads only
# what is new (the registry's byte counter says exactly how much); a layout
# tar and a docker save archive are accepted; each bad image is refused
# with one line naming it and the reason, and nothing reaches the registry.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ociimage.sh"

make_key ops
start_registry reg "$T/reg" --trust "$T/ops.pub"
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"

oci_busybox_layout "$T/base" /bin/httpd -f -p 8080 || fail "could not build the busybox image"
base_layer=$(oci_blob_path "$T/base" layer 0)
base_config=$(oci_blob_path "$T/base" config)
sha() { echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }
size() { stat -c %s "$1"; }

# oci_app DIR NAME VERSION IMAGE: an artifact of runtime oci.
oci_app() {
  mkdir -p "$1"
  cat > "$1/ferry.yaml" <<YAML
name: $2
version: "$3"
kind: app
runtime: oci
oci:
  image: $4
  env: {GREETING: hello}
  ports: [8080]
YAML
}

# inspect_field REF PYTHON-EXPR: a value from `ferry inspect REF --json` (j).
inspect_field() {
  "$FERRY" inspect "$1" --json | python3 -c "import json,sys; j=json.load(sys.stdin); print($2)"
}

# --- the busybox image: a layout directory next to the artifact
oci_app "$T/web" web 1 ../base
bytes0=$(stat_counter blob_bytes_received)
"$FERRY" publish -v "$T/web" >"$T/out" 2>"$T/err" || fail "publish web@1: $(cat "$T/err")"
grep -q "^ferry: publish web@1: 2 of 2 blobs uploaded" "$T/err" || fail "summary: $(cat "$T/err")"
bytes1=$(stat_counter blob_bytes_received)
[ $((bytes1 - bytes0)) -eq $(( $(size "$base_layer") + $(size "$base_config") )) ] \
  || fail "web@1 uploaded $((bytes1 - bytes0)) bytes, not the layer and the config"
[ "$(inspect_field web@1 "len(j['oci']['layers'])")" = 1 ] || fail "web@1 has not one layer"
[ "$(inspect_field web@1 "j['oci']['layers'][0]['digest']")" = "$(sha "$base_layer")" ] \
  || fail "the layer's sha256 is not the image's"
[ "$(inspect_field web@1 "j['oci']['layers'][0]['media_type']")" = "application/vnd.oci.image.layer.v1.tar+gzip" ] \
  || fail "media type: $(inspect_field web@1 "j['oci']['layers'][0]['media_type']")"
[ "$(inspect_field web@1 "j['oci']['config_digest']")" = "$(sha "$base_config")" ] || fail "config digest"
"$FERRY" inspect web@1 | grep -Eq "^layer 0 $(sha "$base_layer") $(size "$base_layer") application/vnd.oci.image.layer.v1.tar\+gzip$" \
  || fail "inspect text: $("$FERRY" inspect web@1)"
pass "a busybox image publishes as its config and layer; inspect shows the layer's sha256"

# the pulled tree carries the layer and config under their sha256 names
"$FERRY" pull web@1 --out "$T/pulled" --trust "$T/ops.pub" >/dev/null || fail "pull web@1"
for f in $(inspect_field web@1 "' '.join([l['file'] for l in j['oci']['layers']] + [j['oci']['config_file']])"); do
  [ "$(sha "$T/pulled/$f")" = "sha256:$(basename "$f")" ] || fail "pulled $f does not match its sha256"
done
[ "$(find "$T/pulled" -type f | wc -l)" -eq 3 ] || fail "pulled tree: $(find "$T/pulled" -type f)"
pass "a pull brings back the layer and config, each matching its sha256"

# --- a second image on the same base, as a layout tar inside the artifact
echo '<h1>two</h1>' > "$T/index.html"
oci_add_layer "$T/base" "$T/two" "$T/index.html" /www/index.html
[ "$(oci_blob_path "$T/two" layer 0)" != "" ] && [ "$(sha "$(oci_blob_path "$T/two" layer 0)")" = "$(sha "$base_layer")" ] \
  || fail "the second image does not share the base layer"
new_layer=$(oci_blob_path "$T/two" layer 1)
new_config=$(oci_blob_path "$T/two" config)
oci_app "$T/app2" shop 1 two.tar
oci_layout_tar "$T/two" "$T/app2/two.tar"
"$FERRY" publish -v "$T/app2" >"$T/out" 2>"$T/err" || fail "publish shop@1: $(cat "$T/err")"
grep -q "^ferry: publish shop@1: 2 of 3 blobs uploaded ($(( $(size "$new_layer") + $(size "$new_config") )) bytes)" "$T/err" \
  || fail "summary: $(cat "$T/err")"
bytes2=$(stat_counter blob_bytes_received)
[ $((bytes2 - bytes1)) -eq $(( $(size "$new_layer") + $(size "$new_config") )) ] \
  || fail "shop@1 uploaded $((bytes2 - bytes1)) bytes; the new layer and config are $(( $(size "$new_layer") + $(size "$new_config") ))"
[ "$(inspect_field shop@1 "len(j['oci']['layers'])")" = 2 ] || fail "shop@1 has not two layers"
[ "$(inspect_field shop@1 "j['oci']['layers'][1]['digest']")" = "$(sha "$new_layer")" ] || fail "the new layer's sha256"
inspect_field shop@1 "[f['path'] for f in j['files']]" | grep -q two.tar && fail "the image tar itself was published"
pass "a second image on the same base uploads only its new layer and config ($((bytes2 - bytes1)) bytes)"

# --- docker save
oci_app "$T/app3" legacy 1 image.tar
oci_docker_save "$T/two" "$T/app3/image.tar"
"$FERRY" publish "$T/app3" >/dev/null 2>"$T/err" || fail "publish of a docker save archive: $(cat "$T/err")"
[ "$(inspect_field legacy@1 "','.join(l['media_type'] for l in j['oci']['layers'])")" = \
  "application/vnd.docker.image.rootfs.diff.tar,application/vnd.docker.image.rootfs.diff.tar" ] \
  || fail "docker layers: $("$FERRY" inspect legacy@1)"
pass "a docker save archive is accepted"

# --- a layout with two tags: oci.tag picks one
cp -a "$T/two" "$T/tagged"
umoci tag --image "$T/tagged:latest" v2 >/dev/null
oci_app "$T/tagged-app" tagged 1 ../tagged
expect_fail "^ferry: oci.image '../tagged': index: 2 manifests and none for linux/amd64 \(oci.tag picks one by name\)$" \
  "$FERRY" publish "$T/tagged-app"
printf '  tag: v2\n' >> "$T/tagged-app/ferry.yaml"
"$FERRY" publish "$T/tagged-app" >/dev/null 2>"$T/err" || fail "publish with oci.tag: $(cat "$T/err")"
[ "$(inspect_field tagged@1 "len(j['oci']['layers'])")" = 2 ] || fail "tagged@1 has not two layers"
pass "in a layout with several tags, oci.tag picks the image"

# --- bad images: one line naming the image and the reason, nothing published
before="$(stat_counter blob_bytes_received) $(stat_counter publishes)"
refused() { # refused NAME PATTERN: the artifact in $T/NAME is refused, nothing published
  expect_fail "$2" "$FERRY" publish "$T/$1"
  [ "$(stat_counter blob_bytes_received) $(stat_counter publishes)" = "$before" ] \
    || fail "$1: the registry received something"
  "$FERRY" versions "$1" 2>&1 | grep -q "no versions published" || fail "$1: a version was published"
}
# rewrite_manifest LAYOUT PYTHON: edit the image manifest (m) and re-point the index at it
rewrite_manifest() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import hashlib, json, sys
d, code = sys.argv[1], sys.argv[2]
idx = json.load(open(d + "/index.json"))
path = lambda dg: d + "/blobs/sha256/" + dg.split(":")[1]
m = json.load(open(path(idx["manifests"][0]["digest"])))
exec(code)
raw = json.dumps(m).encode()
dg = "sha256:" + hashlib.sha256(raw).hexdigest()
open(path(dg), "wb").write(raw)
idx["manifests"][0].update(digest=dg, size=len(raw))
open(d + "/index.json", "w").write(json.dumps(idx))
PY
}

cp -a "$T/base" "$T/img-missing"; rm "$T/img-missing/blobs/sha256/$(basename "$base_layer")"
oci_app "$T/missing" missing 1 ../img-missing
refused missing "^ferry: oci.image '../img-missing': layer sha256:[0-9a-f]{12}…: missing from the image$"

cp -a "$T/base" "$T/img-tampered"
gzip -c "$T/index.html" > "$T/img-tampered/blobs/sha256/$(basename "$base_layer")"
oci_app "$T/tampered" tampered 1 ../img-tampered
refused tampered "^ferry: oci.image '../img-tampered': layer sha256:[0-9a-f]{12}…: sha256 does not match"

cp -a "$T/base" "$T/img-bzip"
rewrite_manifest "$T/img-bzip" "m['layers'][0]['mediaType'] = 'application/vnd.oci.image.layer.v1.tar+bzip2'"
oci_app "$T/bzip" bzip 1 ../img-bzip
refused bzip "^ferry: oci.image '../img-bzip': layer sha256:[0-9a-f]{12}…: unsupported media type 'application/vnd.oci.image.layer.v1.tar\+bzip2'$"

cp -a "$T/base" "$T/img-foreign"
rewrite_manifest "$T/img-foreign" "m['layers'][0]['mediaType'] = 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip'"
oci_app "$T/foreign" foreign 1 ../img-foreign
refused foreign "unsupported media type 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip'$"

cp -a "$T/base" "$T/img-index"; echo '{"schemaVersion": 2, "manifests": [' > "$T/img-index/index.json"
oci_app "$T/badindex" badindex 1 ../img-index
refused badindex "^ferry: oci.image '../img-index': index: not valid JSON"

mkdir -p "$T/dsave"; tar -C "$T/dsave" -xf "$T/app3/image.tar"; rm "$T/dsave/1/layer.tar"
oci_app "$T/dmissing" dmissing 1 image.tar
tar -C "$T/dsave" -cf "$T/dmissing/image.tar" .
refused dmissing "^ferry: oci.image 'image.tar': layer '1/layer.tar' named by manifest.json: missing from the image$"

oci_app "$T/noimage" noimage 1 nothing-here
refused noimage "^ferry: oci.image 'nothing-here': No such file or directory$"
pass "bad images are refused with one line naming the image and the reason; nothing reaches the registry"

# a spec without an image, and oci keys ferry does not know, are refused by the schema
mkdir -p "$T/noimg"
printf 'name: noimg\nversion: "1"\nkind: app\nruntime: oci\n' > "$T/noimg/ferry.yaml"
expect_fail "ferry.yaml:[0-9]+: key 'oci': required key is missing" "$FERRY" publish "$T/noimg"
printf 'oci:\n  image: x\n  network: bridge\n' >> "$T/noimg/ferry.yaml"
expect_fail "ferry.yaml:7: key 'oci.network': must be one of host, none" "$FERRY" publish "$T/noimg"
pass "the oci: section is checked: an image is required, network is host or none"

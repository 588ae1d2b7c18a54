# Test images for runtime oci, built offline: no registry, no network, no
# Docker. Source it (after lib.sh, or on its own: it needs only bash, umoci,
# python3 and busybox-static's /bin/busybox).
#
#   oci_busybox_layout DIR [CMD...]   an OCI image layout at DIR, tag "latest":
#       one layer with /bin/busybox and symlinks (sh, httpd, ls, cat, echo,
#       sleep, wget, id, env, kill, ...), config Cmd CMD (default /bin/sh),
#       Env PATH=/bin:/usr/bin. umoci init + new + insert + config.
#   oci_add_layer SRC DST FILE TARGET a copy of the layout SRC at DST with one
#       more layer holding FILE at TARGET (the base layer is the same blob).
#   oci_layout_tar DIR TAR            the layout as a tar, as skopeo's
#       oci-archive writes it.
#   oci_docker_save DIR TAR           the same image as `docker save` writes it:
#       manifest.json, CONFIGHEX.json, N/layer.tar (uncompressed layers).
#   oci_blob_path DIR KIND [N]        the path of the config (KIND config),
#       the manifest (manifest) or layer N (layer, from 0) of the layout.
#
# Images are reproducible only up to umoci's timestamps; tests compare
# digests of the images they built themselves.

OCI_BUSYBOX_APPLETS=(sh httpd ls cat echo sleep wget id env kill ps mkdir rm true false
  head tail grep sed awk dd nc hostname pwd uname)

oci_busybox_layout() {
  local dir=$1; shift
  local cmd=("$@")
  [ ${#cmd[@]} -gt 0 ] || cmd=(/bin/sh)
  [ -x /bin/busybox ] || { echo "oci_busybox_layout: /bin/busybox (busybox-static) is missing" >&2; return 1; }
  command -v umoci >/dev/null || { echo "oci_busybox_layout: umoci is missing" >&2; return 1; }
  local stage
  stage=$(mktemp -d "${TMPDIR:-/tmp}/oci-stage.XXXXXX")
  mkdir -p "$stage/bin"
  cp /bin/busybox "$stage/bin/busybox"
  chmod 755 "$stage/bin/busybox"
  local a
  for a in "${OCI_BUSYBOX_APPLETS[@]}"; do ln -s busybox "$stage/bin/$a"; done
  umoci init --layout "$dir" >/dev/null &&
    umoci new --image "$dir:latest" >/dev/null &&
    umoci insert --image "$dir:latest" "$stage/bin" /bin >/dev/null &&
    oci__config "$dir" "${cmd[@]}" &&
    umoci gc --layout "$dir" >/dev/null
  local rc=$?
  rm -rf "$stage"
  return $rc
}

oci__config() {
  local dir=$1; shift
  local args=(--image "$dir:latest" --clear=config.cmd --config.env=PATH=/bin:/usr/bin)
  local c
  for c in "$@"; do args+=("--config.cmd=$c"); done
  umoci config "${args[@]}" >/dev/null
}

oci_add_layer() {
  local src=$1 dst=$2 file=$3 target=$4
  cp -a "$src" "$dst" &&
    umoci insert --image "$dst:latest" "$file" "$target" >/dev/null &&
    umoci gc --layout "$dst" >/dev/null
}

oci_layout_tar() {
  local dir=$1 tar=$2
  tar -C "$dir" -cf "$tar" .
}

oci_blob_path() {
  local dir=$1 kind=$2 n=${3:-0}
  /usr/bin/python3 - "$dir" "$kind" "$n" <<'PY'
import json, sys
d, kind, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
blob = lambda dg: "%s/blobs/sha256/%s" % (d, dg.split(":", 1)[1])
idx = json.load(open(d + "/index.json"))
man = idx["manifests"][0]["digest"]
if kind == "manifest":
    print(blob(man)); sys.exit(0)
m = json.load(open(blob(man)))
print(blob(m["config"]["digest"] if kind == "config" else m["layers"][n]["digest"]))
PY
}

oci_docker_save() {
  local dir=$1 tar=$2
  /usr/bin/python3 - "$dir" "$tar" <<'PY'
import gzip, hashlib, io, json, sys, tarfile
d, out = sys.argv[1], sys.argv[2]
blob = lambda dg: "%s/blobs/sha256/%s" % (d, dg.split(":", 1)[1])
idx = json.load(open(d + "/index.json"))
m = json.load(open(blob(idx["manifests"][0]["digest"])))
config = open(blob(m["config"]["digest"]), "rb").read()
chex = hashlib.sha256(config).hexdigest()
members = [(chex + ".json", config)]
layers = []
for i, l in enumerate(m["layers"]):
    raw = open(blob(l["digest"]), "rb").read()
    if l["mediaType"].endswith("gzip"):
        raw = gzip.decompress(raw)
    name = "%d/layer.tar" % i
    layers.append(name)
    members.append((name, raw))
manifest = [{"Config": chex + ".json", "RepoTags": ["busybox:latest"], "Layers": layers}]
members.append(("manifest.json", json.dumps(manifest).encode()))
with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as t:
    for name, data in members:
        if "/" in name:
            di = tarfile.TarInfo(name.split("/")[0])
            di.type = tarfile.DIRTYPE
            di.mode = 0o755
            t.addfile(di)
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        ti.mode = 0o644
        t.addfile(ti, io.BytesIO(data))
PY
}

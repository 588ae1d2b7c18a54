#!/usr/bin/env bash
# make demo: a local registry (SQLite + blob folder under demo-data/), a key,
# publish of every example, and a verified pull of each back out.
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$ROOT" && cd "$BUILD" && pwd)
FERRY="$BUILD/cli/ferry"
REGISTRY="$BUILD/registry/ferry-registry"
DATA="$ROOT/demo-data"
PORT=${FERRY_DEMO_PORT:-7400}
URL="tcp://127.0.0.1:$PORT"

mkdir -p "$DATA/keys" "$DATA/pulled"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ ! -f "$DATA/keys/demo.key" ]; then
  say "creating a signing key"
  "$FERRY" keygen demo --dir "$DATA/keys"
fi

say "starting ferry-registry on $URL (data in demo-data/registry)"
"$REGISTRY" --data "$DATA/registry" --listen "$URL" --trust "$DATA/keys/demo.pub" \
  2>"$DATA/registry.log" &
REG_PID=$!
trap 'kill $REG_PID 2>/dev/null; wait $REG_PID 2>/dev/null || true' EXIT
for _ in $(seq 500); do
  grep -q 'listening on' "$DATA/registry.log" && break
  kill -0 $REG_PID 2>/dev/null || { cat "$DATA/registry.log" >&2; exit 1; }
  sleep 0.01
done

export FERRY_REGISTRY="$URL" FERRY_KEY="$DATA/keys/demo.key" FERRY_TRUST="$DATA/keys/demo.pub"
for ex in "$ROOT"/examples/*/; do
  name=$(basename "$ex")
  say "publishing examples/$name"
  ref=$("$FERRY" publish "$ex" -v)
  echo "$ref"
  art=${ref%% *}
  say "pulling $art back, verified against demo.pub"
  rm -rf "$DATA/pulled/$name"
  "$FERRY" pull "$art" --out "$DATA/pulled/$name"
  ls -l "$DATA/pulled/$name"
  "$FERRY" versions "${art%@*}"
done

say "done"
echo "registry log: demo-data/registry.log; pulled trees: demo-data/pulled/"
echo "try: FERRY_REGISTRY=$URL $FERRY versions hello --json   (while a registry runs)"

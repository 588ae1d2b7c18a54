#!/usr/bin/env bash
# Install every Debian package ferry needs to build, test and demo.
# Idempotent: packages already present are left alone; apt-get update runs
# first only when something is missing.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  libuv1-dev libnng-dev libsqlite3-dev sqlite3 libsodium-dev libarchive-dev
  libprotobuf-c-dev protobuf-c-compiler libyaml-dev libjansson-dev libcmocka-dev
  coreutils bsdutils python3 curl procps bc openssl
  clang libclang-rt-14-dev
  # models (issue: model plugin): the HTTP server libraries measured against each other,
  # Debian's scientific Python for the workers, and the tools the tests and benchmarks use
  libh2o-dev libh2o-evloop-dev libmicrohttpd-dev libcivetweb-dev
  python3-numpy python3-sklearn python3-joblib python3-pandas
  prometheus wrk gunicorn python3-flask
  # notebooks: real Jupyter kernels and clients, nbclient for scheduled runs
  python3-jupyter-client python3-ipykernel python3-nbclient python3-nbformat
  # the dashboard: a real browser for its test (playwright-core from npm drives it)
  chromium nodejs
  # containers: runc runs them; umoci and busybox-static build test images offline;
  # podman is the benchmark's baseline
  runc umoci busybox-static podman zstd
  # tests that move the clock
  faketime
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

# npm comes with nodesource's nodejs where that is installed; Debian's
# nodejs needs Debian's npm beside it. Add it only when no npm command exists.
if ! command -v npm >/dev/null 2>&1; then
  missing+=(npm)
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  sudo_cmd=(sudo)
fi
if [ ${#missing[@]} -ne 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -q
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The dashboard's npm packages (docs/dashboard.md): uPlot, vendored into the
# page's assets at build time, and playwright-core, which drives Debian's
# chromium in the browser test. Exactly what tests/browser/package-lock.json
# pins, installed with npm ci only when node_modules is missing or was
# installed from another lock (its hash is kept in node_modules).
browser_dir="$(cd "$(dirname "$0")/.." && pwd)/tests/browser"
lock_hash=$(sha256sum "$browser_dir/package-lock.json" | cut -d' ' -f1)
stamp="$browser_dir/node_modules/.ferry-lock.sha256"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_hash" ]; then
  echo "install-deps: npm ci in tests/browser" >&2
  (cd "$browser_dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
  echo "$lock_hash" > "$stamp"
fi

#!/usr/bin/env bash
# Governance, the agent's policy check (called by bench/run.sh; also alone):
#   bash bench/policy.sh BUILD_DIR
# Policy evaluation per deploy on the agent, in microseconds, median of
# FERRY_BENCH_POLICY_N (1000) runs, against the manifest signature check
# the agent does for every deploy anyway, measured in the same run.
# Figures only; nothing is asserted.
set -euo pipefail
BUILD=${1:-build}
BUILD=$(cd "$BUILD" && pwd)
N=${FERRY_BENCH_POLICY_N:-1000}
W=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-policy.XXXXXX")
trap 'rm -rf "$W"' EXIT
echo
echo "== policy evaluation per deploy (agent --trust-admin, in-process)"
"$BUILD/bench/ferry-policybench" "$N" "$W"

#!/usr/bin/env bash
# Who may act on a kernel under a governance policy the agent verifies
# (--trust-admin): the registry carries actions only from the policy's
# operators, so a data scientist's key holds `operator` too, limited by
# `kinds`. Such a scoped key acts on its own kernels only; an operator key
# without `kinds` (the ops team's) may stop anyone's. docs/notebooks.md,
# "Who may act on a kernel".
source "$(dirname "$0")/lib.sh"

PY=${FERRY_PYTHON:-/usr/bin/python3}
"$PY" -c 'import ipykernel' 2>/dev/null || fail "$PY has no ipykernel (scripts/install-deps installs it)"

for k in admin ops ds ds2; do make_key $k; done
cat > "$T/policy.yaml" <<YAML
keys:
  - {name: admin,  pub: $T/admin.pub, roles: [admin]}
  - {name: ops,    pub: $T/ops.pub,   roles: [publisher, operator]}
  - {name: ds,     pub: $T/ds.pub,    roles: [publisher, operator], kinds: [notebook]}
  - {name: ds2,    pub: $T/ds2.pub,   roles: [publisher, operator], kinds: [model, notebook]}
  - {name: enroll, pub: $T/.lib/enroll.pub, roles: [operator]}
channels: [dev]
environments:
  - {name: dev, selector: "env=dev", channel: dev}
YAML
"$FERRY" policy sign "$T/policy.yaml" --key "$T/admin.key" >/dev/null
start_registry reg "$T/reg" --trust-admin "$T/admin.pub" --policy "$T/policy.yaml"
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
# --operator is given too: with a policy it is not what decides.
start_agent h1 "$T/h1" --label env=dev --trust "$T/ops.pub" --trust "$T/ds.pub" --trust "$T/ds2.pub" \
  --trust-admin "$T/admin.pub" --operator "$T/ds2.pub"

mkdir -p "$T/nb"
printf 'name: lab\nversion: "1"\nkind: notebook\nruntime: notebook\nnotebook:\n  kernel: python3\n' > "$T/nb/ferry.yaml"
"$FERRY" publish "$T/nb" --key "$T/ds.key" >/dev/null || fail "ds may publish a notebook"
"$FERRY" deploy lab@1 --to env=dev >/dev/null
"$FERRY" status --wait lab@1 --timeout 60 >/dev/null || fail "lab@1 is not running: $(tail -5 "$T/agent-h1.log")"
[ -s "$T/h1/policy.bin" ] || fail "the agent kept no verified policy"

kid=$("$FERRY" kernel start lab@1 --to env=dev --key "$T/ds.key" -o "$T/conn.json") || fail "ds: kernel start"
expect_fail "kernel $kid: only the key that started it or an operator may stop it" \
  "$FERRY" kernel stop "$kid" --key "$T/ds2.key"
expect_fail "kernel $kid: only the key that started it or an operator may restart it" \
  "$FERRY" kernel restart "$kid" --key "$T/ds2.key"
"$FERRY" kernel list --json | grep -q "$kid" || fail "the refused stop ended the kernel"
pass "a key whose operator role is limited to kinds (a data scientist's) may not act on another key's kernel, --operator notwithstanding"

"$FERRY" kernel interrupt "$kid" --key "$T/ops.key" >/dev/null || fail "ops: interrupt"
"$FERRY" kernel stop "$kid" --key "$T/ops.key" >/dev/null || fail "ops: stop"
grep -q "kernel $kid (started by key [0-9a-f]*): stop by operator key" "$T/agent-h1.log" || fail "no operator line"
gone() { ! "$FERRY" kernel list --json | grep -q "$kid"; }
wait_until 10 gone || fail "kernel $kid is still listed"
pass "an operator key without kinds (the policy's) interrupts and stops another key's kernel"

kid=$("$FERRY" kernel start lab@1 --to env=dev --key "$T/ds2.key" -o "$T/conn2.json") || fail "ds2: kernel start"
"$FERRY" kernel restart "$kid" --key "$T/ds2.key" >/dev/null || fail "ds2 may restart its own kernel"
"$FERRY" kernel stop "$kid" --key "$T/ds2.key" >/dev/null || fail "ds2 may stop its own kernel"
pass "a scoped key acts on its own kernels"

#!/usr/bin/env bash
# Random bytes, truncated and oversized messages on the registry socket: each
# gets an error reply or is dropped, and the registry keeps serving.
source "$(dirname "$0")/lib.sh"

# Every call is bounded, so a hang shows up as the step that hung.
poke() { timeout 30 "$FERRY_POKE" "$@"; }

make_key alice
start_registry reg "$T/reg" --trust "$T/alice.pub"
make_app "$T/app" shop 1.0
timeout 60 "$FERRY" publish "$T/app" --registry "$REG_URL" --key "$T/alice.key" >/dev/null \
  || fail "publish before the abuse"
echo "registry at $REG_URL, shop@1.0 published"

for n in 1 7 100 4096 65536; do
  for i in 1 2 3; do
    poke "$REG_URL" garbage "$n" >/dev/null || fail "garbage $n: no error reply"
  done
done
pass "random requests get an error reply"

reply=$(poke "$REG_URL" truncated) || fail "truncated: $reply"
grep -q 'malformed request' <<<"$reply" || fail "truncated: reply was '$reply'"
pass "a truncated request gets 'malformed request'"

poke "$REG_URL" oversized >/dev/null || fail "oversized message was not dropped"
pass "an oversized message is dropped"

for n in 0 3 64 100000; do
  poke "127.0.0.1:$REG_PORT" rawtcp "$n" >/dev/null || fail "raw tcp $n"
done
pass "raw TCP garbage is disconnected"

# Still serving, and serving correctly.
poke "$REG_URL" ping >/dev/null || fail "registry stopped answering"
timeout 60 "$FERRY" pull shop@1.0 --out "$T/out" --registry "$REG_URL" --trust "$T/alice.pub" >/dev/null
[ -x "$T/out/run.sh" ] || fail "pull after the abuse"
bad=$(timeout 60 "$FERRY" stats --registry "$REG_URL" --json | python3 -c "import json,sys; print(json.load(sys.stdin)['bad_requests'])")
[ "$bad" -ge 1 ] || fail "bad requests were not counted"
kill -0 "$REG_PID" || fail "registry died"
pass "the registry keeps serving after hostile input ($bad bad requests counted)"

#!/usr/bin/env bash
# Remote connections over nng's tls+tcp:// transport: publish, pull and an
# agent's deploy, and clients that do not trust the certificate refused.
source "$(dirname "$0")/lib.sh"

cert() { # cert NAME: self-signed EC certificate for DNS name NAME
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$T/$1.key.pem" -out "$T/$1.pem" -days 2 -subj "/CN=$1" \
    -addext "subjectAltName=DNS:$1" 2>/dev/null
  cat "$T/$1.pem" "$T/$1.key.pem" > "$T/$1.server.pem"
}
cert ferry-registry
cert impostor

make_key ops
log="$T/reg.log"
"$FERRY_REGISTRY_BIN" --data "$T/reg" --listen tls+tcp://127.0.0.1:0 --http 127.0.0.1:0 \
  --tls-cert "$T/ferry-registry.server.pem" --trust "$T/ops.pub" "${LIB_TRUST[@]}" 2>>"$log" &
REG_PID=$!
PIDS+=("$REG_PID")
wait_until 10 grep -q 'listening on' "$log" || fail "TLS registry did not start: $(cat "$log")"
REG_URL=$(grep -o 'listening on tls+tcp://[0-9.]*:[0-9]*' "$log" | sed 's/listening on //')
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
export FERRY_TLS_CA="$T/ferry-registry.pem" FERRY_TLS_SERVER_NAME=ferry-registry

make_web_app "$T/web" web 1.0
"$FERRY" publish "$T/web" | grep -q '^web@1.0 ' || fail "publish over TLS"
"$FERRY" pull web@1.0 --out "$T/pulled" --trust "$T/ops.pub" >/dev/null
[ "$(tree_listing "$T/web")" = "$(tree_listing "$T/pulled")" ] || fail "pull over TLS"
pass "publish and pull over tls+tcp://"

expect_fail 'TLS needs the CA certificate: set FERRY_TLS_CA' env -u FERRY_TLS_CA "$FERRY" versions web
expect_fail 'TLS handshake failed' env FERRY_TLS_CA="$T/impostor.pem" "$FERRY" versions web
expect_fail 'TLS handshake failed' env FERRY_TLS_SERVER_NAME=elsewhere "$FERRY" versions web
expect_fail "listen tls\\+tcp://127.0.0.1:0: TLS needs --tls-cert" \
  "$FERRY_REGISTRY_BIN" --data "$T/reg2" --listen tls+tcp://127.0.0.1:0 --trust "$T/ops.pub"
pass "clients without the right CA or name are refused with one line"

start_agent h1 "$T/h1" --label env=tls --trust "$T/ops.pub"
"$FERRY" deploy web@1.0 --to env=tls >/dev/null
"$FERRY" status --wait web@1.0 --timeout 30 >/dev/null || fail "deploy over TLS"
[ "$(answer "$(workload_field h1 web 1.0 port)")" = "web 1.0" ] || fail "web does not answer"
pass "an agent deploys over tls+tcp://"

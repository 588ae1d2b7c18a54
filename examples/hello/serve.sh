#!/bin/sh
# Serve index.html on $PORT (the agent allocates it).
cd "$(dirname "$0")" || exit 1
printf '%s\n' "${GREETING:-hello}" > index.html
exec python3 -m http.server "${PORT:-8080}" --bind 127.0.0.1

#!/usr/bin/env bash
# Start the web server on 127.0.0.1:5000 and the background worker; Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
"$BIN/missive" worker &
worker=$!
trap 'kill "$worker" 2>/dev/null || true; wait "$worker" 2>/dev/null || true' EXIT INT TERM
echo "Missive : http://127.0.0.1:${PORT:-5000} (identifiants de démonstration dans README.md)"
"$BIN/missive" run --host 127.0.0.1 --port "${PORT:-5000}" --no-reload

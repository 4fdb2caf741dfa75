#!/usr/bin/env bash
# Install the pinned front-end packages from npm and copy what the pages load into
# app/static/vendor (not committed: rebuilt by the set-up).
set -euo pipefail
cd "$(dirname "$0")/.."
(cd frontend && npm ci --no-audit --no-fund --loglevel=error)
out=app/static/vendor
rm -rf "$out" && mkdir -p "$out"
cp frontend/node_modules/htmx.org/dist/htmx.min.js "$out/"

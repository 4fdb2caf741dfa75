#!/usr/bin/env bash
# Lint, then the whole suite: on SQLite, and on PostgreSQL too when TEST_DATABASE_URL is set.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
"$BIN/ruff" check .
"$BIN/ruff" format --check .
if [ -n "${TEST_DATABASE_URL:-}" ]; then
  echo "make test: suite on SQLite and on PostgreSQL (${TEST_DATABASE_URL})"
else
  echo "make test: TEST_DATABASE_URL is not set, the suite runs on SQLite only" \
       "(PostgreSQL-only tests are deselected; .ci/run sets it)"
fi
exec "$BIN/pytest" "$@"

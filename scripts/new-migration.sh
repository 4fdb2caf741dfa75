#!/usr/bin/env bash
# Autogenerate an Alembic migration with a readable revision id.
#   scripts/new-migration.sh 0004_contacts "contact base"
# The id must be unique; its down_revision is the current head.
set -euo pipefail
cd "$(dirname "$0")/.."
rev="$1"; message="$2"
export MISSIVE_HUEY_DB="${MISSIVE_HUEY_DB:-/tmp/missive-migrate-huey.db}"
before=$(ls migrations/versions)
.venv/bin/missive db upgrade >/dev/null
.venv/bin/missive db migrate -m "$message" >/dev/null
new=$(comm -13 <(echo "$before") <(ls migrations/versions) | grep '\.py$')
old_id=$(grep -m1 '^revision = ' "migrations/versions/$new" | cut -d"'" -f2)
sed -i "s/$old_id/$rev/g; s/astext_type=Text()/astext_type=sa.Text()/g" "migrations/versions/$new"
mv "migrations/versions/$new" "migrations/versions/$rev.py"
echo "migrations/versions/$rev.py"

#!/usr/bin/env bash
# Install the pinned front-end packages from npm and copy what the application loads into
# app/static/vendor (not committed: rebuilt by the set-up).
set -euo pipefail
cd "$(dirname "$0")/.."
(cd frontend && npm ci --no-audit --no-fund --loglevel=error)
out=app/static/vendor
rm -rf "$out" && mkdir -p "$out/data"
cp frontend/node_modules/htmx.org/dist/htmx.min.js "$out/"
# French communes and their postal codes (INSEE COG + La Poste, Licence Ouverte), read by
# app/contacts/communes.py: [insee code, name, département, kind, [postal codes], population].
node -e '
const communes = require("./frontend/node_modules/@etalab/decoupage-administratif/data/communes.json");
const kinds = {"commune-actuelle": "c", "commune-deleguee": "d", "commune-associee": "a",
               "arrondissement-municipal": "m"};
const rows = communes.filter(c => (c.codesPostaux || []).length)
  .map(c => [c.code, c.nom, c.departement || "", kinds[c.type] || "c", c.codesPostaux,
             c.population || 0]);
process.stdout.write(JSON.stringify({source: "@etalab/decoupage-administratif",
  licence: "Licence Ouverte 2.0", communes: rows}));
' > "$out/data/communes-fr.json"

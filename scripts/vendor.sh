#!/usr/bin/env bash
# Install the pinned front-end packages from npm and copy what the pages load into
# app/static/vendor (not committed: rebuilt by the set-up). The studio's modeler bundle
# (bpmn-js, properties panel, Camunda moddle, bpmnlint, dmn-js) is built by esbuild from
# frontend/src/.
set -euo pipefail
cd "$(dirname "$0")/.."
(cd frontend && npm ci --no-audit --no-fund --loglevel=error)
out=app/static/vendor
rm -rf "$out" && mkdir -p "$out/data"
cp frontend/node_modules/htmx.org/dist/htmx.min.js "$out/"
esbuild=frontend/node_modules/.bin/esbuild
"$esbuild" frontend/src/studio.js --bundle --minify --format=iife --target=es2020 \
  --legal-comments=linked --log-level=warning --outfile="$out/studio/studio.js"
"$esbuild" frontend/src/studio.css --bundle --minify --loader:.woff=file --loader:.woff2=file \
  --loader:.ttf=file --loader:.eot=file --loader:.svg=file --log-level=warning \
  --outfile="$out/studio/studio.css"
# bpmn-js: the read-only viewer of the task page (the bpmn.io watermark stays visible).
mkdir -p "$out/bpmn-js"
cp frontend/node_modules/bpmn-js/dist/bpmn-navigated-viewer.production.min.js "$out/bpmn-js/"
cp frontend/node_modules/bpmn-js/dist/assets/diagram-js.css frontend/node_modules/bpmn-js/dist/assets/bpmn-js.css "$out/bpmn-js/"
cp -r frontend/node_modules/bpmn-js/dist/assets/bpmn-font "$out/bpmn-js/"
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

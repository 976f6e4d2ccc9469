#!/usr/bin/env bash
# Checks that the studio page committed in web/dist (which the server embeds
# at build time) is exactly what web/src builds to: type-checks the sources,
# builds them into a temporary directory, and compares. Needs web/node_modules
# (npm ci in web/).
set -euo pipefail
cd "$(dirname "$0")/../web"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
npx --no-install tsc --noEmit
npx --no-install vite build --logLevel error --outDir "$out" --emptyOutDir >/dev/null
if ! diff -r "$out" dist >/dev/null; then
  diff -rq "$out" dist >&2 || true
  echo "check-web-build: web/dist is out of date with web/src: run (cd web && npm run build) and commit web/dist" >&2
  exit 1
fi

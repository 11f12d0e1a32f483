#!/usr/bin/env bash
# Validate docker-compose.yml against the Compose specification, offline: check-jsonschema
# (a dev dependency of the project) with the compose-spec schema it vendors. When a Docker
# engine with the compose plugin is present, `docker compose config` checks it too.
#   scripts/validate_compose.sh [FILE...]      (default: docker-compose.yml)
set -euo pipefail
cd "$(dirname "$0")/.."
validator="${CHECK_JSONSCHEMA:-.venv/bin/check-jsonschema}"
if [[ ! -x "$validator" ]]; then
  validator="$(command -v check-jsonschema || true)"
fi
if [[ -z "$validator" ]]; then
  echo "validate_compose: check-jsonschema not found; run 'make install'" >&2
  exit 2
fi
files=("$@")
(( ${#files[@]} )) || files=(docker-compose.yml)
"$validator" --builtin-schema vendor.compose-spec "${files[@]}"
if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
  for f in "${files[@]}"; do
    # placeholder values for the variables that must come from .env
    docker compose --env-file .env.example -f "$f" config --quiet
  done
fi

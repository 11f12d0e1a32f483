#!/usr/bin/env bash
# Write .env from .env.example with a fresh random value for every change-me secret, the
# Kafka cluster id and the Fernet key. Refuses to overwrite an existing .env.
#   deploy/make-env.sh [TARGET]        (default: .env next to docker-compose.yml)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:-.env}"
if [[ -e "$target" ]]; then
  echo "make-env: $target exists; remove it first if you really want new secrets" >&2
  exit 1
fi

rand_alnum() {  # $1 characters of [A-Za-z0-9]
  local out=""
  while (( ${#out} < $1 )); do
    out+=$(head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
  done
  printf '%s' "${out:0:$1}"
}
b64url() {  # $1 random bytes, url-safe base64
  head -c "$1" /dev/urandom | base64 | tr -d '\n' | tr '+/' '-_'
}

umask 077
while IFS= read -r line || [[ -n "$line" ]]; do
  case "$line" in
    KAFKA_CLUSTER_ID=*) line="KAFKA_CLUSTER_ID=$(b64url 16 | tr -d '=')" ;;
    AIRFLOW_FERNET_KEY=*) line="AIRFLOW_FERNET_KEY=$(b64url 32)" ;;
    [A-Z]*=change-me*) line="${line%%=*}=$(rand_alnum 32)" ;;
  esac
  printf '%s\n' "$line"
done < .env.example > "$target"
echo "make-env: wrote $target (mode 600); keep it out of git and back it up with the volumes"

#!/usr/bin/env bash
# Create or update the SCRAM-SHA-512 users of the bus; safe to run again (it overwrites).
# Runs as the one-shot `kafka-init` service over the brokers' INTERNAL listener, which is
# reachable on the compose network only. Users:
#   LGSP_KAFKA__SASL_USERNAME / LGSP_KAFKA__SASL_PASSWORD   the bus (archiver, router, Airflow)
#   KAFKA_EXTRA_USERS="name:password name2:password2"       more principals (agencies, operators)
set -euo pipefail

BOOTSTRAP="${KAFKA_INTERNAL_BOOTSTRAP:-kafka-1:29092,kafka-2:29092,kafka-3:29092}"
ITERATIONS="${SCRAM_ITERATIONS:-8192}"
CONFIGS=/opt/kafka/bin/kafka-configs.sh

add_user() {
  local user="$1" password="$2"
  if [[ -z "$user" || -z "$password" ]]; then
    echo "create-scram-users: empty user name or password" >&2
    exit 2
  fi
  if [[ "$password" == *[,\[\]=\ ]* ]]; then
    echo "create-scram-users: the password of $user must not contain , [ ] = or spaces" >&2
    exit 2
  fi
  "$CONFIGS" --bootstrap-server "$BOOTSTRAP" --alter \
    --entity-type users --entity-name "$user" \
    --add-config "SCRAM-SHA-512=[iterations=${ITERATIONS},password=${password}]" >/dev/null
  echo "create-scram-users: SCRAM-SHA-512 user $user is ready"
}

add_user "${LGSP_KAFKA__SASL_USERNAME:?LGSP_KAFKA__SASL_USERNAME is not set}" \
  "${LGSP_KAFKA__SASL_PASSWORD:?LGSP_KAFKA__SASL_PASSWORD is not set}"

for pair in ${KAFKA_EXTRA_USERS:-}; do
  add_user "${pair%%:*}" "${pair#*:}"
done

"$CONFIGS" --bootstrap-server "$BOOTSTRAP" --describe --entity-type users

#!/usr/bin/env bash
# First start of an empty data volume only (docker-entrypoint-initdb.d): one role and one
# database for the bus's control DB and one for Airflow's metadata, each owned by its role.
# Names and passwords come from the environment of the `postgres` service (.env).
set -euo pipefail

: "${CONTROL_DB_PASSWORD:?CONTROL_DB_PASSWORD is not set}"
: "${AIRFLOW_DB_PASSWORD:?AIRFLOW_DB_PASSWORD is not set}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
  -v control_db="${CONTROL_DB_NAME:-lgsp}" \
  -v control_user="${CONTROL_DB_USER:-lgsp}" \
  -v control_password="${CONTROL_DB_PASSWORD}" \
  -v airflow_db="${AIRFLOW_DB_NAME:-airflow}" \
  -v airflow_user="${AIRFLOW_DB_USER:-airflow}" \
  -v airflow_password="${AIRFLOW_DB_PASSWORD}" <<'SQL'
-- format(%I, %L) quotes names and passwords; \gexec runs the generated statements.
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'control_user', :'control_password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'control_user') \gexec
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'airflow_user', :'airflow_password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'airflow_user') \gexec

SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L TEMPLATE template0',
              :'control_db', :'control_user', 'UTF8')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'control_db') \gexec
SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L TEMPLATE template0',
              :'airflow_db', :'airflow_user', 'UTF8')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'airflow_db') \gexec

-- nobody else connects to the two databases
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'control_db') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'airflow_db') \gexec
SQL
echo "init-databases: databases ${CONTROL_DB_NAME:-lgsp} and ${AIRFLOW_DB_NAME:-airflow} are ready"

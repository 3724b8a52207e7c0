#!/usr/bin/env bash
# The entrypoint of the image built FROM a local Debian base (Dockerfile, BASE=debian): what the
# official Airflow image's /entrypoint does for docker-compose.yml, and nothing more.
#
#   /entrypoint scheduler                 runs `airflow scheduler` (any airflow subcommand)
#   /entrypoint airflow pools list        the same with the word airflow written out
#   /entrypoint bash -c "..."             runs bash (or python) itself
#
# Before the command, when the variable is non-empty (as in the official image, any value counts):
#   _AIRFLOW_DB_MIGRATE       `airflow db migrate`
#   _AIRFLOW_WWW_USER_CREATE  create the admin user _AIRFLOW_WWW_USER_USERNAME with
#                             _AIRFLOW_WWW_USER_PASSWORD (FAB auth manager), unless it exists
set -euo pipefail

if [[ -n "${_AIRFLOW_DB_MIGRATE:-}" ]]; then
  echo "Migrating the metadata database"
  airflow db migrate
fi

if [[ -n "${_AIRFLOW_WWW_USER_CREATE:-}" ]]; then
  user="${_AIRFLOW_WWW_USER_USERNAME:-admin}"
  if [[ -z "${_AIRFLOW_WWW_USER_PASSWORD:-}" ]]; then
    echo "_AIRFLOW_WWW_USER_CREATE is set but _AIRFLOW_WWW_USER_PASSWORD is empty: set a password for ${user}." >&2
    exit 1
  fi
  if airflow users list -o plain 2>/dev/null | awk '{print $2}' | grep -qx "${user}"; then
    echo "The admin user ${user} exists already"
  else
    echo "Creating the admin user ${user}"
    airflow users create --role Admin --username "${user}" --password "${_AIRFLOW_WWW_USER_PASSWORD}" \
      --email "${_AIRFLOW_WWW_USER_EMAIL:-admin@partnership.example}" \
      --firstname "${_AIRFLOW_WWW_USER_FIRSTNAME:-Airflow}" --lastname "${_AIRFLOW_WWW_USER_LASTNAME:-Admin}" > /dev/null
  fi
fi

if [[ $# -eq 0 ]]; then
  exec airflow --help
fi
if [[ "$1" == "airflow" ]]; then
  shift
fi
case "${1:-}" in
  bash | python | python3 | sh)
    exec "$@" ;;
  *)
    exec airflow "$@" ;;
esac

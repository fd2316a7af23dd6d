#!/usr/bin/env bash
# Validates the compose stack without a Docker engine: `docker-compose config` (Debian's
# docker-compose 1.29) and a check that every file compose.yml and the Dockerfile refer to exists.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_apt docker-compose docker-compose
log "docker-compose config --quiet"
docker-compose -f compose.yml config --quiet
log "files and settings the Docker side refers to"
# Debian's python3 has PyYAML (a docker-compose dependency).
/usr/bin/python3 "$ROOT/scripts/check-compose.py" "$ROOT"
bash -n scripts/stack-compose.sh

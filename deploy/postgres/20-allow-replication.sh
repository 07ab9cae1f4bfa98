#!/bin/sh
# Run once by the postgis image when it initialises an empty data directory (/docker-entrypoint-initdb.d):
# lets the `postgis-replica` service of docker-compose.yml copy the cluster and stream its WAL
# (pg_basebackup -R), with the same password check as every other connection. wal_level is `replica`
# by default. For a cluster made before this file existed, add the same line to its pg_hba.conf by hand
# and reload (README: Scaling out).
set -e
echo "host replication ${POSTGRES_USER} all scram-sha-256" >> "$PGDATA/pg_hba.conf"
